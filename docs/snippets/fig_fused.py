# Figures of the fused-QKV page (docs/*/fused-qkv.md): the layout of MultiHeadAttentionCombinedQKV's
# qkv output before and after view + permute, computed with the module's own reshapes.
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

import attnref.fused_qkv

# q, k, v in blue, orange, green; head 0 a strong shade, head 1 a light one (opacity over the page).
_PART_COLOURS = {0: C0, 1: C1, 2: C2}
_HEAD_ALPHA = (0.55, 0.2)
_PART_NAMES = ("q", "k", "v")


def _qkv_numbers(n: int, H: int, D: int) -> torch.Tensor:
    # Row t, column c of the (n, 3*E) qkv output holds 100 * t + c: the number names its source.
    E = H * D
    return torch.arange(n)[:, None] * 100 + torch.arange(3 * E)


def _cell(ax, x: float, y: float, value: int, H: int, D: int) -> None:
    part, channel = divmod(value % 100, H * D)
    ax.add_patch(Rectangle((x, y), 1, 1, facecolor=_PART_COLOURS[part], alpha=_HEAD_ALPHA[(channel // D) % 2],
                           edgecolor="none"))
    ax.add_patch(Rectangle((x, y), 1, 1, facecolor="none", edgecolor=PAPER, lw=1.2))
    ax.text(x + 0.5, y + 0.5, str(value), ha="center", va="center", fontsize=6.5)


def permute_layout_figure(lang: str, n: int = 3, H: int = 2, D: int = 2):
    """Left: the (n, 3*E) output of qkv for one sequence. Right: the same numbers in (3, 1, H, n, D)."""
    E = H * D
    # The module's steps, on a module-sized example: view (b, n, 3, H, D), permute (2, 0, 3, 1, 4).
    module = attnref.fused_qkv.MultiHeadAttentionCombinedQKV(E, E, num_heads=H, context_length=n)
    flat = _qkv_numbers(n, module.num_heads, module.head_dim)
    split = flat.view(1, n, 3, module.num_heads, module.head_dim).permute(2, 0, 3, 1, 4)

    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    # Left: the qkv output, one row per token, centred vertically against the right column.
    total_h = 3 * (n + 1) - 1
    y_left = (total_h - n) / 2
    for t in range(n):
        for c in range(3 * E):
            _cell(ax, c, y_left + n - 1 - t, int(flat[t, c]), H, D)
        ax.text(-0.3, y_left + n - 1 - t + 0.5, f"t={t}", ha="right", va="center", fontsize=8)
    for part in range(3):
        ax.text(part * E + E / 2, y_left + n + 0.9, _PART_NAMES[part], ha="center", va="bottom",
                fontsize=9, fontweight="bold")
        for h in range(H):
            ax.text(part * E + h * D + D / 2, y_left + n + 0.15, f"h{h}", ha="center", va="bottom", fontsize=7)
    ax.text(3 * E / 2, y_left - 0.4, f"qkv(x)[0]: (n, 3*E) = ({n}, {3 * E})", ha="center", va="top", fontsize=9)

    # Right: block (part, head) is split[part, 0, head], an (n, D) matrix.
    x_right = 3 * E + 5
    for part in range(3):
        y0 = (2 - part) * (n + 1)
        for h in range(H):
            x0 = x_right + h * (D + 1)
            for t in range(n):
                for d in range(D):
                    _cell(ax, x0 + d, y0 + n - 1 - t, int(split[part, 0, h, t, d]), H, D)
            if part == 0:
                ax.text(x0 + D / 2, total_h + 0.15, f"h={h}", ha="center", va="bottom", fontsize=8)
        ax.text(x_right - 0.3, y0 + n / 2, f"[{part}] {_PART_NAMES[part]}", ha="right", va="center", fontsize=8)
    ax.text(x_right + (H * (D + 1) - 1) / 2, -0.4, f"(3, b, H, n, D) = (3, 1, {H}, {n}, {D})",
            ha="center", va="top", fontsize=9)
    ax.annotate("", xy=(x_right - 2.2, total_h / 2), xytext=(3 * E + 0.4, total_h / 2),
                arrowprops={"arrowstyle": "->", "lw": 1.2})
    ax.text(3 * E + 1.3, total_h / 2 + 0.3, "view\npermute", ha="center", va="bottom", fontsize=7)

    ax.set_xlim(-1.5, x_right + H * (D + 1))
    ax.set_ylim(-1.4, total_h + 1.0)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig
