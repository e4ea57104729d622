"""Timing that survives a shared machine: interleaved repetitions, medians, CPU time too.

Every figure that is compared with another is measured in the same loop: one repetition of
each candidate in turn, repeated, so that a burst of load from other processes hits all of
them alike. Each candidate is warmed up first (tracing, allocator growth);
the reported time is the median of the repetitions. Alongside wall-clock time the process
CPU time is recorded: ``images / (cpu seconds / cores)`` is what the figure would be on an
idle machine if every thread stayed busy, and it moves far less under load.
"""

import os
import time

import numpy as np


def cores():
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _run(fn):
    out = fn()
    # Materialize: TensorFlow may return before the work is done; NumPy conversion waits.
    if isinstance(out, dict):
        out = list(out.values())
    for value in (out if isinstance(out, (list, tuple)) else [out]):
        np.asarray(value)


def interleaved(candidates, reps=3, warmup=1):
    """Times zero-argument callables round-robin.

    Args:
        candidates: dict name -> callable; each call is one unit of work.
        reps: timed repetitions of each candidate (the median is reported).
        warmup: untimed calls of each candidate first.

    Returns:
        dict name -> {"seconds": median wall s, "cpu_seconds": median CPU s per core,
        "wall": [all wall s], "reps": reps}.

    Example:

    >>> benchmarks.timing.interleaved({"a": lambda: 1, "b": lambda: 2}, reps=3)
    """
    if reps < 1 or warmup < 0:
        raise ValueError(f"reps must be >= 1 and warmup >= 0. Received: reps={reps}, warmup={warmup}")
    for fn in candidates.values():
        for _ in range(warmup):
            _run(fn)
    wall = {name: [] for name in candidates}
    cpu = {name: [] for name in candidates}
    n = cores()
    for _ in range(reps):
        for name, fn in candidates.items():
            t, c = time.perf_counter(), time.process_time()
            _run(fn)
            wall[name].append(time.perf_counter() - t)
            cpu[name].append((time.process_time() - c) / n)
    return {name: {"seconds": float(np.median(wall[name])),
                   "cpu_seconds": float(np.median(cpu[name])),
                   "wall": [round(w, 4) for w in wall[name]], "reps": reps}
            for name in candidates}


def matmul(dtype="float32", n=1024):
    """A callable multiplying two ``n x n`` matrices through TensorFlow, and its FLOPs.

    Args:
        dtype: ``"float32"`` or ``"bfloat16"``.
        n: the matrix side (``peak`` uses 4096: smaller products measure dispatch too).

    Returns:
        (callable, flops per call).
    """
    import tensorflow as tf
    rng = np.random.default_rng(0)
    a = tf.cast(rng.standard_normal((n, n), dtype=np.float32), dtype)
    b = tf.cast(rng.standard_normal((n, n), dtype=np.float32), dtype)
    fn = tf.function(lambda: tf.matmul(a, b))
    return fn, 2 * n ** 3


def peak(dtype="float32", n=4096, tries=5):
    """This machine's matmul throughput in GFLOP/s: the best of ``tries`` ``n x n`` products.

    The same oneDNN kernels as the convolutions (TensorFlow's ``MatMul``); large enough that
    dispatch is nothing beside the arithmetic (a 1024x1024 product read 25% lower here), and
    the best, not the median, since load from elsewhere only ever slows it.

    Returns:
        dict with ``gflops`` (the best), ``n``, ``tries`` and every try's ``wall`` seconds.
    """
    fn, work = matmul(dtype, n)
    _run(fn)
    wall = []
    for _ in range(tries):
        t = time.perf_counter()
        _run(fn)
        wall.append(time.perf_counter() - t)
    return {"gflops": work / min(wall) / 1e9, "n": n, "tries": tries,
            "wall": [round(w, 4) for w in wall]}


def theoretical_peak(flags, vendor="", mhz=None, cores_=None):
    """The arithmetic peak from the CPU's flags and clock, in GFLOP/s per dtype.

    Per core and cycle: float32 FMA lanes x 2 FMA units x 2 flops (AVX-512 on Intel: 16
    lanes; on AMD before Zen 5 AVX-512 runs on 256-bit units, so 8; AVX2: 8); bfloat16 with
    AVX512-BF16 twice the float32 figure (``vdpbf16ps``), with AMX 1024 multiply-adds per
    cycle (one 16x32 by 32x16 tile product); without either, the float32 figure (emulated).
    The clock is the nominal one the kernel reports; turbo can lift measured figures above it.

    Returns:
        dict ``{"float32": GFLOP/s, "bfloat16": GFLOP/s, "mhz": clock, "basis": text}``, or
        None when the clock is unknown.
    """
    cores_ = cores_ or cores()
    if not mhz:
        return None
    flags = set(flags or ())
    if "avx512f" in flags:
        lanes, isa = (8, "AVX-512 on 256-bit units") if "AMD" in vendor else (16, "AVX-512")
    elif "avx2" in flags and "fma" in flags:
        lanes, isa = 8, "AVX2+FMA"
    else:
        lanes, isa = 4, "SSE"
    fp32 = lanes * 2 * 2
    if "amx_bf16" in flags:
        bf16, bf16_isa = 2048, "AMX-BF16"
    elif "avx512_bf16" in flags:
        bf16, bf16_isa = 2 * fp32, "AVX512-BF16"
    else:
        bf16, bf16_isa = fp32, "none (emulated)"
    ghz = cores_ * mhz / 1000
    return {"float32": fp32 * ghz, "bfloat16": bf16 * ghz, "mhz": mhz,
            "basis": f"{cores_} cores x {mhz:.0f} MHz x {fp32} float32 flops/cycle ({isa}), "
                     f"{bf16} bfloat16 flops/cycle ({bf16_isa})"}
