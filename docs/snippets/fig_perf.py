# Tables, figures and the sentences with numbers on the performance page (docs/*/performance.md),
# computed at build time from the committed results docs/data/bench-*.json (forward benchmark) and
# docs/data/decode-*.json (decode benchmark), both written by `python -m attnref.bench`. No number
# on the page is typed by hand. Functions take the page's language; svg.py's conventions apply to
# the figures (colours, text, no raster) and its tr() picks the words (include svg.py first).
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
        "skipped": "skipped", "threads": "threads", "calls": "timed calls", "warmup": "warm-up",
        "trials": "timed trials of", "steps": "steps", "cache_len": "cache length S",
        "variant": "variant", "peak": "peak MiB while decoding", "held": "cache MiB", "diff": "max |difference|",
    },
    "zh": {
        "case": "用例", "fwd": "前向", "fwd+bwd": "前向 + 反向", "median": "中位数 ms（四分位距）", "min": "最小 ms",
        "tok": "tokens/s", "gflops": "GFLOP/s", "mem": "峰值 MiB", "none": "尚未提交基准测试结果。",
        "target": "目标", "mode": "模式", "value": "实测", "limit": "上限", "status": "结论",
        "holds": "达成", "fails": "未达成", "na": "不适用", "ref": "对照",
        "vs_native": "相对同一函数最快的 PyTorch 原生实现的耗时比",
        "overhead": "投影与注意力核之外的耗时占比",
        "memory_linear": "内存增长指数 a（峰值 ~ L^a）",
        "skipped": "跳过", "threads": "线程", "calls": "次计时调用", "warmup": "次预热",
        "trials": "次计时试验，每次", "steps": "步", "cache_len": "缓存长度 S",
        "variant": "变体", "peak": "解码时峰值 MiB", "held": "缓存 MiB", "diff": "最大差值",
    },
}

# Decode variants: colour = library, solid = preallocated cache, dashed = growing cache.
_DECODE_STYLE = {
    "attnref[StaticKVCache]": ("c0", "-"), "attnref[KVCache]": ("c0", "--"),
    "transformers[StaticCache]": ("c1", "-"), "transformers[DynamicCache]": ("c1", "--"),
}


def _load(pattern: str, folder: str) -> list[dict]:
    runs = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob(pattern))]
    return sorted(runs, key=lambda r: (r["environment"]["device"] != "cpu", r["environment"]["device_name"]))


def load_runs(folder: str = "docs/data") -> list[dict]:
    """Every committed forward result, CPU first; the path is relative to the repository root."""
    return _load("bench-*.json", folder)


def load_decode(folder: str = "docs/data") -> list[dict]:
    """Every committed decode result, CPU first."""
    return _load("decode-*.json", folder)


def describe(run: dict, lang: str) -> str:
    """The machine, the package versions and the settings a result was measured with, in one line."""
    t = _LABELS[lang]
    env, config = run["environment"], run["config"]
    shape = config["shape"]
    if run.get("kind") == "decode":
        dims = f"B={shape['B']} E={shape['E']} H={shape['H']} G={shape['G']}"
        dtypes = config["dtype"]
        repeats = f"{config['warmup']} {t['warmup']} + {config['repeats']} {t['trials']} {config['steps']} {t['steps']}"
    else:
        dims = f"B={shape['B']} L={shape['L']} E={shape['E']} H={shape['H']} G={shape['G']}"
        dtypes = ", ".join(config["dtypes"])
        repeats = f"{config['warmup']} {t['warmup']} + {config['repeats']} {t['calls']}"
    parts = [
        f"{env['device_name']} ({env['device']}, {t['threads']}: {env['threads']})",
        f"attnref {env['attnref']}", f"torch {env['torch']}",
        f"transformers {env['transformers']}" if env.get("transformers") else "",
        f"Python {env['python']}", dtypes, dims, repeats, env["date"][:10],
    ]
    return " · ".join(html.escape(p) for p in parts if p)


def shape_of(run: dict) -> dict:
    """The default shape's letters, for sentences: {"B": 8, "L": 1024, ...}."""
    return run["config"]["shape"]


