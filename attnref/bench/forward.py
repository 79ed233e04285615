"""The forward benchmark: every case at one shape, then the sweeps over L and B, then the targets.

For each case (see ``cases.py``) and each *mode* (``fwd``: forward under ``torch.no_grad``;
``fwd+bwd``: forward, then backward of the output) it records the time of one call over
interleaved repeats, tokens per second, achieved FLOP/s (and the fraction of the GPU's peak
where known) and the peak extra memory of one call. The cases of one shape, mode and dtype are
timed together, interleaved, so that their ratios come from the same minutes of the machine.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import torch
from torch import Tensor, nn

from attnref.bench import timing
from attnref.bench._deps import progress_bar
from attnref.bench.cases import Case, Shape, flops, make_cases
from attnref.bench.targets import forward_targets

__all__ = ["run_benchmark"]

TIMING = ("time.perf_counter around one call (CUDA synchronised); fwd under torch.no_grad, "
          "fwd+bwd = forward + backward of a fixed random output gradient, parameter gradients "
          "cleared (set to None) before each call; median, quartiles (q25, q75) and min/max of "
          "the repeats; module in eval mode (no dropout)")
FLOPS = ("projections 2*B*L*E*D*(2H+2G) [+ 2*B*L*E^2 for an extra Linear(E, E)] + attention "
         "4*B*H*D*P with P = L^2, or L(L+1)/2 when causal; fwd+bwd = 3 x fwd; softmax, RoPE, "
         "norms not counted")


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _make_call(module: nn.Module, inputs: tuple, mode: str, device: torch.device) -> Callable[[], float]:
    """One call of ``module`` in ``mode`` that returns its own duration in seconds."""
    params = [p for p in module.parameters() if p.requires_grad]
    leaves = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if mode == "fwd":
        def call() -> float:
            start = time.perf_counter()
            with torch.no_grad():
                module(*inputs)
            timing.sync(device)
            return time.perf_counter() - start
        return call
    grad_out = None

    def call() -> float:
        nonlocal grad_out
        for t in params + leaves:
            t.grad = None
        start = time.perf_counter()
        out = _first(module(*inputs))
        if grad_out is None:
            grad_out = torch.randn_like(out)
        out.backward(grad_out)
        timing.sync(device)
        return time.perf_counter() - start
    return call


def _prepare(case: Case, shape: Shape, mode: str, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    module, make_inputs = case.build(shape, device, dtype)
    module = module.to(device=device, dtype=dtype).eval()
    inputs = make_inputs()
    if mode == "fwd+bwd" and not any(True for _ in module.parameters()):
        inputs = tuple(t.detach().requires_grad_() for t in inputs)  # flux: gradients w.r.t. q, k, v
    return _make_call(module, inputs, mode, device)


def _estimate_bytes(case: Case, shape: Shape, mode: str, dtype: torch.dtype) -> float:
    """A rough upper bound of a call's memory, to skip cases that would exhaust the device."""
    elt = torch.empty((), dtype=dtype).element_size()
    acts = (12 if mode == "fwd" else 24) * shape.B * shape.L * shape.E * max(4, elt)
    if case.quadratic:
        # eager: scores, masked scores, weights (float32) alive together; backward keeps and adds more
        acts += (5 if mode == "fwd" else 8) * shape.B * shape.H * shape.L * shape.L * max(4, elt)
    return acts


def _measure_group(cases: Sequence[Case], shape: Shape, mode: str, device: torch.device, dtype: torch.dtype,
                   warmup: int, repeats: int, max_memory_bytes: float, on_call) -> list[dict]:
    """Time several cases at one shape, interleaved, then measure each one's memory."""
    row = {"mode": mode, "dtype": str(dtype).removeprefix("torch."), "B": shape.B, "L": shape.L}
    calls, skipped = {}, {}
    for case in cases:
        estimate = _estimate_bytes(case, shape, mode, dtype)
        if estimate > max_memory_bytes:
            skipped[case.name] = f"estimated memory above --max-memory-gb ({estimate / 2**30:.1f} GiB)"
        else:
            calls[case.name] = _prepare(case, shape, mode, device, dtype)
    times = timing.time_interleaved(calls, warmup, repeats, device, on_call)
    peak = timing.peak_tflops(timing.device_name(device), dtype) if device.type == "cuda" else None
    out = []
    for case in cases:
        ts = times.get(case.name, skipped.get(case.name))
        if isinstance(ts, str):
            out.append({"case": case.name, **row, "skipped": ts})
            continue
        memory = timing.peak_memory(calls.pop(case.name), device)
        spread = timing.spread(ts)
        n_flops = flops(case, shape, mode)
        out.append({
            "case": case.name, **row, "E": shape.E, "H": shape.H, "G": shape.G if case.kv_heads else shape.H,
            "time_s": spread,
            "tokens_per_s": shape.B * shape.L / spread["median"],
            "flops": n_flops,
            "tflops_per_s": n_flops / spread["median"] / 1e12,
            "peak_fraction": None if peak is None else n_flops / spread["median"] / 1e12 / peak,
            "peak_memory_bytes": memory,
        })
    return out


