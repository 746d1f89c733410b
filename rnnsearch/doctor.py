"""``rnnsearch doctor``: what this machine is and what rnnsearch chose on it, for bug reports.

The CPU and its vector features, the torch build (BLAS, oneDNN, OpenMP, threads), CUDA,
the C compiler, Ray's version, and each fast-path choice with the timings it was made on
(measured now for the default shape classes where nothing is cached yet).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess

# the shape classes of the default model (PTB's: width 200, batch 20 x unroll 35, 10k words)
DEFAULT_LOOP = (200, 20)
DEFAULT_SOFTMAX = (200, 10001, 700)


def cpu_lines() -> list[str]:
    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    avx512 = sorted(f for f in flags if f.startswith("avx512"))
    features = [
        f"AVX2 {'yes' if 'avx2' in flags else 'no'}",
        f"AVX-512 {'yes (' + ', '.join(avx512[:4]) + (', ...' if len(avx512) > 4 else '') + ')' if avx512 else 'no'}",
        f"AMX {'yes' if any(f.startswith('amx') for f in flags) else 'no'}",
    ]
    vendor = info.get("vendor_id", platform.processor() or "?")
    model = info.get("model name", "?")
    return [f"CPU: {model} ({vendor}), {os.cpu_count()} cores; {', '.join(features)}"]


def torch_lines() -> list[str]:
    import torch

    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.]+)", config)
    dnn = re.search(r"MKL-DNN v([\w.]+)", config)
    blas = re.search(r"BLAS_INFO=(\w+)", config)
    parts = [
        f"BLAS {blas.group(1) if blas else '?'}" + (f" (MKL {mkl.group(1)})" if mkl else ""),
        f"oneDNN {dnn.group(1) if dnn else 'no'}",
        f"OpenMP {'yes' if torch.backends.openmp.is_available() else 'no'}",
        f"{torch.get_num_threads()} threads",
        f"CPU capability {torch.backends.cpu.get_cpu_capability()}",
    ]
    lines = [f"torch {torch.__version__}: {', '.join(parts[:3])}", f"  {', '.join(parts[3:])}"]
    if torch.cuda.is_available():
        devices = [
            f"{torch.cuda.get_device_name(i)} ({torch.cuda.get_device_properties(i).total_memory / 2**30:.0f} GiB)"
            for i in range(torch.cuda.device_count())
        ]
        lines.append(f"CUDA {torch.version.cuda}: {len(devices)} visible: {'; '.join(devices)}")
    else:
        why = "torch built without CUDA" if torch.version.cuda is None else "no device visible"
        lines.append(f"CUDA: not visible ({why})")
    return lines


def compiler_lines() -> list[str]:
    from rnnsearch.cells.cbuild import NativeUnavailable, _compiler, cache_dir
    from rnnsearch.cells.matmul import available

    try:
        cc = _compiler()
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=20).stdout
        first = version.splitlines()[0] if version else "?"
        lines = [f"C compiler: {cc} ({first})", f"  compiled loops cached in {cache_dir()}"]
    except (NativeUnavailable, OSError, subprocess.SubprocessError) as err:
        lines = [f"C compiler: none ({err}); the Python step runs every loop"]
    kernel = "runs here (AVX-512)" if available() else "not used here (it needs AVX-512 and a compiler)"
    return lines + [f"gemm.c kernel: {kernel}"]


def ray_line() -> str:
    try:
        return f"Ray: {importlib.metadata.version('ray')}"
    except importlib.metadata.PackageNotFoundError:
        return "Ray: not installed"


def plan_lines(measure: bool = True) -> list[str]:
    """Each cached fast-path choice; with ``measure``, the default classes decided first."""
    from rnnsearch.cells.planner import overrides, plan_path, planner

    if measure:
        from rnnsearch.tasks.fastpath import loop_decision, softmax_decision

        loop_decision(*DEFAULT_LOOP)
        softmax_decision(*DEFAULT_SOFTMAX)
    forced = overrides()
    lines = ["fast paths (RNNSEARCH_PLAN=loop=eager forces one), cached in", f"  {plan_path()}:"]
    lines += [f"  {d.describe()}" for d in planner().decisions()]
    if os.environ.get("RNNSEARCH_LOOP"):
        lines.append(f"  RNNSEARCH_LOOP={os.environ['RNNSEARCH_LOOP']} sets every loop")
    lines += [f"  {q} forced to {c} by RNNSEARCH_PLAN" for q, c in forced.items()]
    return lines


def report(measure: bool = True) -> list[str]:
    try:
        version = importlib.metadata.version("rnnsearch")
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    head = f"rnnsearch {version}, Python {platform.python_version()}, {platform.system()} {platform.machine()}"
    return [head, *cpu_lines(), *torch_lines(), *compiler_lines(), ray_line(), *plan_lines(measure)]


def _cpuinfo() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                key, sep, value = line.partition(":")
                if sep and key.strip() not in out:
                    out[key.strip()] = value.strip()
    except OSError:
        pass
    return out