def shape_sentence(run: dict, lang: str) -> str:
    """The default shape, in words."""
    s = shape_of(run)
    return tr(lang,
              en=f"batch B = {s['B']}, L = {s['L']:,} tokens, model dim E = {s['E']}, H = {s['H']} heads (head dim "
                 f"D = {s['D']}), and G = {s['G']} key/value heads in the GQA cases.",
              zh=f"批大小 B = {s['B']}，L = {s['L']:,} 个 token，模型维度 E = {s['E']}，H = {s['H']} 个头（头维度 "
                 f"D = {s['D']}），GQA 用例取 G = {s['G']} 个键/值头。")


def sweep_sentence(run: dict, lang: str) -> str:
    """The L sweep's batch and lengths, in words."""
    B, shortest, longest = sweep_lengths(run)
    return tr(lang, en=f"batch {B}, L from {shortest:,} to {longest:,}.",
              zh=f"批大小 {B}，L 从 {shortest:,} 到 {longest:,}。")


def traffic_sentence(run: dict, lang: str) -> str:
    """What the explicit path moves through memory at the default shape, per score."""
    s = shape_of(run)
    matrix = s["B"] * s["H"] * s["L"] ** 2 * 4 / 2**20
    qkvo = 4 * s["B"] * s["L"] * s["E"] * 4 / 2**20
    return tr(
        lang,
        en=f"At the default shape that is {s['B']} · {s['H']} · {s['L']:,}² float32 values, {matrix:,.0f} MiB per "
           f"matrix, while q, k, v and the output together are {qkvo:,.0f} MiB. Each score is worth 4D = "
           f"{4 * s['D']} FLOPs (2D in qkᵀ, 2D in the weighted sum), and the explicit path moves at least 16 "
           f"bytes per score for it (scores written and read, weights written and read, in float32): about "
           f"{4 * s['D'] / 16:.0f} FLOPs per byte.",
        zh=f"默认形状下这是 {s['B']} · {s['H']} · {s['L']:,}² 个 float32，每个矩阵 {matrix:,.0f} MiB，而 q、k、v "
           f"和输出加在一起只有 {qkvo:,.0f} MiB。每个分数值 4D = {4 * s['D']} 次浮点运算（qkᵀ 中 2D，加权求和中 "
           f"2D），显式路径却要为它搬运至少 16 字节（分数写出再读回、权重写出再读回，均为 float32）：每字节约 "
           f"{4 * s['D'] / 16:.0f} 次运算。")


def targets_intro(run: dict, lang: str) -> str:
    """The four targets with their limits, as a Markdown list."""
    limits = run["targets"]["limits"]
    return tr(
        lang,
        en=f"- **time**: each module (default path) takes at most **{limits['vs_native']}×** the time of the "
           f"fastest torch-native path computing the same function;\n"
           f"- **overhead**: the share of its time spent outside the projections and the attention kernel "
           f"(reshapes, RoPE, norms, masks, argument checks) stays under **{limits['overhead']:.0%}** at the "
           f"default shape;\n"
           f"- **memory**: the memory of the default path grows linearly in L (exponent a ≤ "
           f"{limits['memory_exponent']} over the three longest lengths of the sweep) where the explicit path "
           f"grows as L²;\n"
           f"- **decoding**: with `StaticKVCache`, attnref decodes at least **{limits['decode_speedup']}×** the "
           f"tokens/s of transformers with `DynamicCache` at the longest cache measured.",
        zh=f"- **耗时**：每个模块（默认路径）的耗时不超过计算同一函数的最快 PyTorch 原生路径的 "
           f"**{limits['vs_native']} 倍**；\n"
           f"- **额外开销**：默认形状下，投影和注意力核之外的耗时（reshape、RoPE、归一化、掩码、参数检查）"
           f"占比低于 **{limits['overhead']:.0%}**；\n"
           f"- **内存**：默认路径的内存随 L 线性增长（扫描中最长三个长度上拟合的指数 a ≤ "
           f"{limits['memory_exponent']}），而显式路径按 L² 增长；\n"
           f"- **解码**：在测量的最长缓存下，attnref 配 `StaticKVCache` 的解码 tokens/s 至少是 transformers 配 "
           f"`DynamicCache` 的 **{limits['decode_speedup']} 倍**。")


