# Tables and figures of the performance page (docs/*/performance.md), read at build time from the
# committed benchmark results docs/data/bench-*.json (written by `python -m attnref.bench`).
# Figure functions take the page's language; svg.py's conventions apply (colours, text, no raster).
import html
import json
from pathlib import Path

import matplotlib.pyplot as plt

_LABELS = {
    "en": {
        "case": "case", "fwd": "forward", "fwd+bwd": "forward + backward", "median": "median ms (IQR)", "min": "min ms",
        "tok": "tokens/s", "gflops": "GFLOP/s", "mem": "peak MiB", "none": "No benchmark results committed.",
        "target": "target", "mode": "mode", "value": "measured", "limit": "limit", "status": "status",
        "holds": "holds", "fails": "FAILS", "na": "not applicable", "ref": "compared with",
        "vs_native": "time vs fastest torch-native path, same function",
        "overhead": "share of time outside projections + kernel",
        "memory_linear": "memory growth exponent a (peak ~ L^a)",
        "skipped": "skipped",
    },
    "zh": {
        "case": "用例", "fwd": "前向", "fwd+bwd": "前向 + 反向", "median": "中位数 ms（四分位距）", "min": "最小 ms",
        "tok": "tokens/s", "gflops": "GFLOP/s", "mem": "峰值 MiB", "none": "尚未提交基准测试结果。",
        "target": "目标", "mode": "模式", "value": "实测", "limit": "上限", "status": "结论",
        "holds": "达成", "fails": "未达成", "na": "不适用", "ref": "对照",
        "vs_native": "相对同一函数最快的 PyTorch 原生实现的耗时比",
        "overhead": "投影与注意力核之外的耗时占比",
        "memory_linear": "内存增长指数 a（峰值 ~ L^a）",
        "skipped": "跳过",
    },
}


def load_runs(folder: str = "docs/data") -> list[dict]:
    """Every committed result, CPU first; the path is relative to the repository root."""
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("bench-*.json"))]
    return sorted(runs, key=lambda r: (r["environment"]["device"] != "cpu", r["environment"]["device_name"]))


def describe(run: dict) -> str:
    env, shape = run["environment"], run["config"]["shape"]
    parts = [
        f"{env['device_name']} ({env['device']}, {env['threads']} threads)",
        f"torch {env['torch']}", f"Python {env['python']}",
        f"transformers {env['transformers']}" if env.get("transformers") else "",
        ", ".join(run["config"]["dtypes"]),
        f"B={shape['B']} L={shape['L']} E={shape['E']} H={shape['H']} G={shape['G']}",
        f"{run['config']['warmup']} warm-up + {run['config']['repeats']} timed calls",
        f"commit {env['git_commit']}", env["date"][:10],
    ]
    return " · ".join(html.escape(p) for p in parts if p)


def results_table(run: dict, lang: str) -> str:
    """One table per mode: a row per case with its median, quartiles, minimum, throughput and memory."""
    t = _LABELS[lang]
    out = [f"<p><small>{describe(run)}</small></p>"]
    for mode in run["config"]["modes"]:
        head = (f"<tr><th>{t['case']}</th><th>{t['median']}</th><th>{t['min']}</th><th>{t['tok']}</th>"
                f"<th>{t['gflops']}</th><th>{t['mem']}</th></tr>")
        body = []
        for r in (r for r in run["results"] if r["mode"] == mode):
            name = f"<td style='white-space: nowrap'><code>{html.escape(r['case'])}</code></td>"
            if "time_s" not in r:
                body.append(f"<tr>{name}<td colspan='5'>{t['skipped']}: {html.escape(r['skipped'])}</td></tr>")
                continue
            s = r["time_s"]
            body.append(f"<tr>{name}<td>{s['median'] * 1e3:,.0f} ({s['q25'] * 1e3:,.0f}–{s['q75'] * 1e3:,.0f})</td>"
                        f"<td>{s['min'] * 1e3:,.0f}</td><td>{r['tokens_per_s']:,.0f}</td>"
                        f"<td>{r['tflops_per_s'] * 1e3:,.0f}</td><td>{r['peak_memory_bytes'] / 2**20:,.0f}</td></tr>")
        out.append(f"<p><strong>{t[mode]}</strong></p><table>{head}{''.join(body)}</table>")
    return "".join(out)


