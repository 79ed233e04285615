"""What counts as fast enough: the performance targets and the verdicts on a result.

Every verdict is ``holds`` True or False, or None where the target does not apply (with a
``why``). Ratios are taken between numbers of the same run, never across runs.
"""

from __future__ import annotations

import math
import statistics

from attnref.bench.cases import Case, Shape

__all__ = ["TARGETS", "forward_targets", "decode_targets"]

TARGETS = {
    "vs_native": 1.05,
    "overhead": 0.10,
    "memory_exponent": 1.3,
    "decode_speedup": 1.3,
    "statistic": "min",
}
"""Performance targets.

- ``vs_native``: an attnref module takes at most this many times the time of the fastest
  torch-native path computing the same function (forward and forward + backward).
- ``overhead``: the share of its time outside the projections + attention kernel (measured
  against a bare baseline doing only those) stays below this.
- ``memory_exponent``: its default path's memory grows like ``L^a`` with ``a`` at most this
  (linear, against the eager path's ``a`` near 2), fitted over the sweep's three longest lengths.
- ``decode_speedup``: decoding with attnref's
  [`StaticKVCache`][attnref.llama.StaticKVCache] reaches at least this many times the tokens/s of
  transformers' ``LlamaAttention`` with ``DynamicCache``, at the longest cache length measured.

Times are compared by their ``statistic`` over the interleaved repeats: the minimum, because
interference from other work on the machine only ever adds time, so the fastest repeat is the
best estimate of the code's own cost."""


def _index(results: list[dict]) -> dict:
    return {(r["case"], r["mode"], r["dtype"], r["B"], r["L"]): r for r in results if "time_s" in r}


def forward_targets(cases: dict[str, Case], results: list[dict], shape: Shape, sweep: list[dict]) -> dict:
    """Judge the forward benchmark's results.

    Args:
        cases: the cases that ran, by name.
        results: the default-shape results.
        shape: the default shape.
        sweep: the sweep results (for the memory exponent).

    Returns:
        ``{"vs_native": [...], "overhead": [...], "memory_linear": [...], "limits": TARGETS}``,
        one row per attnref case (default path), mode and dtype.
    """
    by = _index(results)
    stat = TARGETS["statistic"]
    vs_native, overhead, memory = [], [], []
    keys = sorted({(r["mode"], r["dtype"]) for r in results if "time_s" in r})
    for name, case in cases.items():
        if case.kind != "attnref" or case.eager:
            continue
        for mode, dtype in keys:
            mine = by.get((name, mode, dtype, shape.B, shape.L))
            if mine is None:
                continue
            t = mine["time_s"][stat]
            refs = [(n, by[(n, mode, dtype, shape.B, shape.L)]["time_s"][stat]) for n in case.same_function
                    if (n, mode, dtype, shape.B, shape.L) in by]
            if case.same_function and refs:
                ref_name, ref_t = min(refs, key=lambda p: p[1])
                ratio = t / ref_t
                vs_native.append({"case": name, "mode": mode, "dtype": dtype, "reference": ref_name,
                                  "ratio": ratio, "limit": TARGETS["vs_native"],
                                  "holds": ratio <= TARGETS["vs_native"]})
            elif not case.same_function:
                vs_native.append({"case": name, "mode": mode, "dtype": dtype, "reference": None, "ratio": None,
                                  "limit": TARGETS["vs_native"], "holds": None, "why": case.note})
            bare = by.get((case.bare, mode, dtype, shape.B, shape.L)) if case.bare else None
            if bare is not None:
                share = 1.0 - bare["time_s"][stat] / t
                entry = {"case": name, "mode": mode, "dtype": dtype, "bare": case.bare, "share": share,
                         "limit": TARGETS["overhead"], "holds": share < TARGETS["overhead"]}
                if case.quadratic:
                    entry.update(holds=None, why="need_weights=True returns the (B, H, L, L) weights: "
                                                 "not a projections + kernel computation")
                overhead.append(entry)
    # Memory growth: exponent a of peak ~ L^a over the sweep's three longest lengths.
    for name, case in cases.items():
        if case.kind != "attnref":
            continue
        for mode, dtype in sorted({(r["mode"], r["dtype"]) for r in sweep if r["case"] == name}):
            points = sorted((r["L"], r["peak_memory_bytes"]) for r in sweep
                            if r["case"] == name and r["mode"] == mode and r["dtype"] == dtype
                            and r.get("axis") == "L" and "time_s" in r and r["peak_memory_bytes"] > 0)
            if len(points) < 2:
                continue
            top = points[-3:]
            xs = [math.log(p[0]) for p in top]
            ys = [math.log(p[1]) for p in top]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            entry = {"case": name, "mode": mode, "dtype": dtype, "exponent": a,
                     "L": [p[0] for p in top], "limit": TARGETS["memory_exponent"]}
            if case.eager or case.quadratic:
                entry["holds"] = None
                entry["why"] = "explicit path: materialises L x L weights (quadratic by design)"
            else:
                entry["holds"] = a <= TARGETS["memory_exponent"]
            memory.append(entry)
    return {"vs_native": vs_native, "overhead": overhead, "memory_linear": memory, "limits": TARGETS}


def decode_targets(ratios: list[dict], case: str, reference: str) -> dict:
    """Judge the decode benchmark: ``case`` against ``reference`` at the longest cache length.

    Args:
        ratios: the decode result's ``ratios`` rows (``case``, ``reference``, ``cache_len``,
            ``speedup``).
        case: the variant held to the target (attnref with its preallocated cache).
        reference: the variant it is compared with (transformers with ``DynamicCache``).

    Returns:
        ``{"decode_speedup": [row], "limits": TARGETS}``; the row is ``holds`` None with a ``why``
        when either variant has no result at that length.
    """
    rows = [r for r in ratios if r["case"] == case and r["reference"] == reference]
    limit = TARGETS["decode_speedup"]
    if not rows:
        return {"decode_speedup": [{"case": case, "reference": reference, "cache_len": None, "speedup": None,
                                    "limit": limit, "holds": None,
                                    "why": f"no result for both {case} and {reference}"}],
                "limits": TARGETS}
    row = max(rows, key=lambda r: r["cache_len"])
    verdict = None if row["speedup"] is None else row["speedup"] >= limit
    return {"decode_speedup": [dict(row, limit=limit, holds=verdict)], "limits": TARGETS}