def results_table(run: dict, lang: str) -> str:
    """One table per mode: a row per case with its median, quartiles, minimum, throughput and memory."""
    t = _LABELS[lang]
    out = [f"<p><small>{describe(run, lang)}</small></p>"]
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
                        f"<td>{t[row['mode']]}</td><td>{ref}</td><td>{shown}</td><td>{limit}</td><td>{status}</td></tr>")
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


def sweep_lengths(run: dict) -> tuple[int, int, int]:
    """(batch, shortest L, longest L) of the L sweep."""
    sweep = run["config"]["sweep"]
    return sweep["sweep_batch"], min(sweep["seq_lens"]), max(sweep["seq_lens"])


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


def _decode_rows(run: dict) -> dict:
    return {(r["variant"], r["cache_len"]): r for r in run["results"] if "tokens_per_s" in r}


def _speedup(run: dict, case: str, reference: str, S: int) -> float | None:
    for r in run["ratios"]:
        if (r["case"], r["reference"], r["cache_len"]) == (case, reference, S):
            return r["speedup"]
    return None


def decode_table(run: dict, lang: str) -> str:
    """Tokens/s of every variant at every cache length (fastest trial, median trial in brackets),
    the preallocated cache's speedup over DynamicCache, then memory at the longest cache length."""
    t = _LABELS[lang]
    rows = _decode_rows(run)
    variants = list(run["config"]["variants"])
    lens = run["config"]["cache_lens"]
    head = "".join(f"<th><code>{html.escape(v)}</code></th>" for v in variants)
    ratio = ("attnref[StaticKVCache]", "transformers[DynamicCache]")
    body = []
    for S in lens:
        cells = []
        for v in variants:
            r = rows.get((v, S))
            cells.append("<td>–</td>" if r is None else
                         f"<td>{r['tokens_per_s']['best']:,.0f} ({r['tokens_per_s']['median']:,.0f})</td>")
        speedup = _speedup(run, *ratio, S)
        cells.append(f"<td>{'–' if speedup is None else f'{speedup:.2f}×'}</td>")
        body.append(f"<tr><td>{S:,}</td>{''.join(cells)}</tr>")
    out = [f"<p><small>{describe(run, lang)}</small></p>",
           f"<table><tr><th>{t['cache_len']}</th>{head}<th><code>StaticKVCache</code> ÷ "
           f"<code>DynamicCache</code></th></tr>{''.join(body)}</table>"]
    S = max(lens)
    mem = []
    for v in variants:
        r = rows.get((v, S))
        if r is not None:
            mem.append(f"<tr><td><code>{html.escape(v)}</code></td><td>{r['peak_memory_bytes'] / 2**20:,.1f}</td>"
                       f"<td>{r['cache_bytes'] / 2**20:,.1f}</td><td>{r['max_abs_diff']:.1e}</td></tr>")
    out.append(f"<p><strong>{t['cache_len']} = {S:,}</strong></p><table><tr><th>{t['variant']}</th>"
               f"<th>{t['peak']}</th><th>{t['held']}</th><th>{t['diff']}</th></tr>{''.join(mem)}</table>")
    return "".join(out)


