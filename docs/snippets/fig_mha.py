# Figures of the multi-head attention page (docs/*/multi-head.md).
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch

# One colour per token: a head block holding one colour per row keeps tokens apart.
_TOKEN_COLOURS = [C0, C1, C2, C4]


def _draw_values(ax, values_RC, token_RC, title: str, xlabel: str, ylabel: str) -> None:
    R, C = values_RC.shape
    colours = [[_TOKEN_COLOURS[token_RC[r, c]] for c in range(C)] for r in range(R)]
    alphas = [[0.35] * C for _ in range(R)]
    texts = [[f"{values_RC[r, c]:d}" for c in range(C)] for r in range(R)]
    draw_cells(ax, colours, alphas, texts)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize=8)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)


def heads_figure(lang: str, L: int = 4, H: int = 3, D: int = 2):
    """x[l, e] = 10 l + e split into heads: view + transpose (right) against a direct view (wrong)."""
    E = H * D
    x_LE = 10 * torch.arange(L)[:, None] + torch.arange(E)
    token_LE = torch.arange(L)[:, None].expand(L, E)
    right_HLD = x_LE.view(L, H, D).transpose(0, 1)
    wrong_HLD = x_LE.view(H, L, D)
    token_right = token_LE.reshape(L, H, D).transpose(0, 1)
    token_wrong = token_LE.reshape(H, L, D)

    fig = plt.figure(figsize=(7.2, 2.7), layout="constrained")
    left, middle, right = fig.subfigures(1, 3, width_ratios=[1.1, 1, 1], wspace=0.04)
    ax = left.subplots()
    _draw_values(ax, x_LE.numpy(), token_LE.numpy(), "",
                 tr(lang, "channel e   (head h = e // D)", "通道 e（头 h = e // D）"), tr(lang, "token l", "token l"))
    for h in range(1, H):
        ax.axvline(h * D - 0.5, color=INK, lw=2)  # the channel groups that become heads
    left.suptitle(f"x: (L, E) = ({L}, {E}), H={H}, D={D}", fontsize=9)
    head = tr(lang, "head", "头")
    for sub, values_HLD, token_HLD, title, colour in (
        (middle, right_HLD, token_right, "view(L, H, D).transpose(0, 1)", INK),
        (right, wrong_HLD, token_wrong, tr(lang, "view(H, L, D): tokens mixed", "view(H, L, D)：token 被打乱"), C3),
    ):
        axes = sub.subplots(1, H)
        for h in range(H):
            _draw_values(axes[h], values_HLD[h].numpy(), token_HLD[h].numpy(), f"{head} {h}", "d", "")
        sub.suptitle(title, fontsize=9, color=colour)
    return fig
