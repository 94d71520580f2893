"""evalkit: evaluation and benchmarking harness for sentence encoders.

``evalkit.evaluate(encoders, tasks) -> Results`` is the library entry point (see
:mod:`evalkit.api`); the ``evalkit`` command is a thin face on it. Importing the
package is cheap on purpose: torch, transformers and scikit-learn load only when an
encoder or adapter that needs them is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from evalkit.api import Results, evaluate

__all__ = ["Results", "__version__", "evaluate"]


def __getattr__(name: str) -> Any:  # lazy: `import evalkit` stays cheap
    if name in {"evaluate", "Results"}:
        from evalkit import api

        return getattr(api, name)
    raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