def decode_figure(lang: str, run: dict):
    """Tokens/s against the cache length, and attnref's speedup over transformers' DynamicCache."""
    rows = _decode_rows(run)
    lens = run["config"]["cache_lens"]
    target = run["targets"]["limits"]["decode_speedup"]
    colours = {"c0": C0, "c1": C1}
    fig, (ax_t, ax_r) = plt.subplots(1, 2, figsize=(7.2, 4.0))
    for v in run["config"]["variants"]:
        pts = [(S, rows[(v, S)]["tokens_per_s"]["best"]) for S in lens if (v, S) in rows]
        colour, dash = _DECODE_STYLE[v]
        ax_t.plot([p[0] for p in pts], [p[1] for p in pts], dash, color=colours[colour], marker=".", lw=1.2, label=v)
    for case in ("attnref[StaticKVCache]", "attnref[KVCache]"):
        pts = [(S, _speedup(run, case, "transformers[DynamicCache]", S)) for S in lens]
        pts = [p for p in pts if p[1] is not None]
        ax_r.plot([p[0] for p in pts], [p[1] for p in pts], _DECODE_STYLE[case][1], color=C0, marker=".", lw=1.2,
                  label=f"{case} ÷ DynamicCache")
    ax_r.axhline(target, color=MUTED, lw=1, ls=":")
    ax_r.axhline(1.0, color=GRID, lw=1)
    ax_r.annotate(tr(lang, f"target {target}×", f"目标 {target}×"), (lens[0], target), xytext=(2, 3),
                  textcoords="offset points", fontsize=7, color=MUTED)
    ax_t.set_ylabel(tr(lang, "tokens/s, fastest trial", "tokens/s（最快一次试验）"), fontsize=8)
    ax_r.set_ylabel(tr(lang, "tokens/s ratio to DynamicCache", "与 DynamicCache 的 tokens/s 之比"), fontsize=8)
    for ax in (ax_t, ax_r):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(tr(lang, "tokens in the cache S", "缓存中的 token 数 S"))
        ax.grid(True, which="major")
    ax_t.set_yscale("log")
    handles, labels = ax_t.get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2, frameon=False)
    fig.tight_layout(rect=(0, 0.17, 1, 1))
    return fig


def decode_summary(run: dict, lang: str) -> str:
    """The decode results in two sentences, numbers from the run."""
    rows = _decode_rows(run)
    S = max(run["config"]["cache_lens"])
    tok = {v: rows[(v, S)]["tokens_per_s"]["best"] for v in run["config"]["variants"] if (v, S) in rows}
    static, growing = tok.get("attnref[StaticKVCache]"), tok.get("attnref[KVCache]")
    dynamic, hf_static = tok.get("transformers[DynamicCache]"), tok.get("transformers[StaticCache]")
    diff = max(r["max_abs_diff"] for r in rows.values())
    if None in (static, growing, dynamic, hf_static):
        return tr(lang, "Not every variant ran; see the table.", "并非每个变体都跑了，见上表。")
    return tr(
        lang,
        en=f"With {S:,} tokens cached, attnref's `LlamaAttention` decodes {static:,.0f} tokens/s with "
           f"`StaticKVCache` and {growing:,.0f} with `KVCache`; transformers' decodes {dynamic:,.0f} with "
           f"`DynamicCache` and {hf_static:,.0f} with `StaticCache`. The preallocated cache is "
           f"{static / growing:.2f}× attnref's growing one and {static / dynamic:.2f}× transformers with "
           f"`DynamicCache`. Every variant's last output agrees with attnref's growing cache to "
           f"{diff:.0e} or better: the same function, computed four ways.",
        zh=f"缓存中有 {S:,} 个 token 时，attnref 的 `LlamaAttention` 用 `StaticKVCache` 每秒解码 "
           f"{static:,.0f} 个 token，用 `KVCache` 为 {growing:,.0f} 个；transformers 的用 `DynamicCache` "
           f"为 {dynamic:,.0f} 个，用 `StaticCache` 为 {hf_static:,.0f} 个。预分配缓存是 attnref 自己"
           f"增长式缓存的 {static / growing:.2f} 倍，是 transformers 配 `DynamicCache` 的 "
           f"{static / dynamic:.2f} 倍。每个变体最后一步的输出与 attnref 增长式缓存的结果相差不超过 "
           f"{diff:.0e}：同一个函数，四种算法。",
    )


# --------------------------------------------------------------------------------------------
# Targets, in words
# --------------------------------------------------------------------------------------------

# Why a module's time outside projections + kernel is what it is: work that belongs to its function.
_OVERHEAD_WHY = {
    "esm": dict(
        en="ESM's function includes three LayerNorms over (B, L, E) tensors (before the fused projection "
           "and on q and k) and the rotary embedding of q and k; the bare baseline has none of them",
        zh="ESM 的函数本身包含三次对 (B, L, E) 张量的 LayerNorm（融合投影之前一次，q、k 上各一次）以及 q、k "
           "的旋转位置编码；裸基线一样都没有"),
    "flux": dict(
        en="Flux's function includes the rotary embedding by 2×2 matrices, applied to q and k in float32; the "
           "bare baseline is the kernel alone",
        zh="Flux 的函数本身包含用 2×2 矩阵对 q、k 做的旋转位置编码（float32）；裸基线只有注意力核"),
    "llama[mha]": dict(
        en="LLaMA's function includes the rotary embedding of q and k in float32, which transformers computes "
           "as well; the bare baseline has none",
        zh="LLaMA 的函数本身包含 q、k 的 float32 旋转位置编码，transformers 同样要算；裸基线没有"),
}
_OVERHEAD_WHY["llama[gqa]"] = _OVERHEAD_WHY["llama[mha]"]
_NOTHING_EXTRA = dict(
    en="the module computes nothing the bare baseline does not: what remains is reshapes and argument checks",
    zh="该模块没有裸基线之外的计算：剩下的只是 reshape 和参数检查")


def _spread(run: dict, case: str, mode: str) -> float:
    """Half the interquartile range of a case's repeats, relative to its median."""
    for r in run["results"]:
        if r["case"] == case and r["mode"] == mode and "time_s" in r:
            s = r["time_s"]
            return (s["q75"] - s["q25"]) / 2 / s["median"]
    return float("nan")


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


def targets_summary(run: dict, decode: dict | None, lang: str) -> str:
    """Each target, forward mode and decoding: what holds, what misses, by how much and why."""
    lines = []
    native = [r for r in run["targets"]["vs_native"] if r["mode"] == "fwd"]
    untested = [f"`{r['case']}`" for r in native if r["holds"] is None]
    if untested:
        lines.append(tr(
            lang,
            en=f"- {', '.join(untested)}: no torch-native path computes their function (LayerNorms before and on "
               f"q/k, 2×2 RoPE matrices), so the time target does not apply.",
            zh=f"- {'、'.join(untested)}：没有哪条 PyTorch 原生路径计算它们的函数（q/k 前后的 LayerNorm、2×2 的 RoPE "
               f"矩阵），时间目标不适用。"))
    for row in (r for r in native if r["holds"] is not None):
        name, ref = f"`{row['case']}`", f"`{row['reference']}`"
        if row["holds"]:
            lines.append(tr(lang, f"- {name} against {ref}: {row['ratio']:.2f}×, holds.",
                            f"- {name} 对 {ref}：{row['ratio']:.2f} 倍，达成。"))
            continue
        miss = row["ratio"] - row["limit"]
        noise = max(_spread(run, row["case"], "fwd"), _spread(run, row["reference"], "fwd"))
        within = row["ratio"] - 1 <= noise
        lines.append(tr(
            lang,
            en=f"- {name} against {ref}: {row['ratio']:.2f}×, **misses** the {row['limit']:.2f}× limit by "
               f"{miss:.2f}. The repeats of the two spread by up to ±{_pct(noise)} around their medians, so a "
               f"{_pct(row['ratio'] - 1)} difference is "
               + ("within this machine's noise: not shown to be a cost of attnref, nor shown not to be." if within
                  else "larger than that spread: the repeats of this run do not explain it as noise."),
            zh=f"- {name} 对 {ref}：{row['ratio']:.2f} 倍，超出 {row['limit']:.2f} 倍的上限 {miss:.2f}。两者的重复测量"
               f"在各自中位数上下最多浮动 ±{_pct(noise)}，所以 {_pct(row['ratio'] - 1)} 的差距"
               + ("在这台机器的噪声之内：既不能说是 attnref 的开销，也不能说不是。" if within else
                  "超出了这个浮动范围：本次运行的重复测量无法把它解释为噪声。"),
        ))
    for row in (r for r in run["targets"]["overhead"] if r["mode"] == "fwd" and r["holds"] is not None):
        name = f"`{row['case']}`"
        if row["holds"]:
            lines.append(tr(lang, f"- {name}: overhead {_pct(row['share'])}, holds.",
                            f"- {name}：额外开销 {_pct(row['share'])}，达成。"))
            continue
        why = _OVERHEAD_WHY.get(row["case"], _NOTHING_EXTRA)[lang]
        miss = (row["share"] - row["limit"]) * 100
        lines.append(tr(
            lang,
            en=f"- {name}: overhead {_pct(row['share'])}, **misses** the {_pct(row['limit'])} limit by {miss:.1f} "
               f"percentage points: {why}.",
            zh=f"- {name}：额外开销 {_pct(row['share'])}，**超出** {_pct(row['limit'])} 的上限 {miss:.1f} 个百分点："
               f"{why}。"))
    if decode is not None:
        (row,) = decode["targets"]["decode_speedup"]
        if row["holds"] is None:
            lines.append(tr(lang, "- Decoding: not measured against transformers.", "- 解码：没有与 transformers 对比。"))
        else:
            short = row["limit"] - row["speedup"]
            lines.append(tr(
                lang,
                en=f"- Decoding with {row['cache_len']:,} tokens cached: `{row['case']}` reaches {row['speedup']:.2f}× "
                   f"the tokens/s of `{row['reference']}` (target {row['limit']}×): "
                   + ("holds." if row["holds"] else f"**misses** it by {short:.2f}."),
                zh=f"- 缓存 {row['cache_len']:,} 个 token 时解码：`{row['case']}` 的 tokens/s 是 `{row['reference']}` 的 "
                   f"{row['speedup']:.2f} 倍（目标 {row['limit']} 倍）："
                   + ("达成。" if row["holds"] else f"**未达成**，差 {short:.2f}。")))
            if not row["holds"]:
                lines[-1] += tr(lang, " ", "") + _decode_why(decode, row, lang)
    return "\n".join(lines)


