"""How the benchmarks report: one JSON file per run, a printed summary, and a PNG plot.

A result file is named ``<kind>-<device>-<device name>.json`` (``bench-cpu-amd-epyc.json`` for the
forward benchmark, ``decode-cpu-amd-epyc.json`` for the decode one) and holds everything needed to
read it later: the machine and package versions (``environment``), the settings and methods
(``config``), every measurement, and the verdict on each target.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from attnref.bench._deps import require
from attnref.bench.timing import slug

__all__ = ["write_json", "plot", "plot_decode", "print_summary", "INDICATIVE"]

INDICATIVE = (
    "note: --quick figures are indicative only: few repeats at a small shape, on a machine that may be "
    "doing other work. Timing noise of a few per cent (more on a shared machine) can put a ratio on "
    "either side of its limit, so a target line can read FAILS without a defect, or holds without "
    "proof. Judge the targets from the full preset on a quiet machine."
)
"""What ``--quick`` prints after its results, and records in the JSON's ``config``."""

_PREFIX = {"forward": "bench", "decode": "decode"}


def write_json(data: dict, out: str | Path) -> Path:
    """Write ``data`` to ``out/<kind>-<device>-<device name>.json`` and return the path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = data["environment"]
    path = out / f"{_PREFIX[data['kind']]}-{env['device']}-{slug(env['device_name'])}.json"
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return path


def _pyplot():
    matplotlib = require("matplotlib", "the plot; --no-plot writes the JSON only")
    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------


def plot(data: dict) -> "matplotlib.figure.Figure":
    """Draw a forward result: time per case at the default shape, and the L sweep.

    Args:
        data: what [`run_benchmark()`][attnref.bench.run_benchmark] returns (or its JSON, loaded).

    Returns:
        A matplotlib ``Figure`` with up to three panels, namely the median time per case and mode
        (bars, quartiles as error bars), then time and peak memory against L (log-log).
    """
    plt = _pyplot()
    results = [r for r in data["results"] if "time_s" in r]
    dtype = results[0]["dtype"] if results else None
    results = [r for r in results if r["dtype"] == dtype]
    sweep = [r for r in data.get("sweep", []) if "time_s" in r and r.get("axis") == "L" and r["dtype"] == dtype]
    panels = 1 + (2 if sweep else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels + 1.5, 4.2), squeeze=False)
    axes = axes[0]
    names = list(dict.fromkeys(r["case"] for r in results))
    modes = list(dict.fromkeys(r["mode"] for r in results))
    ax = axes[0]
    height = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        by = {r["case"]: r for r in results if r["mode"] == mode}
        ys = [i + (j - (len(modes) - 1) / 2) * height for i in range(len(names))]
        med = [by[n]["time_s"]["median"] * 1e3 if n in by else 0 for n in names]
        err = [[(by[n]["time_s"]["median"] - by[n]["time_s"]["q25"]) * 1e3 if n in by else 0 for n in names],
               [(by[n]["time_s"]["q75"] - by[n]["time_s"]["median"]) * 1e3 if n in by else 0 for n in names]]
        ax.barh(ys, med, height=height, xerr=err, label=mode, capsize=1.5)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median time per call (ms)")
    s = data["config"]["shape"]
    ax.set_title(f"B={s['B']} L={s['L']} E={s['E']} H={s['H']}, {dtype}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if sweep:
        mode = sweep[0]["mode"]
        lines = [r for r in sweep if r["mode"] == mode]
        for name in dict.fromkeys(r["case"] for r in lines):
            pts = sorted((r["L"], r["time_s"]["median"] * 1e3, r["peak_memory_bytes"] / 2**20)
                         for r in lines if r["case"] == name)
            style = "--" if ("eager" in name or "nw=True" in name) else "-"
            axes[1].plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".", label=name)
            axes[2].plot([p[0] for p in pts], [max(p[2], 1e-1) for p in pts], style, marker=".", label=name)
        for ax, label in ((axes[1], "median time (ms)"), (axes[2], "peak extra memory (MiB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length L")
            ax.set_ylabel(label)
            ax.set_title(f"{mode}, B={lines[0]['B']}", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
        axes[2].legend(fontsize=6, loc="upper left")
    _title(fig, data)
    return fig


def plot_decode(data: dict) -> "matplotlib.figure.Figure":
    """Draw a decode result: tokens/s of each variant against the cache length.

    Args:
        data: what [`run_decode()`][attnref.bench.run_decode] returns (or its JSON, loaded).

    Returns:
        A matplotlib ``Figure``: tokens/s (fastest trial, bars to the median trial) against the cache
        length, log-log, one line per variant.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    rows = [r for r in data["results"] if "tokens_per_s" in r]
    for name in dict.fromkeys(r["variant"] for r in rows):
        pts = sorted((r["cache_len"], r["tokens_per_s"]["best"], r["tokens_per_s"]["median"])
                     for r in rows if r["variant"] == name)
        xs, best, median = zip(*pts)
        style = "-" if name.startswith("attnref") else "--"
        ax.errorbar(xs, best, yerr=[[b - m for b, m in zip(best, median)], [0] * len(xs)], fmt=style,
                    marker=".", capsize=2, label=name)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("cache length S (tokens cached when decoding starts)")
    ax.set_ylabel("decode tokens/s (fastest trial)")
    s = data["config"]["shape"]
    ax.set_title(f"B={s['B']} E={s['E']} H={s['H']} G={s['G']}, {data['config']['dtype']}, "
                 f"{data['config']['steps']} steps", fontsize=9)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7)
    _title(fig, data)
    return fig


