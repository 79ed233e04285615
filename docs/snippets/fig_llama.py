# Figures of the LLaMA page (docs/zh/llama.md, docs/en/llama.md), drawn from attnref at build time.
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch

from attnref import core


def gqa_figure(lang: str, H: int = 8, G: int = 2):
    """Which key/value head each query head reads, taken from core.repeat_kv itself."""
    kv_of_head = core.repeat_kv(torch.arange(float(G)).view(1, G, 1, 1), H // G).flatten().int().tolist()
    palette = CATEGORICAL
    fig, ax = plt.subplots(figsize=(6.5, 2.6))
    kv_x = [(g + 0.5) * H / G - 0.5 for g in range(G)]
    for h, g in enumerate(kv_of_head):
        colour = palette[g % len(palette)]
        ax.plot([h, kv_x[g]], [1, 0], color=colour, linewidth=1.5, zorder=1)
        ax.scatter([h], [1], s=420, color=colour, alpha=0.35, edgecolors=colour, zorder=2)
        ax.text(h, 1, f"q{h}", ha="center", va="center", fontsize=8, zorder=3)
    for g, xg in enumerate(kv_x):
        colour = palette[g % len(palette)]
        ax.scatter([xg], [0], s=900, marker="s", color=colour, alpha=0.35, edgecolors=colour, zorder=2)
        ax.text(xg, 0, f"kv{g}", ha="center", va="center", fontsize=8, zorder=3)
    ax.text(-1.2, 1, tr(lang, f"H={H} query heads", f"H={H} 个查询头"), ha="right", va="center")
    ax.text(-1.2, 0, tr(lang, f"G={G} kv heads", f"G={G} 个键/值头"), ha="right", va="center")
    ax.set_xlim(-4.5, H - 0.3)
    ax.set_ylim(-0.45, 1.45)
    ax.axis("off")
    n_rep = H // G
    ax.set_title(tr(lang, f"repeat_kv(k, n_rep={n_rep}): query head h reads kv head h // {n_rep}",
                    f"repeat_kv(k, n_rep={n_rep})：查询头 h 读取键/值头 h // {n_rep}"))
    return fig


def cache_mask_figure(lang: str, L: int = 3, S: int = 7):
    """Causal masks for L new queries over S keys: bottom-right (attnref) against top-left."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7, 2.6))
    past = S - L
    labels = {"xlabel": tr(lang, f"key j (0..{past - 1} cached, {past}..{S - 1} new)",
                           f"键 j（0..{past - 1} 来自缓存，{past}..{S - 1} 为新）"),
              "ylabel": tr(lang, "new query i", "新查询 i")}
    draw_mask(left, core.causal_mask(L, S), tr(lang, f"bottom-right: core.causal_mask({L}, {S})",
                                               f"右下对齐：core.causal_mask({L}, {S})"), **labels)
    draw_mask(right, torch.ones(L, S, dtype=torch.bool).tril(),
              tr(lang, "top-left: PyTorch is_causal", "左上对齐：PyTorch is_causal"), **labels)
    fig.tight_layout()
    return fig
