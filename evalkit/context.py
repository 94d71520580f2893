"""The run context: the one place that changes process-wide state, and restores it.

A library call (``load_encoder``, ``encode``, an adapter) never touches the garbage
collector, logging levels, signal handlers or torch's thread count for good. What
makes a run fast or quiet is applied here, by the CLI and by :func:`evalkit.evaluate`,
and undone on exit:

- the cycle collector: paused while backends load, the heap frozen after imports
  (:mod:`evalkit.collector`, active only inside a context); on exit the context thaws
  what it froze, unless the process is about to end (``freeze_at_exit``: the CLI skips
  the interpreter's final walk over ~400k objects);
- third-party logging (transformers' verbosity and progress bars), quietened the first
  time a backend imports them (:func:`quiet_libraries`) and restored on exit;
- SIGTERM, raised as :class:`evalkit.signals.Terminated` so every ``finally`` runs
  (main thread only);
- torch's intra-op thread count, restored to its value at entry (CPU streams change it
  only for the duration of one forward pass).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_STACK: list[RunContext] = []
_LOCK = threading.Lock()


def active() -> RunContext | None:
    """The innermost run context, or None for a plain library call."""
    return _STACK[-1] if _STACK else None


@dataclass
class RunContext:
    """Process settings for one run; use as ``with RunContext(): ...``.

    Contexts nest (an ``evaluate`` inside a CLI command): only the outermost applies and
    restores, inner ones are free.
    """

    signals: bool = True
    freeze_at_exit: bool = False
    progress: bool = True
    _restore: list[Callable[[], None]] = field(default_factory=list)
    _outermost: bool = False

    def __enter__(self) -> RunContext:
        with _LOCK:
            self._outermost = not _STACK
            _STACK.append(self)
        if not self._outermost:
            return self
        was_enabled, frozen = gc.isenabled(), gc.get_freeze_count()
        self._restore.append(lambda: _restore_gc(was_enabled, frozen, self.freeze_at_exit))
        torch = sys.modules.get("torch")
        if torch is not None:
            threads = torch.get_num_threads()
            self._restore.append(lambda: torch.set_num_threads(threads))
        if self.signals:
            stack = contextlib.ExitStack()
            from evalkit.signals import graceful_termination

            stack.enter_context(graceful_termination())
            self._restore.append(stack.close)
        return self

    def __exit__(self, *exc: object) -> None:
        with _LOCK:
            _STACK.remove(self)
        while self._restore:
            self._restore.pop()()

    def on_exit(self, undo: Callable[[], None]) -> None:
        """Register an undo step of a setting applied while the context was active (run last-in, first-out)."""
        outer = _STACK[0] if _STACK else self
        outer._restore.append(undo)


def _restore_gc(was_enabled: bool, frozen: int, freeze_at_exit: bool) -> None:
    if freeze_at_exit:
        gc.freeze()  # the process ends next: spare the interpreter its final walk
    elif frozen == 0 and gc.get_freeze_count():
        gc.unfreeze()  # what the run froze becomes collectable again (the caller had frozen nothing)
    (gc.enable if was_enabled else gc.disable)()


def quiet_libraries() -> None:
    """Silence transformers' warnings and progress bars for this run; restored when the context exits.

    Outside a context this does nothing: a library call keeps the caller's logging as it was.
    """
    ctx = active()
    transformers = sys.modules.get("transformers")
    if ctx is None or transformers is None or getattr(ctx, "_quieted", False):
        return
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    ctx._quieted = True  # type: ignore[attr-defined]

    def undo() -> None:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()

    ctx.on_exit(undo)


class _NoBar:
    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


MIN_TEXTS_FOR_BAR = 512  # below this a cell is over before a bar would help


def progress_bar(total: int, desc: str = "encoding") -> Any:
    """A texts-encoded bar with ETA inside a cell (stderr, only on a terminal, only in a run that shows progress)."""
    ctx = active()
    if ctx is None or not ctx.progress or total < MIN_TEXTS_FOR_BAR:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="text", leave=False, file=sys.stderr, disable=None, dynamic_ncols=True)


@contextlib.contextmanager
def run_context(**kwargs: Any) -> Iterator[RunContext]:
    """``with run_context(): ...`` — a RunContext as a function, for symmetry with other contexts."""
    with RunContext(**kwargs) as ctx:
        yield ctx
