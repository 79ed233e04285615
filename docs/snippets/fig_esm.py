# Figures of the ESM page (docs/zh/esm.md, docs/en/esm.md), drawn from attnref at build time.
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch

from attnref import core


def packed_mask_figure(lang: str):
    """Two packed rows of seq_id and the block-diagonal mask core.seq_id_mask builds from row 0."""
    seq_id_BL = torch.tensor([[0, 0, 0, 1, 1, 1, 1, 2], [0, 0, 0, 0, 0, 1, 1, 1]])
    mask_LL = core.seq_id_mask(seq_id_BL)[0, 0]
    colours = [C0, C1, C2]
    fig, (ax_ids, ax_mask) = plt.subplots(1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": [1.1, 1]})

    B, L = seq_id_BL.shape
    ids = seq_id_BL.tolist()
    draw_cells(ax_ids, [[colours[i] for i in row] for row in ids], [[0.35] * L for _ in ids],
               [[str(i) for i in row] for row in ids], fontsize=9)
    ax_ids.set_xticks(range(L))
    ax_ids.set_yticks(range(B))
    ax_ids.tick_params(length=0)
    ax_ids.set_xlabel(tr(lang, "token position", "token 位置"))
    ax_ids.set_ylabel(tr(lang, "batch row b", "批次行 b"))
    ax_ids.set_title(f"seq_id (B={B}, L={L})")

    draw_mask(ax_mask, mask_LL, tr(lang, "mask of row b=0 (blue: may attend)", "b=0 行的掩码（蓝色：可关注）"),
              **mask_labels(lang))
    fig.tight_layout()
    return fig
