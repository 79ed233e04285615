# Figures of the scaled dot-product attention page (docs/*/sdpa.md), computed with attnref.
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import numpy as np
import torch

from attnref import core


def saturation_figure(lang: str, n: int = 500, S: int = 16):
    """Mean largest softmax weight and mean normalised entropy against d_k, scaled vs unscaled."""
    gen = torch.Generator().manual_seed(0)
    dims = [2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    rows = {"raw": ([], []), "scaled": ([], [])}
    for d_k in dims:
        q_N1D = torch.randn(n, 1, d_k, generator=gen)
        k_NSD = torch.randn(n, S, d_k, generator=gen)
        scores_NS = (q_N1D @ k_NSD.transpose(-2, -1)).squeeze(1)
        for name, s in (("raw", scores_NS), ("scaled", scores_NS / d_k**0.5)):
            p = s.softmax(-1)
            entropy = -(p * p.clamp_min(1e-30).log()).sum(-1) / np.log(S)
            rows[name][0].append(p.amax(-1).mean().item())
            rows[name][1].append(entropy.mean().item())

    fig, axes = plt.subplots(1, 2, figsize=(7, 2.8), constrained_layout=True)
    labels = {"raw": tr(lang, "unscaled: q·k", "未缩放：q·k"), "scaled": tr(lang, "scaled: q·k/√dₖ", "缩放：q·k/√dₖ")}
    styles = {"raw": dict(color=C3, marker="o"), "scaled": dict(color=C0, marker="s")}
    ylabels = (tr(lang, "mean max weight", "平均最大权重"), tr(lang, "mean entropy / log S", "平均熵 / log S"))
    for i, (ax, ylabel) in enumerate(zip(axes, ylabels)):
        for name in ("raw", "scaled"):
            ax.plot(dims, rows[name][i], label=labels[name], ms=4, **styles[name])
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dₖ")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        ax.grid(True)
    axes[0].axhline(1 / S, color=MUTED, ls=":", lw=1)
    axes[0].text(dims[0], 1 / S + 0.02, tr(lang, "uniform 1/S", "均匀分布 1/S"), color=MUTED, fontsize=8)
    axes[0].legend(loc="center right", fontsize=8)
    fig.suptitle(tr(lang, f"softmax over S={S} keys, q and k with unit-variance entries",
                    f"对 S={S} 个键做 softmax，q、k 各分量方差为 1"), fontsize=9)
    return fig


def masks_figure(lang: str):
    """Causal, padding and packed-sequence masks (True = may attend) as (L, S) grids."""
    causal_LS = core.causal_mask(5)
    padding_LS = core.padding_mask(torch.tensor([5, 3]), S=5)[1, 0].expand(5, 5)
    seq_id = torch.tensor([[0, 0, 1, 1, 1]])
    packed_LS = core.seq_id_mask(seq_id)[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.6), constrained_layout=True)
    draw_mask(axes[0], causal_LS, "causal_mask(5)", **mask_labels(lang))
    draw_mask(axes[1], padding_LS, tr(lang, "padding_mask, length 3 of S=5", "padding_mask，S=5 中长度为 3"),
              **mask_labels(lang))
    draw_mask(axes[2], packed_LS, "seq_id_mask, seq_id = 0 0 1 1 1", **mask_labels(lang))
    return fig


def alignment_figure(lang: str, L: int = 3, S: int = 6):
    """Bottom-right (attnref, KV cache) versus top-left (PyTorch is_causal) causal masks, S > L."""
    bottom_right = core.causal_mask(L, S)
    top_left = torch.ones(L, S, dtype=torch.bool).tril()
    fig, axes = plt.subplots(1, 2, figsize=(6, 2.3), constrained_layout=True)
    draw_mask(axes[0], bottom_right, tr(lang, f"attnref causal_mask({L}, {S}): bottom-right",
                                        f"attnref causal_mask({L}, {S})：右下对齐"), **mask_labels(lang))
    draw_mask(axes[1], top_left, tr(lang, "PyTorch is_causal=True: top-left", "PyTorch is_causal=True：左上对齐"),
              **mask_labels(lang))
    cached, new = tr(lang, "cache", "缓存"), tr(lang, "new", "新")
    for ax in axes:
        # Keys left of the line are the S - L cached tokens, right of it the L new ones.
        ax.axvline(S - L - 0.5, color=C3, ls="--", lw=1.2)
        ax.set_xticks(range(S), [f"{j}\n{cached if j < S - L else new}" for j in range(S)])
    return fig


def heatmap_figure(lang: str):
    """Causal attention weights of a short sentence from core.sdpa_reference(return_weights=True)."""
    tokens = ["<BOS>", "I", "like", "you"]
    L, D = len(tokens), 16
    gen = torch.Generator().manual_seed(4)
    q_11LD = torch.randn(1, 1, L, D, generator=gen)
    k_11LD = torch.randn(1, 1, L, D, generator=gen)
    v_11LD = torch.randn(1, 1, L, D, generator=gen)
    _, weights_11LL = core.sdpa_reference(q_11LD, k_11LD, v_11LD, is_causal=True, return_weights=True)
    w_LL = weights_11LL[0, 0].numpy()
    allowed_LL = core.causal_mask(L).numpy()

    fig, ax = plt.subplots(figsize=(3.4, 3.0), constrained_layout=True)
    # Opacity grows with the weight; masked cells (weight exactly 0) are grey.
    colours = [[C0 if allowed_LL[i, j] else BLOCKED for j in range(L)] for i in range(L)]
    # Opacity 0.05 + w / 2 keeps the ink-coloured numbers legible on the strongest cells.
    alphas = [[0.05 + w_LL[i, j] / 2 if allowed_LL[i, j] else 1.0 for j in range(L)] for i in range(L)]
    texts = [[f"{w_LL[i, j]:.2f}" if allowed_LL[i, j] else "" for j in range(L)] for i in range(L)]
    draw_cells(ax, colours, alphas, texts)
    ax.set_xticks(range(L), tokens)
    ax.set_yticks(range(L), tokens)
    ax.set_xlabel(tr(lang, "key", "键"))
    ax.set_ylabel(tr(lang, "query", "查询"))
    ax.tick_params(length=0)
    return fig