def _decode_why(run: dict, row: dict, lang: str) -> str:
    """Why the preallocated cache gains what it gains: the bytes a decode step has to read."""
    shape, S = run["config"]["shape"], row["cache_len"]
    B, E, H, G, D = (shape[k] for k in "BEHGD")
    size = torch_dtype_size(run["config"]["dtype"])
    weights_mb = (2 * E * H * D + 2 * E * G * D) * size / 1e6  # q_proj, o_proj, k_proj, v_proj
    cache_mb = 2 * B * G * S * D * size / 1e6  # keys and values
    step_ms = 1e3 * B / _decode_rows(run)[(row["case"], S)]["tokens_per_s"]["best"]
    gbs = (weights_mb + cache_mb) / step_ms
    copy = _speedup(run, row["case"], "attnref[KVCache]", S) or float("nan")
    return tr(
        lang,
        en=f"Why: a decode step on this CPU is bound by memory traffic, not by arithmetic. Every variant reads "
           f"the four projections' weights ({weights_mb:.1f} MB) and the cached keys and values ({cache_mb:.1f} MB) "
           f"once per step; a preallocated cache saves only what a growing one adds, the copy of the cache into a "
           f"new tensor. attnref's step takes {step_ms:.2f} ms ({gbs:.1f} GB/s of reads at the least), and the copy "
           f"is all that separates attnref's own two caches: `StaticKVCache` is {copy:.2f}× `KVCache` at this "
           f"length. Reaching {row['limit']}× would need the copy to cost more than it does here.",
        zh=f"原因：在这台 CPU 上，一个解码步受内存读写量限制，而不是受算力限制。每个变体每一步都要读一遍四个投影的权重"
           f"（{weights_mb:.1f} MB）和缓存里的键与值（{cache_mb:.1f} MB）；预分配缓存省下的只是增长式缓存多出来的那部分："
           f"把整个缓存复制进一个新张量。attnref 一步用时 {step_ms:.2f} ms（至少每秒读 {gbs:.1f} GB），而 attnref "
           f"自己的两种缓存之间只差这次复制：在这个长度上 `StaticKVCache` 是 `KVCache` 的 {copy:.2f} 倍。要达到 "
           f"{row['limit']} 倍，这次复制得比在这里更贵才行。",
    )


def torch_dtype_size(name: str) -> int:
    """Bytes per element of a dtype named as in the benchmark's config ("float32", "bfloat16", ...)."""
    return {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}[name]
