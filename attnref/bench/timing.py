"""How the benchmarks time a call, measure its memory, and describe the machine they ran on.

**Time.** ``time.perf_counter`` around the measured work, after ``torch.cuda.synchronize`` on
CUDA so that queued kernels are counted. Several callables compared with each other are timed
*interleaved* (``time_interleaved()``): round ``r`` calls
each of them once, in an order rotated every round. On a machine whose speed drifts (shared
CPUs, turbo and thermal limits) a slow minute then slows every callable of the round, not one of
them, and ratios measured in the same run stay fair.

**Memory** is the peak of a call above what was allocated before it. On CUDA it is
``torch.cuda.max_memory_allocated()`` after ``torch.cuda.reset_peak_memory_stats()``, minus
``torch.cuda.memory_allocated()`` before. On CPU PyTorch keeps no allocator statistics, so the
resident set size (RSS) of the process is used: freed heap pages are returned to the OS first
(``malloc_trim(0)``), then the kernel's RSS high-water mark is reset (``echo 5 >
/proc/self/clear_refs``) and read back after the call (``VmHWM``); where that is not possible a
thread samples RSS with psutil every 0.5 ms. The CPU figure counts pages touched, so it is a
close but not exact measure of bytes allocated.

**The machine** is recorded with every result: device and CPU model, threads, and the versions of
Python, torch, transformers and attnref.
"""

from __future__ import annotations

import ctypes
import datetime as _dt
import gc
import os
import platform
import re
import statistics
import threading
import time
from collections.abc import Callable, Sequence

import torch

import attnref
from attnref.bench._deps import require
from attnref.bench.cases import has_transformers

__all__ = [
    "PEAK_TFLOPS",
    "sync",
    "time_interleaved",
    "spread",
    "peak_memory",
    "memory_method",
    "environment",
    "peak_tflops",
]

PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # Dense tensor-core peaks from the vendor data sheets (no 2:4 sparsity), TFLOP/s.
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
    "H100 PCIe": {"bfloat16": 756.0, "float16": 756.0, "float32": 51.0},
    "H100 NVL": {"bfloat16": 835.0, "float16": 835.0, "float32": 60.0},
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "L40S": {"bfloat16": 362.0, "float16": 362.0, "float32": 91.6},
    "L4": {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3},
    "A10": {"bfloat16": 125.0, "float16": 125.0, "float32": 31.2},
}
"""Peak dense TFLOP/s by GPU (matched as a substring of the device name, longest key first) and
dtype. Used only for the ``peak_fraction`` of CUDA results; CPUs have no entry."""


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def time_interleaved(
    calls: dict[str, Callable[[], object]],
    warmup: int,
    repeats: int,
    device: torch.device,
    on_call: Callable[[], None] = lambda: None,
) -> dict[str, list | str]:
    """Call every callable ``warmup + repeats`` times, interleaved, and keep what the timed calls return.

    Each callable measures its own work and returns the measurement (seconds, or a tuple of
    them), so that set-up it must do before the measured part (a fresh cache, a prefill) is not
    counted.

    Args:
        calls: ``{name: call}``; ``call()`` returns its measurement.
        warmup: untimed rounds first.
        repeats: timed rounds.
        device: the device the calls run on (to free its cache after an out-of-memory error).
        on_call: called after every call (a progress bar's update).

    Returns:
        ``{name: [measurement of each timed round]}``, or ``{name: "out of memory: ..."}`` for a
        callable that ran out of memory (it is not called again).
    """
    results: dict[str, list | str] = {name: [] for name in calls}
    names = list(calls)
    for r in range(warmup + repeats):
        # Rotate the order each round so that no callable always runs first (or right after another).
        shift = r % max(1, len(names))
        for name in names[shift:] + names[:shift]:
            if isinstance(results[name], str):
                continue
            try:
                measured = calls[name]()
            except torch.OutOfMemoryError as err:
                results[name] = f"out of memory: {str(err).splitlines()[0]}"
                gc.collect()
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            finally:
                on_call()
            if r >= warmup:
                results[name].append(measured)
    return results


def spread(values: Sequence[float]) -> dict:
    """Median, quartiles, extremes and every value of repeated measurements.

    Args:
        values: at least one measurement.

    Returns:
        ``{"median", "q25", "q75", "min", "max", "repeats"}``.
    """
    median = statistics.median(values)
    q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else [median] * 3
    return {"median": median, "q25": q[0], "q75": q[2], "min": min(values), "max": max(values),
            "repeats": list(values)}


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

_LIBC = None


def _malloc_trim() -> None:
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def memory_method(device: torch.device) -> str:
    """How ``peak_memory()`` measures on ``device``, in a sentence."""
    if device.type == "cuda":
        return ("CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus "
                "memory_allocated() before the call")
    if _reset_hwm():
        return ("CPU: RSS high-water mark. Before the call: gc.collect(), malloc_trim(0) so freed heap "
                "pages go back to the OS, then 'echo 5 > /proc/self/clear_refs' resets VmHWM to the "
                "current RSS; peak = VmHWM after the call - VmRSS before it. Counts pages touched.")
    return ("CPU: RSS sampled by a psutil thread every 0.5 ms during the call (after gc.collect() and "
            "malloc_trim(0)); peak = max sampled RSS - RSS before. Peaks shorter than 0.5 ms can be missed.")


def peak_memory(call: Callable[[], object], device: torch.device) -> int:
    """Peak bytes above the state before ``call()``, measured as the module docstring says.

    Args:
        call: the work to measure; it must synchronise CUDA itself before returning.
        device: where it runs.

    Returns:
        Bytes, at least 0.
    """
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        torch.cuda.synchronize(device)
        return int(max(0, torch.cuda.max_memory_allocated(device) - before))
    _malloc_trim()
    if _reset_hwm():
        before = _status_kb("VmRSS")
        call()
        return max(0, (_status_kb("VmHWM") - before) * 1024)
    psutil = require("psutil", "the CPU memory figures where /proc/self/clear_refs cannot be written")
    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        call()
    finally:
        done.set()
        thread.join()
    return max(0, max(peak[0], proc.memory_info().rss) - before)


# --------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    """The GPU's name on CUDA, the CPU model otherwise."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()


def slug(text: str) -> str:
    """A short file-name form of a device name (``"AMD EPYC"`` -> ``"amd-epyc"``)."""
    text = re.sub(r"\(r\)|\(tm\)|processor|\d+-core|nvidia|corporation", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def environment(device: torch.device) -> dict:
    """Where and with what a result was measured: the record every result file carries.

    Args:
        device: the device that ran the benchmark.

    Returns:
        ``device``, ``device_name``, ``cpu_model``, ``cpu_count``, ``threads``, the versions of
        ``attnref``, ``torch``, ``cuda`` (None on CPU), ``transformers`` (None when absent) and
        ``python``, ``platform`` and the UTC ``date``.
    """
    transformers_version = None
    if has_transformers():
        import transformers

        transformers_version = transformers.__version__
    return {
        "device": device.type,
        "device_name": device_name(device),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "attnref": attnref.__version__,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "transformers": transformers_version,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def peak_tflops(name: str, dtype: torch.dtype) -> float | None:
    """The data-sheet peak of GPU ``name`` in ``dtype`` from [`PEAK_TFLOPS`][attnref.bench.PEAK_TFLOPS],
    or None where unknown."""
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_TFLOPS[key].get(str(dtype).removeprefix("torch."))
    return None
