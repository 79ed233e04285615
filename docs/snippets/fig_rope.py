# Figures of the RoPE and Flux pages (docs/*/rope.md, docs/*/flux.md), computed with attnref.core and
# attnref.flux: frequencies per pair, which channels pair up in each convention, EmbedND's blocks.
# Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch
from matplotlib.patches import FancyArrowPatch, Rectangle

from attnref import core, flux


def frequency_figure(lang: str, D: int = 128):
    """Left: theta_i per pair for a few bases. Right: cos(m * theta_i) against position m."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.2, 2.8))
    one = torch.ones(1)
    for base, style, colour in ((100.0, ":", C1), (10000.0, "-", C0), (500000.0, "--", C2)):
        inv_freq = core.rope_angles(one, D, theta=base)[0]
        left.semilogy(range(D // 2), inv_freq.numpy(), style, color=colour, lw=1.6, label=f"theta = {base:g}")
    left.set_xlabel(tr(lang, "pair i", "通道对 i"))
    left.set_ylabel(tr(lang, "θᵢ (rad / token)", "θᵢ（弧度 / token）"))
    left.set_title(tr(lang, f"frequencies, D = {D}", f"频率，D = {D}"), fontsize=9)
    left.legend(fontsize=7)
    left.grid(True, which="major")

    positions = torch.arange(0, 201)
    angles = core.rope_angles(positions, 64, theta=10000.0)
    for colour, i in zip(CATEGORICAL, (0, 4, 8, 16)):
        period = 2 * torch.pi / float(angles[1, i])
        right.plot(positions.numpy(), angles[:, i].cos().numpy(), color=colour, lw=1.2,
                   label=tr(lang, f"i = {i} (period {period:.0f})", f"i = {i}（周期 {period:.0f}）"))
    right.set_xlabel(tr(lang, "position m", "位置 m"))
    right.set_ylabel("cos(m θᵢ)")
    right.set_title("D = 64, theta = 10000", fontsize=9)
    right.set_ylim(-1.15, 1.6)
    right.legend(fontsize=7, ncol=2, loc="upper center")
    fig.tight_layout()
    return fig


def _partners(apply_rope, D: int) -> list[int]:
    # Turn every pair by 90 degrees: channel j's energy moves entirely to its partner channel.
    eye = torch.eye(D)
    turned = apply_rope(eye, torch.zeros(D // 2), torch.ones(D // 2))
    return turned.abs().argmax(dim=-1).tolist()


def pairing_figure(lang: str, D: int = 8):
    """Which channels each convention rotates together, read off attnref's two apply functions."""
    rows = (
        (tr(lang, "half-split (rotate_half)", "对半切分（rotate_half）"), core.apply_rope_half_split),
        (tr(lang, "adjacent pairs", "相邻配对"), core.apply_rope_adjacent),
    )
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    for r, (name, apply_rope) in enumerate(rows):
        partners = _partners(apply_rope, D)
        y = (len(rows) - 1 - r) * 2.2
        # Pair index i = the smaller channel's rank among pair leaders; theta_i follows from it.
        leaders = sorted(j for j in range(D) if j < partners[j])
        for j in range(D):
            i = leaders.index(min(j, partners[j]))
            ax.add_patch(Rectangle((j, y), 0.9, 0.9, facecolor=CATEGORICAL[i], alpha=0.45, edgecolor="none"))
            ax.text(j + 0.45, y + 0.45, str(j), ha="center", va="center", fontsize=8)
        for j in leaders:
            p = partners[j]
            ax.add_patch(FancyArrowPatch((j + 0.45, y + 0.95), (p + 0.45, y + 0.95),
                                         connectionstyle=f"arc3,rad=-{0.5 if p - j > 1 else 0.9}",
                                         arrowstyle="-", color=CATEGORICAL[leaders.index(j)], lw=1.4))
        ax.text(-0.3, y + 0.45, name, ha="right", va="center", fontsize=8)
    ax.text(D / 2, -0.45, tr(lang, "channel of q / k within one head (colour = pair i, frequency θᵢ)",
                             "一个头内 q / k 的通道（颜色 = 通道对 i，频率 θᵢ）"),
            ha="center", va="top", fontsize=7.5)
    ax.set_xlim(-4.6, D + 0.2)
    ax.set_ylim(-0.9, 2.2 * (len(rows) - 1) + 2.3)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def embednd_figure(lang: str, axes_dim: tuple[int, ...] = (4, 12, 12), n_txt: int = 2, rows: int = 3,
                   cols: int = 4):
    """Top: which axis turns each pair, and how fast. Bottom: cos of every pair's angle per token."""
    embed = flux.EmbedND(dim=sum(axes_dim), theta=10000, axes_dim=list(axes_dim))
    P = sum(axes_dim) // 2
    axis_names = ("t", "h", "w")

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.8, 4.8), height_ratios=[1, 2.2], sharex=True)
    # Position 1 on one axis and 0 on the others: only that axis's pairs turn, by theta_i radians.
    for a in range(len(axes_dim)):
        unit_ids = torch.zeros(1, 1, len(axes_dim))
        unit_ids[..., a] = 1.0
        pe = embed(unit_ids)[0, 0, 0]                      # (P, 2, 2)
        angle_P = torch.atan2(pe[:, 1, 0], pe[:, 0, 0])
        turned = (angle_P != 0).nonzero().flatten()
        top.semilogy(turned.numpy(), angle_P[turned].numpy(), "o-", ms=4, color=CATEGORICAL[a],
                     label=tr(lang, f"axis {a}: {axis_names[a]}", f"轴 {a}：{axis_names[a]}"))
    top.set_ylabel(tr(lang, "angle per step", "每步角度"))
    top.legend(fontsize=7, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    top.grid(True)

    txt_ids = torch.zeros(1, n_txt, 3)
    img_ids = torch.zeros(rows, cols, 3)
    img_ids[..., 1] = torch.arange(rows)[:, None]
    img_ids[..., 2] = torch.arange(cols)[None, :]
    ids = torch.cat((txt_ids, img_ids.reshape(1, rows * cols, 3)), dim=1)
    cos_LP = embed(ids)[0, 0, :, :, 0, 0]                  # (L, P): entry [0][0] of each matrix
    # Blue for cos > 0, red for cos < 0, opacity |cos|: 1 is solid, 0 the page itself.
    colours = [[C0 if v >= 0 else C3 for v in row] for row in cos_LP.tolist()]
    alphas = [[abs(v) for v in row] for row in cos_LP.tolist()]
    draw_cells(bottom, colours, alphas)
    bottom.set_aspect("auto")
    labels = [tr(lang, f"txt {t}", f"文本 {t}") for t in range(n_txt)]
    labels += [tr(lang, f"img ({h},{w})", f"图像 ({h},{w})") for h in range(rows) for w in range(cols)]
    bottom.set_yticks(range(len(labels)), labels, fontsize=6.5)
    bottom.tick_params(length=0)
    bottom.set_xlabel(tr(lang, "channel pair p (rotates channels 2p, 2p+1); blue cos > 0, red cos < 0",
                         "通道对 p（旋转通道 2p、2p+1）；蓝色 cos > 0，红色 cos < 0"))
    start = 0
    for axis_dim in axes_dim:
        end = start + axis_dim // 2
        for ax in (top, bottom):
            ax.axvline(end - 0.5, color=INK, lw=1.0)
        start = end
    bottom.axhline(n_txt - 0.5, color=INK, lw=0.8, ls="--")
    bottom.set_xticks(range(P))
    bottom.set_xlim(-0.5, P - 0.5)
    fig.tight_layout()
    return fig


# RoPE scaling as Llama 3.1 configures it (theta 500000, D = 128, an original context of 8192) and
# the other rope_types stretched by the same factor, all from attnref.core.rope_inv_freq.
_SCALING_D, _SCALING_L0, _SCALING_FACTOR = 128, 8192, 8.0


def scaling_examples():
    """(label, rope_parameters, seq_len) per rope_type, each stretched 8 times past 8192 tokens."""
    s, L0, P = _SCALING_FACTOR, _SCALING_L0, _SCALING_D // 2
    # longrope's factors are searched per checkpoint; these rise smoothly from 1 to 8 for the picture.
    long_factor = [1.0 + (s - 1.0) * (i / (P - 1)) ** 2 for i in range(P)]
    return [
        ("linear", {"rope_type": "linear", "factor": s}, None),
        ("dynamic", {"rope_type": "dynamic", "factor": s}, int(s * L0)),
        ("yarn", {"rope_type": "yarn", "factor": s, "original_max_position_embeddings": L0}, None),
        ("longrope", {"rope_type": "longrope", "factor": s, "original_max_position_embeddings": L0,
                      "short_factor": [1.0] * P, "long_factor": long_factor}, int(s * L0)),
        ("llama3", {"rope_type": "llama3", "factor": s, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                    "original_max_position_embeddings": L0}, None),
    ]


def scaling_figure(lang: str):
    """Left: the frequency of each pair before and after. Right: how much each pair is slowed down."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(7.4, 3.0))
    pairs = range(_SCALING_D // 2)
    theta = {"rope_theta": 500000.0}
    default, _ = core.rope_inv_freq(theta, _SCALING_D)
    left.semilogy(pairs, default.numpy(), color=INK, lw=2.2, label=tr(lang, "no scaling", "不缩放"))
    styles = ((C0, "-"), (C1, "-"), (C2, "-"), (C4, "-"), (C5, "--"))
    for (colour, style), (name, params, seq_len) in zip(styles, scaling_examples()):
        inv_freq, _ = core.rope_inv_freq(theta | params, _SCALING_D, max_position_embeddings=_SCALING_L0,
                                         seq_len=seq_len)
        left.semilogy(pairs, inv_freq.numpy(), style, color=colour, lw=1.1, label=name)
        right.semilogy(pairs, (default / inv_freq).numpy(), style, color=colour, lw=1.6, label=name)
    # The pair whose wavelength 2π/θᵢ equals the original context: slower pairs never turned once in it.
    wavelength = 2 * torch.pi / default
    edge = int((wavelength < _SCALING_L0).sum())
    for ax in (left, right):
        ax.axvline(edge - 0.5, color=MUTED, lw=1.0, ls=":")
        ax.set_xlabel(tr(lang, "pair i", "通道对 i"))
        ax.grid(True, which="major")
    right.text(edge + 1, 1.1, tr(lang, "wavelength > 8192", "波长 > 8192"), fontsize=7, color=MUTED)
    left.set_ylabel(tr(lang, "θᵢ (rad / token)", "θᵢ（弧度 / token）"))
    left.set_title(tr(lang, "frequencies, D = 128, theta = 500000", "频率，D = 128，theta = 500000"), fontsize=9)
    right.set_yticks([1, 2, 4, 8, 16, 32, 64], ["1", "2", "4", "8", "16", "32", "64"])
    right.minorticks_off()
    right.set_ylabel(tr(lang, "θᵢ before / after", "缩放前 θᵢ / 缩放后 θᵢ"))
    right.set_title(tr(lang, "slow-down of each pair, factor 8", "每对通道变慢的倍数，factor 8"), fontsize=9)
    left.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