def targets_table(run: dict, lang: str) -> str:
    """One table per target: each case and mode with what it was compared with, the value and the verdict."""
    t = _LABELS[lang]
    head = (f"<tr><th>{t['case']}</th><th>{t['mode']}</th><th>{t['ref']}</th>"
            f"<th>{t['value']}</th><th>{t['limit']}</th><th>{t['status']}</th></tr>")
    out = []
    for kind in ("vs_native", "overhead", "memory_linear"):
        body = []
        for row in run["targets"][kind]:
            value = row.get("ratio", row.get("share", row.get("exponent")))
            if kind == "overhead" and value is not None:
                shown, limit = f"{value:.1%}", f"{row['limit']:.0%}"
            else:
                shown = "–" if value is None else f"{value:.2f}"
                limit = f"{row['limit']:.2f}"
            ref = row.get("reference") or row.get("bare")
            ref = f"<code>{html.escape(ref)}</code>" if ref else (
                f"L = {', '.join(map(str, row['L']))}" if "L" in row else "–")
            status = {True: t["holds"], False: f"<strong>{t['fails']}</strong>", None: t["na"]}[row["holds"]]
            body.append(f"<tr><td style='white-space: nowrap'><code>{html.escape(row['case'])}</code></td>"
                        f"<td>{row['mode']}</td><td>{ref}</td><td>{shown}</td><td>{limit}</td><td>{status}</td></tr>")
        out.append(f"<p><strong>{t[kind]}</strong></p><table>{head}{''.join(body)}</table>")
    return "".join(out)


def default_shape_figure(lang: str, run: dict):
    """Median time per case at the default shape, forward and forward + backward (quartiles as bars)."""
    results = [r for r in run["results"] if "time_s" in r]
    names = list(dict.fromkeys(r["case"] for r in results))
    modes = run["config"]["modes"]
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(names) + 1.2))
    height = 0.8 / len(modes)
    for j, mode in enumerate(modes):
        by = {r["case"]: r["time_s"] for r in results if r["mode"] == mode}
        ys = [i + (j - (len(modes) - 1) / 2) * height for i in range(len(names))]
        med = [by[n]["median"] * 1e3 if n in by else 0 for n in names]
        err = [[(by[n]["median"] - by[n]["q25"]) * 1e3 if n in by else 0 for n in names],
               [(by[n]["q75"] - by[n]["median"]) * 1e3 if n in by else 0 for n in names]]
        ax.barh(ys, med, height=height, xerr=err, capsize=1.5, label=_LABELS[lang][mode],
                color=(C0, C1)[j % 2], ecolor=INK)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(tr(lang, "median time per call (ms), lower is better", "每次调用的中位耗时（ms），越低越好"))
    ax.grid(True, axis="x")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def sweep_figure(lang: str, run: dict):
    """Time and peak memory against the sequence length L, default paths solid, L x L paths dashed."""
    sweep = [r for r in run["sweep"] if "time_s" in r and r.get("axis") == "L" and r["mode"] == "fwd"]
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(7.2, 4.2))
    for name in dict.fromkeys(r["case"] for r in sweep):
        pts = sorted((r["L"], r["time_s"]["median"] * 1e3, r["peak_memory_bytes"] / 2**20)
                     for r in sweep if r["case"] == name)
        style = "--" if ("eager" in name or "nw=True" in name) else "-"
        kw = dict(marker=".", lw=1.2, label=name)
        ax_t.plot([p[0] for p in pts], [p[1] for p in pts], style, **kw)
        ax_m.plot([p[0] for p in pts], [max(p[2], 0.1) for p in pts], style, **kw)
    B = sweep[0]["B"] if sweep else 1
    for ax, label in ((ax_t, tr(lang, "median time, forward (ms)", "前向中位耗时（ms）")),
                      (ax_m, tr(lang, "peak extra memory, forward (MiB)", "前向峰值额外内存（MiB）"))):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(tr(lang, f"sequence length L (B={B})", f"序列长度 L（B={B}）"))
        ax.set_ylabel(label, fontsize=8)
        ax.grid(True, which="major")
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3, frameon=False)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig
