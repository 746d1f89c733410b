"""Compiling and loading rnnsearch's generated C (the native loops and the multiply kernel).

Each library is built once per machine with the machine's C compiler, linked against the
running torch (for MKL's ``sgemm_`` and its OpenMP runtime), cached on disk keyed by its
source, flags and CPU, and loaded with ctypes.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

import torch


class NativeUnavailable(RuntimeError):
    """No C compiler here, or it failed."""


_FLAGS = ("-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared")
_loaded: dict[str, ctypes.CDLL] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Where compiled libraries are kept (``RNNSEARCH_CACHE`` or ``~/.cache/rnnsearch``)."""
    root = os.environ.get("RNNSEARCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rnnsearch")
    return Path(root) / "native"


@functools.cache
def _machine_tag() -> str:
    """-march=native code must not be shared between different CPUs (a shared home)."""
    try:
        with open("/proc/cpuinfo") as fh:
            info = [ln for ln in fh if ln.startswith(("model name", "flags"))][:2]
    except OSError:
        info = []
    return "".join(info) + os.uname().machine


def _compiler() -> str:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise NativeUnavailable("no C compiler found (set CC, or install gcc)")
    return cc


def load(source: str, prefix: str = "loop", flags: Sequence[str] = ()) -> ctypes.CDLL:
    """Compile (once per machine; cached on disk) and load a shared library. ``flags``
    are added to the common ones (``-fopenmp`` for a library that runs threads: it then
    shares torch's OpenMP runtime, already loaded)."""
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
    all_flags = (*_FLAGS, *flags)
    key = hashlib.sha256("\0".join([source, *all_flags, _machine_tag(), torch_lib]).encode()).hexdigest()[:24]
    with _lock:
        lib = _loaded.get(key)
        if lib is not None:
            return lib
        path = cache_dir() / f"{prefix}_{key}.so"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                c_file = Path(tmp) / f"{prefix}.c"
                c_file.write_text(source)
                so = Path(tmp) / f"{prefix}.so"
                cmd = [
                    _compiler(),
                    *all_flags,
                    "-o",
                    str(so),
                    str(c_file),
                    f"-L{torch_lib}",
                    "-ltorch_cpu",
                    f"-Wl,-rpath,{torch_lib}",
                ]
                done = subprocess.run(cmd, capture_output=True, text=True)
                if done.returncode != 0:
                    raise NativeUnavailable(f"the C compiler failed: {done.stderr.strip()[:2000]}")
                os.replace(so, path)  # atomic: workers compiling the same library do not collide
        lib = ctypes.CDLL(str(path))
        _loaded[key] = lib
        return lib


def call(fn, dims: Sequence[int], tensors: Sequence[torch.Tensor | None]) -> None:
    """``fn(long long* dims, void** pointers)``: the one calling convention of our C."""
    d = (ctypes.c_longlong * len(dims))(*dims)
    p = (ctypes.c_void_p * len(tensors))(*[0 if t is None else t.data_ptr() for t in tensors])
    fn(d, p)


def entry(lib: ctypes.CDLL, name: str):
    """A library function of that convention, typed."""
    fn = getattr(lib, name)
    fn.argtypes = [ctypes.POINTER(ctypes.c_longlong), ctypes.POINTER(ctypes.c_void_p)]
    fn.restype = None
    return fn
