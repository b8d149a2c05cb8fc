"""Ctrl-C (SIGINT) and SIGTERM: one path for every long run.

Python turns a signal into ``KeyboardInterrupt`` wherever the main thread happens to be when the handler
runs. Inside a destructor (``__del__``), a weakref or gc callback, or a generator finalised by the garbage
collector, that exception cannot propagate: Python prints ``Exception ignored in: ...`` and carries on. This
is how ``train reward`` once trained all its epochs after Ctrl-C and exited 0 (the interrupt landed in
``regex``'s ``Group.__del__`` while a tokenizer module was being imported). A library can also catch and drop
it. So the exception is only the fast path; the truth is the record this module keeps:

1. the handler records the signal *before* it raises;
2. a ``KeyboardInterrupt`` that Python could not propagate (``sys.unraisablehook``) is not printed: a
   moment later the signal is sent to the main thread again, and lands in ordinary code;
3. safe points raise it again while a signal is on record: publishing an output set (:func:`deferred`) and
   :func:`check`, so nothing is published and no run completes after a signal, whatever swallowed it;
4. the front end reads :func:`exit_code` (130 for SIGINT, 143 for SIGTERM) from the record, not from
   whichever exception reached it.

A loop that can stop cleanly (the RL trainer: finish the iteration, save a checkpoint) asks for that with
:func:`graceful`: there the first signal only sets the request, and a second one raises.

Without :func:`install` (the SDK used as a library) nothing is on record and :func:`check` does nothing;
:func:`deferred` still holds Ctrl-C back for the few renames that publish an output set.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["check", "deferred", "exit_code", "graceful", "install", "received", "stop_requested", "uninstall"]

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal number, as a shell reports them


class _State:
    def __init__(self) -> None:
        self.installed = False
        self.previous: dict[int, Any] = {}  # the handlers before install(), put back by uninstall()
        self.previous_hook: Any = None
        self.signal: int | None = None  # the first signal on record
        self.count = 0  # signals delivered to the handler, re-deliveries included
        self.defer = 0  # depth of deferred() blocks: the handler only records
        self.held: list[int] = []  # signals that arrived inside a deferred() block
        self.graceful: list[Callable[[int], None]] = []  # the open graceful() blocks' callbacks
        self.exiting = False  # the process is on its way out: record only, never raise
        self.swallowed = threading.Event()  # set by the unraisable hook: the redeliverer sends the signal again
        self.redeliverer: threading.Thread | None = None
        self.generation = 0  # bumped by uninstall(): an old redeliverer thread stops


_S = _State()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _handler(signum: int, frame: Any) -> None:  # noqa: ARG001 - the signal module's signature
    if _S.signal is None:
        _S.signal = signum
    _S.count += 1
    if _S.exiting:
        return
    if _S.graceful and _S.installed and _S.count == 1:
        _S.graceful[-1](signum)
        return
    if _S.defer:
        _S.held.append(signum)
        return
    raise KeyboardInterrupt


def _unraisable(info: Any) -> None:
    """A ``KeyboardInterrupt`` that Python had to drop (a destructor, a callback): deliver the signal again."""
    exc_type = getattr(info, "exc_type", None)
    if _S.installed and _S.signal is not None and isinstance(exc_type, type) and issubclass(exc_type, KeyboardInterrupt):
        _S.swallowed.set()
        if _S.redeliverer is None or not _S.redeliverer.is_alive():
            _S.redeliverer = threading.Thread(target=_redeliver, args=(_S.generation,), daemon=True,
                                              name="prefpaint-interrupts")
            _S.redeliverer.start()
        return
    hook = _S.previous_hook or sys.__unraisablehook__
    hook(info)


def _redeliver(generation: int) -> None:
    """Send the signal on record to the main thread again, a moment after each swallowed interrupt.

    Not from the hook itself: the handler would run inside the hook, where Python drops the exception too.
    A moment later the main thread has left the destructor; a real signal (not a simulated one) also wakes
    it from a blocking call. One delivery per swallow, so a propagating interrupt's cleanup is not cut short.
    """
    main = threading.main_thread().ident
    while _S.generation == generation and not _S.exiting:
        if not _S.swallowed.wait(0.5):
            continue
        time.sleep(0.05)
        _S.swallowed.clear()
        sig = _S.signal
        if _S.generation != generation or _S.exiting or sig is None or signal.getsignal(sig) is not _handler:
            return
        log.debug("an interrupt landed where Python cannot raise it (a destructor, a callback): sent again")
        signal.pthread_kill(main, sig)


def install(reset: bool = False) -> bool:
    """Own SIGINT and SIGTERM for this process: record every signal, raise ``KeyboardInterrupt`` at once, and
    never lose one to a destructor. Idempotent; ``reset`` clears the record (a new run in the same process).

    Only the main thread can own signal handlers; elsewhere nothing happens and False is returned.
    """
    if not _main_thread():
        return False
    if reset or not _S.installed:
        _S.signal, _S.count, _S.held, _S.exiting = None, 0, [], False
        _S.swallowed.clear()
    if _S.installed:
        for sig in SIGNALS:  # a library may have replaced ours since (uvicorn puts its own back when done)
            if signal.getsignal(sig) is not _handler:
                signal.signal(sig, _handler)
        if sys.unraisablehook is not _unraisable:
            _S.previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
        return True
    try:
        _S.previous = {sig: signal.signal(sig, _handler) for sig in SIGNALS}
    except (ValueError, OSError):  # pragma: no cover - no signal support here
        return False
    _S.previous_hook, sys.unraisablehook = sys.unraisablehook, _unraisable
    _S.installed = True
    return True


def uninstall() -> None:
    """Put back the handlers and the unraisable hook that :func:`install` replaced, and clear the record."""
    if _S.installed and _main_thread():
        for sig, old in _S.previous.items():
            signal.signal(sig, old if old is not None else signal.SIG_DFL)
        if sys.unraisablehook is _unraisable:
            sys.unraisablehook = _S.previous_hook or sys.__unraisablehook__
    generation = _S.generation + 1
    _S.__init__()
    _S.generation = generation


def received() -> int | None:
    """The first signal on record since :func:`install` (``signal.SIGINT`` or ``signal.SIGTERM``), or None."""
    return _S.signal


def exit_code() -> int:
    """The exit code of an interrupted run: 143 after SIGTERM, else 130 (Ctrl-C)."""
    return EXIT_CODES.get(_S.signal, 130)


def check() -> None:
    """A safe point: raise ``KeyboardInterrupt`` if a signal is on record (outside a :func:`graceful` block,
    whose loop stops by itself). Cheap; long loops call it once per item or step."""
    if _S.signal is not None and not _S.graceful and not _S.exiting:
        raise KeyboardInterrupt


def stop_requested() -> bool:
    """True once a signal is on record: what a :func:`graceful` loop checks between its steps."""
    return _S.signal is not None


def exiting() -> None:
    """The process is leaving, its exit code decided: from now on SIGINT and SIGTERM are ignored. Python puts
    the default handlers back while it shuts down, and a signal then would kill the process (exit -2 or
    -15) or print a ``KeyboardInterrupt`` traceback, after a run that has finished."""
    _S.exiting = True
    if _S.installed and _main_thread():
        for sig in SIGNALS:
            signal.signal(sig, signal.SIG_IGN)


@contextmanager
def graceful(on_request: Callable[[int], None]) -> Iterator[None]:
    """Inside the block the first signal calls ``on_request(signum)`` and raises nothing: the loop stops
    cleanly between its steps. A second signal raises ``KeyboardInterrupt``. A signal already on record when
    the block starts raises at once (it was meant to stop the run before the loop).

    Where nothing called :func:`install` (a script, a notebook), the block installs the handlers for its
    own duration and puts the old ones back after it.
    """
    check()
    owned = not _S.installed and install()
    _S.graceful.append(on_request)
    try:
        yield
    finally:
        _S.graceful.remove(on_request)
        if owned:
            uninstall()


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the few renames that publish an output set; a signal that arrives
    meanwhile takes effect right after. A signal already on record stops before anything is published.

    Without :func:`install`, our handler stands in for the block and the held signal goes to the handler
    that was there before. Outside the main thread this does nothing.
    """
    check()
    if not _main_thread():
        yield
        return
    if _S.installed:
        _S.defer += 1
        try:
            yield
        finally:
            _S.defer -= 1
            held = _S.held if not _S.defer else []
            if not _S.defer:
                _S.held = []
        if held and not _S.graceful and not _S.exiting:
            raise KeyboardInterrupt
        return
    yield from _deferred_borrowed()


def _deferred_borrowed() -> Iterator[None]:
    """:func:`deferred` for a process that did not :func:`install`: borrow the handlers for the block."""
    previous: dict[int, Any] = {}
    try:
        for sig in SIGNALS:
            old = signal.getsignal(sig)
            if sig == signal.SIGINT or callable(old):  # a default SIGTERM (kill) stays as it is
                previous[sig] = signal.signal(sig, _handler)
    except (ValueError, TypeError, OSError):  # pragma: no cover - no signal support here
        for sig, old in previous.items():
            signal.signal(sig, old)
        yield
        return
    _S.defer += 1
    try:
        yield
    finally:
        _S.defer -= 1
        for sig, old in previous.items():
            signal.signal(sig, old)
        held, _S.held = _S.held, []
        _S.signal, _S.count = None, 0  # not installed: keep no record
        for sig in held:
            old = previous.get(sig)
            if callable(old):
                old(sig, None)
            elif old == signal.SIG_DFL and sig == signal.SIGINT:
                raise KeyboardInterrupt
