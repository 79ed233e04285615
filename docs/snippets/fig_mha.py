# Figures of the multi-head attention page (docs/*/multi-head.md).
# Text inside the figures is ASCII and math only; captions carry the page's language.
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import Rectangle

# One colour per token: a head block holding one colour per row keeps tokens apart.
_TOKEN_COLORS = ["#9ecae1", "#fdd0a2", "#c7e9c0", "#dadaeb"]


def _draw_values(ax, values_RC, token_RC, title: str, xlabel: str, ylabel: str) -> None:
    R, C = values_RC.shape
    for r in range(R):
        for c in range(C):
            ax.add_patch(Rectangle((c, R - 1 - r), 1, 1, facecolor=_TOKEN_COLORS[token_RC[r, c]],
                                   edgecolor="white", lw=1.5))
            ax.text(c + 0.5, R - 0.5 - r, f"{values_RC[r, c]:d}", ha="center", va="center", fontsize=8)
    ax.set_xlim(0, C)
    ax.set_ylim(0, R)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ax.spines.values():
        side.set_visible(False)
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def heads_figure(L: int = 4, H: int = 3, D: int = 2):
    """x[l, e] = 10 l + e split into heads: view + transpose (right) against a direct view (wrong)."""
    E = H * D
    x_LE = 10 * torch.arange(L)[:, None] + torch.arange(E)
    token_LE = torch.arange(L)[:, None].expand(L, E)
    right_HLD = x_LE.view(L, H, D).transpose(0, 1)
    wrong_HLD = x_LE.view(H, L, D)
    token_right = token_LE.reshape(L, H, D).transpose(0, 1)
    token_wrong = token_LE.reshape(H, L, D)

    fig = plt.figure(figsize=(7.2, 2.6), layout="constrained")
    left, middle, right = fig.subfigures(1, 3, width_ratios=[1.1, 1, 1], wspace=0.04)
    ax = left.subplots()
    _draw_values(ax, x_LE.numpy(), token_LE.numpy(), "", "channel e   (head h = e // D)", "token l")
    for h in range(1, H):
        ax.axvline(h * D, color="black", lw=2)  # the channel groups that become heads
    left.suptitle(f"x: (L, E) = ({L}, {E}), H={H}, D={D}", fontsize=9)
    for sub, values_HLD, token_HLD, title in (
        (middle, right_HLD, token_right, "view(L, H, D).transpose(0, 1)"),
        (right, wrong_HLD, token_wrong, "view(H, L, D): tokens mixed"),
    ):
        axes = sub.subplots(1, H)
        for h in range(H):
            _draw_values(axes[h], values_HLD[h].numpy(), token_HLD[h].numpy(), f"head {h}", "d", "")
        sub.suptitle(title, fontsize=9, color="#d1495b" if "mixed" in title else "black")
    return fig