def _title(fig, data: dict) -> None:
    env = data["environment"]
    fig.suptitle(f"{env['device_name']} ({env['threads']} threads), torch {env['torch']}, "
                 f"attnref {env['attnref']}", fontsize=9)
    fig.tight_layout()


# --------------------------------------------------------------------------------------------
# Printed summary
# --------------------------------------------------------------------------------------------


def _verdict(holds: bool | None) -> str:
    return {True: "holds", False: "FAILS", None: "n/a"}[holds]


def print_summary(data: dict, file=None) -> None:
    """Print a result's table and its targets (and the ``--quick`` note where it applies).

    Args:
        data: a forward or decode result.
        file: where to print; standard output by default.
    """
    file = sys.stdout if file is None else file
    env = data["environment"]
    print(f"{env['device_name']}, {env['threads']} threads, torch {env['torch']}, attnref {env['attnref']}"
          + (f", transformers {env['transformers']}" if env.get("transformers") else ""), file=file)
    (_forward_table if data["kind"] == "forward" else _decode_table)(data, file)
    if data["config"].get("indicative"):
        print(INDICATIVE, file=file)


def _forward_table(data: dict, file) -> None:
    print(f"{'case':30s} {'mode':8s} {'median ms':>10s} {'IQR ms':>14s} {'tok/s':>10s} {'GFLOP/s':>9s} "
          f"{'mem MiB':>8s}", file=file)
    for r in data["results"]:
        if "time_s" not in r:
            print(f"{r['case']:30s} {r['mode']:8s} skipped: {r['skipped']}", file=file)
            continue
        t = r["time_s"]
        print(f"{r['case']:30s} {r['mode']:8s} {t['median'] * 1e3:10.1f} "
              f"{t['q25'] * 1e3:6.1f}-{t['q75'] * 1e3:<7.1f} {r['tokens_per_s']:10.0f} "
              f"{r['tflops_per_s'] * 1e3:9.1f} {r['peak_memory_bytes'] / 2**20:8.1f}", file=file)
    for kind, rows in data["targets"].items():
        if kind == "limits":
            continue
        for t in rows:
            value = t.get("ratio", t.get("share", t.get("exponent")))
            shown = "-" if value is None else f"{value:.3f}"
            print(f"target {kind:13s} {t['case']:30s} {t['mode']:8s} {shown:>7s} (limit {t['limit']}) "
                  f"{_verdict(t['holds'])}", file=file)


def _decode_table(data: dict, file) -> None:
    print(f"{'variant':28s} {'cache':>6s} {'tok/s best':>11s} {'tok/s median':>13s} {'prefill ms':>11s} "
          f"{'peak MiB':>9s} {'cache MiB':>10s} {'max |diff|':>10s}", file=file)
    for r in data["results"]:
        if "tokens_per_s" not in r:
            print(f"{r['variant']:28s} {r['cache_len']:6d} skipped: {r['skipped']}", file=file)
            continue
        tok = r["tokens_per_s"]
        print(f"{r['variant']:28s} {r['cache_len']:6d} {tok['best']:11.0f} {tok['median']:13.0f} "
              f"{r['prefill_s']['min'] * 1e3:11.1f} {r['peak_memory_bytes'] / 2**20:9.1f} "
              f"{r['cache_bytes'] / 2**20:10.1f} {r['max_abs_diff']:10.1e}", file=file)
    for r in data["ratios"]:
        print(f"ratio {r['case']:24s} / {r['reference']:28s} cache {r['cache_len']:6d} {r['speedup']:6.2f}x",
              file=file)
    for t in data["targets"]["decode_speedup"]:
        shown = "-" if t["speedup"] is None else f"{t['speedup']:.2f}x"
        print(f"target decode_speedup {t['case']} / {t['reference']} at cache {t['cache_len']}: {shown} "
              f"(limit {t['limit']}x) {_verdict(t['holds'])}", file=file)
