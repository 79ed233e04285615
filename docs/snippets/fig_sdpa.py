# Figures of the scaled dot-product attention page (docs/*/sdpa.md), computed with attnref.
# Text inside the figures is ASCII and math only; captions carry the page's language.
import matplotlib.pyplot as plt
import numpy as np
import torch

from attnref import core



def saturation_figure(n: int = 500, S: int = 16):
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
    labels = {"raw": r"unscaled: $q\cdot k$", "scaled": r"scaled: $q\cdot k/\sqrt{d_k}$"}
    styles = {"raw": dict(color="#d1495b", marker="o"), "scaled": dict(color="#007acc", marker="s")}
    for ax, i, ylabel in ((axes[0], 0, "mean max weight"), (axes[1], 1, "mean entropy / log S")):
        for name in ("raw", "scaled"):
            ax.plot(dims, rows[name][i], label=labels[name], ms=4, **styles[name])
        ax.set_xscale("log", base=2)
        ax.set_xlabel(r"$d_k$")
        ax.set_ylabel(ylabel)
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0].axhline(1 / S, color="grey", ls=":", lw=1)
    axes[0].text(dims[0], 1 / S + 0.02, "uniform 1/S", color="grey", fontsize=8)
    axes[0].legend(loc="center right", fontsize=8)
    fig.suptitle(f"softmax over S={S} keys, q and k with unit-variance entries", fontsize=9)
    return fig


def masks_figure():
    """Causal, padding and packed-sequence masks (True = may attend) as (L, S) grids."""
    causal_LS = core.causal_mask(5)
    padding_LS = core.padding_mask(torch.tensor([5, 3]), S=5)[1, 0].expand(5, 5)
    seq_id = torch.tensor([[0, 0, 1, 1, 1]])
    packed_LS = core.seq_id_mask(seq_id)[0, 0]
    fig, axes = plt.subplots(1, 3, figsize=(7, 2.6), constrained_layout=True)
    draw_mask(axes[0], causal_LS, "causal_mask(5)")
    draw_mask(axes[1], padding_LS, "padding_mask, length 3 of S=5")
    draw_mask(axes[2], packed_LS, "seq_id_mask, seq_id = 0 0 1 1 1")
    return fig


def alignment_figure(L: int = 3, S: int = 6):
    """Bottom-right (attnref, KV cache) versus top-left (PyTorch is_causal) causal masks, S > L."""
    bottom_right = core.causal_mask(L, S)
    top_left = torch.ones(L, S, dtype=torch.bool).tril()
    fig, axes = plt.subplots(1, 2, figsize=(6, 2.2), constrained_layout=True)
    draw_mask(axes[0], bottom_right, f"attnref causal_mask({L}, {S}): bottom-right")
    draw_mask(axes[1], top_left, "PyTorch is_causal=True: top-left")
    for ax in axes:
        # Keys left of the line are the S - L cached tokens, right of it the L new ones.
        ax.axvline(S - L - 0.5, color="#d1495b", ls="--", lw=1.2)
        ax.set_xticks(range(S), [f"{j}\ncache" if j < S - L else f"{j}\nnew" for j in range(S)])
    return fig


def heatmap_figure():
    """Causal attention weights of a short sentence from core.sdpa_reference(return_weights=True)."""
    tokens = ["<BOS>", "I", "like", "you"]
    L, D = len(tokens), 16
    gen = torch.Generator().manual_seed(4)
    q_11LD = torch.randn(1, 1, L, D, generator=gen)
    k_11LD = torch.randn(1, 1, L, D, generator=gen)
    v_11LD = torch.randn(1, 1, L, D, generator=gen)
    _, weights_11LL = core.sdpa_reference(q_11LD, k_11LD, v_11LD, is_causal=True, return_weights=True)
    w_LL = weights_11LL[0, 0].numpy()
    blocked_LL = ~core.causal_mask(L).numpy()

    fig, ax = plt.subplots(figsize=(3.8, 3.2), constrained_layout=True)
    cmap = plt.get_cmap("Blues").copy()
    cmap.set_bad("#e8e8e8")  # masked cells: weight exactly 0, drawn grey and left blank
    image = ax.imshow(np.ma.masked_array(w_LL, blocked_LL), cmap=cmap, vmin=0, vmax=1)
    for i in range(L):
        for j in range(i + 1):
            color = "white" if w_LL[i, j] > 0.6 else "black"
            ax.text(j, i, f"{w_LL[i, j]:.2f}", ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(L), tokens)
    ax.set_yticks(range(L), tokens)
    ax.set_xlabel("key")
    ax.set_ylabel("query")
    ax.tick_params(length=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight")
    return fig
