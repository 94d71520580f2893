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
  only for the duration of one forward pass);
- the global random generators (``random``, NumPy's, torch's CPU and, if initialised, CUDA
  ones): each cell seeds them for bit-identical scores (:func:`seeded`, which restores
  them after the cell), and the context restores what it found on exit, whatever else
  (a model's head initialisation) drew from them; a generator whose library was first
  imported inside the run is left freshly seeded from the OS, as a fresh import leaves it;
- the collector's frozen generation: a caller who froze objects (``gc.freeze()``) keeps
  them frozen, since the run then freezes and thaws nothing (``gc.unfreeze`` cannot
  thaw only what the run froze).

Lines that say what a long step is doing (an export, a quantisation) go to stderr
through :func:`say`, only inside a context that shows progress.
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
    caller_froze: bool = False  # the caller had frozen objects at entry: the run freezes and thaws nothing
    _restore: list[Callable[[], None]] = field(default_factory=list)
    _outermost: bool = False

    def __enter__(self) -> RunContext:
        with _LOCK:
            self._outermost = not _STACK
            _STACK.append(self)
        if not self._outermost:
            return self
        was_enabled, frozen = gc.isenabled(), gc.get_freeze_count()
        self.caller_froze = frozen > 0
        self._restore.append(lambda: _restore_gc(was_enabled, frozen, self.freeze_at_exit))
        self._restore.append(_generators_restorer())
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


def may_freeze() -> bool:
    """Whether the collector policy may freeze and thaw the heap: inside a context whose caller froze nothing."""
    ctx = _STACK[0] if _STACK else None
    return ctx is not None and not ctx.caller_froze


def _generators_restorer() -> Callable[[], None]:
    """Capture the global generators now; the returned function puts them back (see :func:`seeded`)."""
    import random

    python = random.getstate()
    numpy = sys.modules.get("numpy")
    numpy_state = numpy.random.get_state() if numpy is not None else None
    torch = sys.modules.get("torch")
    torch_state = torch.get_rng_state() if torch is not None else None
    cuda_states = torch.cuda.get_rng_state_all() if torch is not None and torch.cuda.is_initialized() else None

    def restore() -> None:
        random.setstate(python)
        np_now: Any = sys.modules.get("numpy")
        if numpy_state is not None:
            np_now.random.set_state(numpy_state)
        elif np_now is not None:
            np_now.random.seed()  # first imported in the run: fresh entropy, as a fresh import has, not a cell's seed
        torch_now: Any = sys.modules.get("torch")
        if torch_state is not None:
            torch_now.set_rng_state(torch_state)
        elif torch_now is not None:
            torch_now.seed()
        if torch_now is not None and torch_now.cuda.is_initialized():
            if cuda_states is not None:
                torch_now.cuda.set_rng_state_all(cuda_states)
            else:
                torch_now.cuda.seed_all()

    return restore


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed every global generator a cell may touch (same run twice: bit-identical scores); put the caller's back after."""
    import random

    restore = _generators_restorer()
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)
    try:
        yield
    finally:
        restore()


def say(message: str) -> None:
    """One line on stderr saying what a long step is doing (exporting, quantising), inside a run that shows progress."""
    ctx = active()
    if ctx is None or not ctx.progress:
        return
    tqdm = sys.modules.get("tqdm")
    if tqdm is not None:  # above any bar on the terminal, not through it
        tqdm.tqdm.write(f"evalkit: {message}", file=sys.stderr)
    else:
        print(f"evalkit: {message}", file=sys.stderr, flush=True)


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