def run_benchmark(
    cases: Sequence[str],
    shape: Shape,
    *,
    device: torch.device,
    dtypes: Sequence[torch.dtype],
    modes: Sequence[str] = ("fwd", "fwd+bwd"),
    warmup: int = 2,
    repeats: int = 7,
    seq_lens: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
    sweep_cases: Sequence[str] = (),
    sweep_modes: Sequence[str] = ("fwd",),
    sweep_batch: int = 1,
    sweep_len: int = 1024,
    max_memory_bytes: float = float("inf"),
    progress: bool = True,
) -> dict:
    """Time every case at ``shape``, then the sweeps, and check the targets.

    Args:
        cases: names from [`make_cases()`][attnref.bench.make_cases] to run at the default shape.
        shape: the default shape.
        device: where to run.
        dtypes: dtypes to run in (each case and mode once per dtype).
        modes: ``"fwd"`` and/or ``"fwd+bwd"``.
        warmup: untimed calls before timing.
        repeats: timed calls; the median and spread are reported.
        seq_lens: sequence lengths of the L sweep (batch ``sweep_batch``); empty for none.
        batch_sizes: batch sizes of the B sweep (length ``sweep_len``); empty for none.
        sweep_cases: cases of both sweeps (those not in ``cases`` are skipped).
        sweep_modes: modes of the sweeps.
        sweep_batch: batch size of the L sweep.
        sweep_len: sequence length of the B sweep.
        max_memory_bytes: skip a call whose estimated memory exceeds this (recorded as skipped).
        progress: show a tqdm progress bar (needs tqdm, from the ``bench`` extra).

    Returns:
        The JSON-ready result: ``environment``, ``config``, ``results`` (default shape),
        ``sweep`` and ``targets``.
    """
    known = make_cases()
    groups = []  # (axis, cases, shape, mode, dtype), each timed interleaved
    sweep_names = [n for n in sweep_cases if n in cases]
    for dtype in dtypes:
        for mode in modes:
            groups.append(("default", [known[n] for n in cases], shape, mode, dtype))
        for mode in sweep_modes:
            for L in seq_lens:
                groups.append(("L", [known[n] for n in sweep_names], Shape(sweep_batch, L, shape.E, shape.H, shape.G),
                               mode, dtype))
            for B in batch_sizes:
                groups.append(("B", [known[n] for n in sweep_names], Shape(B, sweep_len, shape.E, shape.H, shape.G),
                               mode, dtype))
    results, sweep = [], []
    total = sum(len(g[1]) for g in groups) * (warmup + repeats)
    bar = progress_bar(total, "forward", "call", progress)
    started = time.perf_counter()
    for axis, group, s, mode, dtype in groups:
        bar.set_postfix_str(f"{mode} B={s.B} L={s.L}", refresh=False)
        entries = _measure_group(group, s, mode, device, dtype, warmup, repeats, max_memory_bytes,
                                 lambda: bar.update(1))
        if axis == "default":
            results += entries
        else:
            sweep += [dict(e, axis=axis) for e in entries]
    bar.close()
    environment = timing.environment(device) | {"wall_time_s": time.perf_counter() - started}
    config = {
        "shape": asdict(shape) | {"D": shape.D},
        "dtypes": [str(d).removeprefix("torch.") for d in dtypes],
        "modes": list(modes), "warmup": warmup, "repeats": repeats,
        "cases": {n: {"kind": known[n].kind, "description": known[n].description, "causal": known[n].causal,
                      "eager": known[n].eager, "same_function": list(known[n].same_function),
                      "bare": known[n].bare} for n in cases},
        "sweep": {"seq_lens": list(seq_lens), "batch_sizes": list(batch_sizes), "cases": sweep_names,
                  "modes": list(sweep_modes), "sweep_batch": sweep_batch, "sweep_len": sweep_len},
        "timing": TIMING,
        "flops": FLOPS,
        "memory": timing.memory_method(device),
        "peak_tflops": timing.peak_tflops(environment["device_name"], dtypes[0]) if device.type == "cuda" else None,
    }
    data = {"schema": 2, "kind": "forward", "environment": environment, "config": config, "results": results,
            "sweep": sweep}
    data["targets"] = forward_targets({n: known[n] for n in cases}, results, shape, sweep)
    return data
