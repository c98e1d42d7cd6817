"""Worker process pools whose workers die with the process that made the pool.

Without this, `kill -9` of a batch (or of the server) leaves its workers alive forever: each
holds ~300 MB of models and waits on the pool's pipe, which never reaches end-of-file because
the other workers hold copies of its other end. So every pool in facelm is made by
`process_pool`, whose workers first call `die_with_parent`:

* A worker that is a child of the pool's maker ("fork" and "spawn") asks Linux to SIGKILL it
  when its parent dies (prctl PR_SET_PDEATHSIG): no thread, no delay. SIGKILL, not SIGTERM:
  nobody is left to read the worker's results, the files a worker may write (the model cache)
  are written atomically, and no handler of a library may delay the exit.
  The signal is tied to the parent *thread* that started the worker: submit to a pool from a
  long-lived thread (the main thread or an event loop's), never from a short-lived one.
* Otherwise a daemon thread waits for the maker to end and then exits the worker: a
  "forkserver" worker (Python 3.14's default on Linux) is the fork server's child, and the fork
  server outlives the maker because every worker holds its keep-alive pipe; and without prctl
  (macOS) there is no signal. It waits on a pidfd (Linux >= 5.3: exact, at once) or polls.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import select
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.context import BaseContext
from typing import Any, Callable

_PR_SET_PDEATHSIG = 1   # from <linux/prctl.h>
POLL_SECONDS = 0.5      # polling fallback: how late an orphan may notice (the thread is idle otherwise)


def process_pool(workers: int, *, mp_context: BaseContext | None = None,
                 initializer: Callable[..., Any] | None = None,
                 initargs: tuple[Any, ...] = ()) -> ProcessPoolExecutor:
    """A ProcessPoolExecutor whose workers exit when this process dies; `initializer(*initargs)`
    still runs in each worker, after the guard is armed."""
    return ProcessPoolExecutor(workers, mp_context=mp_context or multiprocessing.get_context(),
                               initializer=_init_worker, initargs=(os.getpid(), initializer, initargs))


def _init_worker(maker: int, initializer: Callable[..., Any] | None,
                 initargs: tuple[Any, ...]) -> None:
    die_with_parent(maker)
    if initializer is not None:
        initializer(*initargs)


def die_with_parent(parent: int | None = None) -> None:
    """Make this process exit when process `parent` (default: its parent) ends."""
    direct = parent is None or parent == os.getppid()
    parent = os.getppid() if parent is None else parent
    if direct and _set_pdeathsig(signal.SIGKILL):
        # The kernel signals only deaths after prctl: if the parent died just before, we have
        # already been re-parented, and no signal will ever come.
        if os.getppid() != parent:
            os._exit(1)
        return
    ended = _waiter(parent, direct)
    if ended(0):   # already gone (also the race above): never start the work
        os._exit(1)
    threading.Thread(target=_exit_when_ended, args=(ended,), name="facelm-parent-watch",
                     daemon=True).start()


def _set_pdeathsig(sig: int) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies; False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):   # no libc symbol (unusual builds): use the watcher
        return False


def _waiter(pid: int, direct: bool) -> Callable[[float | None], bool]:
    """wait(timeout): True once process `pid` has ended, False after `timeout` s (None: never)."""
    try:
        fd = os.pidfd_open(pid)   # readable once the process has ended (even before it is reaped)
    except ProcessLookupError:
        return lambda timeout: True
    except (AttributeError, OSError):   # not Linux >= 5.3: poll
        return lambda timeout: _poll(pid, direct, timeout)
    return lambda timeout: bool(select.select([fd], [], [], timeout)[0])


def _poll(pid: int, direct: bool, timeout: float | None) -> bool:
    deadline = None if timeout is None else time.monotonic() + timeout
    while _exists(pid, direct):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
    return True


def _exists(pid: int, direct: bool) -> bool:
    if direct:   # re-parenting is the exact sign (a dead but unreaped parent still "exists")
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process: it exists
        return True
    return True


def _exit_when_ended(ended: Callable[[float | None], bool]) -> None:
    ended(None)
    # os._exit, not sys.exit: this is not the main thread, and the pool's pipes must not be
    # flushed or joined on the way out (nobody reads them any more).
    os._exit(1)
