"""Optional extras: the one place every optional import goes through, so a missing one is one line naming the extra.

``pip install evalkit`` leaves out Ray, matplotlib and the ONNX/OpenVINO runtimes; the
code that needs one imports it with :func:`optional_import`, which turns the
``ModuleNotFoundError`` into a :class:`MissingExtraError` (an ``EvalkitError``: one line,
exit 2 on the command line) saying which extra to install. :func:`missing_extra` does
the same for an exception raised elsewhere (the CLI's last resort, a failed cell's
reason), so an import that does not come through here still reads as one line.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from evalkit.errors import EvalkitError

EXTRAS: dict[str, str] = {
    "ray": "ray",
    "matplotlib": "report",
    "onnxruntime": "runtimes",
    "onnx": "runtimes",
    "onnxscript": "runtimes",
    "openvino": "runtimes",
}
"""Top-level module → the extra of ``pyproject.toml`` that installs it."""

NEEDED_FOR: dict[str, str] = {
    "ray": "--executor ray",
    "report": "the HTML report's figures (-f html)",
    "runtimes": "the onnx: and openvino: backends",
}


class MissingExtraError(EvalkitError):
    """An optional dependency is not installed; the message names the extra that installs it."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(f"{module} is not installed (needed for {NEEDED_FOR.get(extra, extra)}): pip install 'evalkit[{extra}]'")
        self.module = module
        self.extra = extra


def missing_extra(exc: BaseException) -> MissingExtraError | None:
    """The one-line error for ``exc`` if it is a missing optional module (None for anything else)."""
    if isinstance(exc, MissingExtraError):
        return exc
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.partition(".")[0]
    extra = EXTRAS.get(module)
    return None if extra is None else MissingExtraError(module, extra)


def optional_import(name: str) -> ModuleType:
    """``importlib.import_module(name)``, or :class:`MissingExtraError` when its optional package is missing."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = missing_extra(exc)
        if missing is None:
            raise
        raise missing from None
