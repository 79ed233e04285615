# Figures of the LLaMA page (docs/zh/llama.md, docs/en/llama.md), drawn from attnref at build time.
# Text inside the figures is ASCII only: the captions carry the language.
import matplotlib.pyplot as plt
import torch

from attnref import core


def gqa_figure(H: int = 8, G: int = 2):
    """Which key/value head each query head reads, taken from core.repeat_kv itself."""
    kv_of_head = core.repeat_kv(torch.arange(float(G)).view(1, G, 1, 1), H // G).flatten().int().tolist()
    palette = ["#3182bd", "#e6550d", "#31a354", "#756bb1"]
    fig, ax = plt.subplots(figsize=(6.5, 2.6), facecolor="white")
    kv_x = [(g + 0.5) * H / G - 0.5 for g in range(G)]
    for h, g in enumerate(kv_of_head):
        color = palette[g % len(palette)]
        ax.plot([h, kv_x[g]], [1, 0], color=color, linewidth=1.5, zorder=1)
        ax.scatter([h], [1], s=420, color=color, zorder=2)
        ax.text(h, 1, f"q{h}", ha="center", va="center", color="white", fontsize=8, zorder=3)
    for g, xg in enumerate(kv_x):
        ax.scatter([xg], [0], s=900, marker="s", color=palette[g % len(palette)], zorder=2)
        ax.text(xg, 0, f"kv{g}", ha="center", va="center", color="white", fontsize=8, zorder=3)
    ax.text(-1.2, 1, f"H={H} query heads", ha="right", va="center")
    ax.text(-1.2, 0, f"G={G} kv heads", ha="right", va="center")
    ax.set_xlim(-4.5, H - 0.3)
    ax.set_ylim(-0.45, 1.45)
    ax.axis("off")
    ax.set_title(f"repeat_kv(k, n_rep={H // G}): query head h reads kv head h // {H // G}")
    return fig


def cache_mask_figure(L: int = 3, S: int = 7):
    """Causal masks for L new queries over S keys: bottom-right (attnref) against top-left."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 2.6), facecolor="white")
    draw_mask(left, core.causal_mask(L, S), "bottom-right: core.causal_mask(3, 7)", xlabel="key j (0..3 cached, 4..6 new)", ylabel="new query i")
    draw_mask(right, torch.ones(L, S, dtype=torch.bool).tril(), "top-left: PyTorch is_causal", xlabel="key j (0..3 cached, 4..6 new)", ylabel="new query i")
    fig.tight_layout()
    return fig
