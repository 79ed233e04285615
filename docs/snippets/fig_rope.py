# Figures of the RoPE and Flux pages (docs/*/rope.md, docs/*/flux.md), computed with attnref.core and
# attnref.flux: frequencies per pair, which channels pair up in each convention, EmbedND's blocks.
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle

from attnref import core, flux

_PAIR_COLOURS = plt.get_cmap("tab10").colors


def frequency_figure(D: int = 128):
    """Left: theta_i per pair for a few bases. Right: cos(m * theta_i) against position m."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.8))
    one = torch.ones(1)
    for base, style in ((100.0, ":"), (10000.0, "-"), (500000.0, "--")):
        inv_freq = core.rope_angles(one, D, theta=base)[0]
        left.semilogy(range(D // 2), inv_freq.numpy(), style, lw=1.6, label=f"theta = {base:g}")
    left.set_xlabel("pair i")
    left.set_ylabel("theta_i (rad / token)")
    left.set_title(f"frequencies, D = {D}", fontsize=9)
    left.legend(fontsize=7, frameon=False)
    left.grid(True, which="major", alpha=0.3)

    positions = torch.arange(0, 201)
    angles = core.rope_angles(positions, 64, theta=10000.0)
    for colour, i in zip(_PAIR_COLOURS, (0, 4, 8, 16)):
        period = 2 * torch.pi / float(angles[1, i])
        right.plot(positions.numpy(), angles[:, i].cos().numpy(), color=colour, lw=1.2,
                   label=f"i = {i} (period {period:.0f})")
    right.set_xlabel("position m")
    right.set_ylabel("cos(m theta_i)")
    right.set_title("D = 64, theta = 10000", fontsize=9)
    right.set_ylim(-1.15, 1.6)
    right.legend(fontsize=7, frameon=False, ncol=2, loc="upper center")
    fig.patch.set_facecolor("white")
    fig.tight_layout()
    return fig


def _partners(apply_rope, D: int) -> list[int]:
    # Turn every pair by 90 degrees: channel j's energy moves entirely to its partner channel.
    eye = torch.eye(D)
    turned = apply_rope(eye, torch.zeros(D // 2), torch.ones(D // 2))
    return turned.abs().argmax(dim=-1).tolist()


def pairing_figure(D: int = 8):
    """Which channels each convention rotates together, read off attnref's two apply functions."""
    rows = (
        ("half-split (rotate_half)", core.apply_rope_half_split),
        ("adjacent pairs", core.apply_rope_adjacent),
    )
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    for r, (name, apply_rope) in enumerate(rows):
        partners = _partners(apply_rope, D)
        y = (len(rows) - 1 - r) * 2.2
        # Pair index i = the smaller channel's rank among pair leaders; theta_i follows from it.
        leaders = sorted(j for j in range(D) if j < partners[j])
        for j in range(D):
            i = leaders.index(min(j, partners[j]))
            ax.add_patch(Rectangle((j, y), 0.9, 0.9, facecolor=_PAIR_COLOURS[i], alpha=0.85, edgecolor="none"))
            ax.text(j + 0.45, y + 0.45, str(j), ha="center", va="center", fontsize=8, color="white")
        for j in leaders:
            p = partners[j]
            ax.add_patch(FancyArrowPatch((j + 0.45, y + 0.95), (p + 0.45, y + 0.95),
                                         connectionstyle=f"arc3,rad=-{0.5 if p - j > 1 else 0.9}",
                                         arrowstyle="-", color=_PAIR_COLOURS[leaders.index(j)], lw=1.4))
        ax.text(-0.3, y + 0.45, name, ha="right", va="center", fontsize=8)
    ax.text(D / 2, -0.45, "channel of q / k within one head (colour = pair i, frequency theta_i)",
            ha="center", va="top", fontsize=7.5)
    ax.set_xlim(-4.6, D + 0.2)
    ax.set_ylim(-0.9, 2.2 * (len(rows) - 1) + 2.3)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.patch.set_facecolor("white")
    return fig


def embednd_figure(axes_dim: tuple[int, ...] = (4, 12, 12), n_txt: int = 2, rows: int = 3, cols: int = 4):
    """Top: which axis turns each pair, and how fast. Bottom: cos of every pair's angle per token."""
    embed = flux.EmbedND(dim=sum(axes_dim), theta=10000, axes_dim=list(axes_dim))
    P = sum(axes_dim) // 2
    axis_names = ("t", "h", "w")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.8, 4.6), height_ratios=[1, 2.2], sharex=True)
    # Position 1 on one axis and 0 on the others: only that axis's pairs turn, by theta_i radians.
    for a in range(len(axes_dim)):
        unit_ids = torch.zeros(1, 1, len(axes_dim))
        unit_ids[..., a] = 1.0
        pe = embed(unit_ids)[0, 0, 0]                      # (P, 2, 2)
        angle_P = torch.atan2(pe[:, 1, 0], pe[:, 0, 0])
        turned = (angle_P != 0).nonzero().flatten()
        top.semilogy(turned.numpy(), angle_P[turned].numpy(), "o-", ms=4, color=_PAIR_COLOURS[a],
                     label=f"axis {a}: {axis_names[a]}")
    top.set_ylabel("angle per step")
    top.legend(fontsize=7, frameon=False, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    top.grid(True, alpha=0.3)

    txt_ids = torch.zeros(1, n_txt, 3)
    img_ids = torch.zeros(rows, cols, 3)
    img_ids[..., 1] = torch.arange(rows)[:, None]
    img_ids[..., 2] = torch.arange(cols)[None, :]
    ids = torch.cat((txt_ids, img_ids.reshape(1, rows * cols, 3)), dim=1)
    cos_LP = embed(ids)[0, 0, :, :, 0, 0]                  # (L, P): entry [0][0] of each matrix
    image = bottom.imshow(cos_LP.numpy(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    labels = [f"txt {t}" for t in range(n_txt)] + [f"img ({h},{w})" for h in range(rows) for w in range(cols)]
    bottom.set_yticks(range(len(labels)), labels, fontsize=6.5)
    bottom.set_xlabel("channel pair p (rotates channels 2p, 2p+1)")
    start = 0
    for axis_dim in axes_dim:
        end = start + axis_dim // 2
        for ax in (top, bottom):
            ax.axvline(end - 0.5, color="black", lw=1.0)
        start = end
    bottom.axhline(n_txt - 0.5, color="black", lw=0.8, ls="--")
    bottom.set_xticks(range(P))
    bottom.set_xlim(-0.5, P - 0.5)
    fig.colorbar(image, ax=[top, bottom], label="cos(angle)", fraction=0.03, pad=0.02)
    fig.patch.set_facecolor("white")
    return fig
