"""How the package's numba kernels are compiled and run on the CPU: the render-time layers' (plane_kernels.py,
hull_kernels.py) below, and the thread count of the parallel ones (the rasterizer's, sym3's): `numba_threads`.

Each kernel runs on one thread with the GIL released: no numba threading layer to share with the rasterizer's
kernels, which a node's threads may run at the same time. Work is split into parts that a thread pool (as many
workers as torch has threads) runs at once; each kernel has a pool of its own, so that a render's floor lookup
never waits in a queue behind a reconstruction's sweep. A kernel that cannot compile or run is reported once, and
its caller uses its torch version from then on.
"""
from __future__ import annotations

import sys
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numba
import numpy as np
import torch
from numba import njit

_POOLS: dict[str, ThreadPoolExecutor] = {}  # per kernel, made on first use
_POOL_LOCK = threading.Lock()  # a node renders from more than one thread
COMPILE_NOTE_S = 3.0  # a first use slower than this is compiling: say so
_COMPILED = threading.Event()  # set once a compile note fired in this process


def compiled_in_process() -> bool:
    """Whether a compile note fired in this process: a timing taken across it includes numba's one-off
    compilation (the commands say so beside their timings)."""
    return _COMPILED.is_set()


@contextmanager
def compile_note(what: str):
    """Around a kernel's first use: if it takes longer than COMPILE_NOTE_S, numba is compiling it (tens of seconds
    the first time on a machine, then read from its on-disk cache): say so on stderr instead of seeming to hang,
    and record it (`compiled_in_process`)."""
    def say():
        _COMPILED.set()
        print(f"lrm4d_ros: compiling {what} (first use on this machine; cached for later runs) ...", file=sys.stderr,
              flush=True)

    note = threading.Timer(COMPILE_NOTE_S, say)
    note.daemon = True
    note.start()
    try:
        yield
    finally:
        note.cancel()


def numba_threads() -> int:
    """Set numba's thread count for the parallel kernels this thread runs next to torch's (at most
    NUMBA_NUM_THREADS) -> that count. The first call starts numba's threading layer; its OpenMP layer sets the
    calling thread's OpenMP thread count, which torch's intra-op threads follow, to NUMBA_NUM_THREADS (every core):
    torch's count is put back."""
    torch_threads = torch.get_num_threads()
    n = max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS))
    numba.set_num_threads(n)
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)
    return n


def compile_kernel(fn):
    """fn compiled by numba: nogil, numpy's error model, cached on disk where a directory is writable."""
    try:
        return njit(cache=True, nogil=True, error_model="numpy")(fn)
    except RuntimeError:
        return njit(nogil=True, error_model="numpy")(fn)


def spans(n: int, min_part: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of the parts n items are split into: one per torch thread, each of at least min_part items
    (a single part where there are fewer)."""
    cut = np.linspace(0, n, max(1, min(torch.get_num_threads(), n // min_part)) + 1).astype(int)
    return list(zip(cut[:-1].tolist(), cut[1:].tolist()))


def _pool(name: str) -> ThreadPoolExecutor:
    with _POOL_LOCK:
        if name not in _POOLS:
            _POOLS[name] = ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads()), thread_name_prefix=name)
        return _POOLS[name]


def run_parts(kernel, parts: list[tuple], state: list[bool], what: str, instead: str) -> bool:
    """kernel(*args) for every args in parts, on the pool where there are several. False where it cannot run
    (numba failed to compile it, or it raised): one RuntimeWarning ("compiled `what` unavailable ...; `instead`
    instead"), recorded in `state` ([] before the first call, then [usable]) so that callers stop trying."""
    try:
        if not state:  # the first call compiles the kernel (or loads it from numba's cache)
            with compile_note(f"the {what}"):
                kernel(*parts[0])
            parts = parts[1:]
        if len(parts) == 1:
            kernel(*parts[0])
        elif parts:
            pool = _pool(getattr(kernel, "__name__", "kernel"))
            for f in [pool.submit(kernel, *args) for args in parts]:
                f.result()
        if not state:
            state.append(True)
        return True
    except Exception as exc:  # compiling or running it failed: the torch version from now on
        if not state:
            state.append(False)
        warnings.warn(f"compiled {what} unavailable ({type(exc).__name__}: {exc}); {instead} instead", RuntimeWarning,
                      stacklevel=4)
        return False
