# Figures of the ESM page (docs/zh/esm.md, docs/en/esm.md), drawn from attnref at build time.
# Text inside the figures is ASCII only: the captions carry the language.
import matplotlib.pyplot as plt
import torch
from matplotlib.colors import ListedColormap

from attnref import core


def packed_mask_figure():
    """Two packed rows of seq_id and the block-diagonal mask core.seq_id_mask builds from row 0."""
    seq_id_BL = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2], [0, 0, 0, 0, 0, 1, 1, 1]])
    mask_LL = core.seq_id_mask(seq_id_BL)[0, 0]
    colors = ["#9ecae1", "#fdae6b", "#a1d99b"]
    fig, (ax_ids, ax_mask) = plt.subplots(
        1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": [1.1, 1]}, facecolor="white"
    )

    B, L = seq_id_BL.shape
    ax_ids.imshow(seq_id_BL.numpy(), cmap=ListedColormap(colors), vmin=-0.5, vmax=2.5, aspect="equal")
    for b in range(B):
        for i in range(L):
            ax_ids.text(i, b, str(int(seq_id_BL[b, i])), ha="center", va="center")
    ax_ids.set_xticks(range(L))
    ax_ids.set_yticks(range(B))
    ax_ids.set_xlabel("token position")
    ax_ids.set_ylabel("batch row b")
    ax_ids.set_title("seq_id (B=2, L=8)")

    draw_mask(ax_mask, mask_LL, "mask of row b=0 (blue: may attend)")
    fig.tight_layout()
    return fig
