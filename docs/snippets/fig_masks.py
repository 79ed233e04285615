# Figures of the mask atlas (docs/zh/masks.md, docs/en/masks.md), drawn from attnref.core at build
# time. Each function takes the page's language; svg.py's conventions apply (colours, text, no raster).
import matplotlib.pyplot as plt
import torch

from attnref import core


def _panel(ax, mask_LS, title: str, lang: str) -> None:
    """One mask grid, lettered large enough to read on a phone; a row with no key to attend to gets
    a red ∅ on its right."""
    draw_mask(ax, mask_LS, title, **mask_labels(lang))
    ax.title.set_fontsize(10)
    ax.xaxis.label.set_fontsize(10)
    ax.yaxis.label.set_fontsize(10)
    ax.tick_params(labelsize=9)
    for i, row in enumerate(mask_LS):
        if not row.any():
            ax.text(mask_LS.shape[1] - 0.35, i, "∅", color=C3, ha="left", va="center", fontsize=11)


def _boundaries(ax, every: int, L: int, S: int) -> None:
    """Dashed lines between blocks (chunks, the prefix) of ``every`` positions."""
    for edge in range(every, S, every):
        ax.axvline(edge - 0.5, color=MUTED, ls="--", lw=0.8)
    for edge in range(every, L, every):
        ax.axhline(edge - 0.5, color=MUTED, ls="--", lw=0.8)


def causal_figure(lang: str, L: int = 3, S: int = 6):
    """The causal mask of L new queries over S keys in both alignments."""
    fig, axes = plt.subplots(1, 2, figsize=(5.2, 2.2), constrained_layout=True)
    _panel(axes[0], core.causal_mask(L, S),
           tr(lang, "bottom-right", "右下对齐"), lang)
    _panel(axes[1], core.causal_mask(L, S, align="top-left"),
           tr(lang, "top-left: is_causal=True", "左上对齐：is_causal=True"), lang)
    for ax in axes:
        ax.axvline(S - L - 0.5, color=C3, ls="--", lw=1.2)  # cached keys on the left, new ones right
    return fig


def padding_figure(lang: str, S: int = 5, length: int = 3):
    """Right and left padding of one sequence of ``length`` real tokens, and left padding under causal."""
    lengths = torch.tensor([length])
    right_LS = core.padding_mask(lengths, S)[0, 0].expand(S, S)
    left_LS = core.padding_mask(lengths, S, side="left")[0, 0].expand(S, S)
    fig, axes = plt.subplots(1, 3, figsize=(6.0, 2.4), constrained_layout=True)
    _panel(axes[0], right_LS, tr(lang, "right", "右填充"), lang)
    _panel(axes[1], left_LS, tr(lang, "left", "左填充"), lang)
    _panel(axes[2], left_LS & core.causal_mask(S), tr(lang, "left & causal", "左填充 & 因果"), lang)
    for ax in axes[1:]:
        ax.set_ylabel("")
    return fig


def packed_figure(lang: str):
    """Three sequences packed in one row, padded: ESM's seq_id mask and the causal document mask."""
    seq_id = torch.tensor([[0, 0, 1, 1, 1, 2, 2, -1, -1]])  # -1: the pads, an id of their own
    L = seq_id.shape[1]
    ticks = [str(i) if i >= 0 else "pad" for i in seq_id[0].tolist()]
    fig, axes = plt.subplots(1, 2, figsize=(5.6, 3.2), constrained_layout=True)
    _panel(axes[0], core.seq_id_mask(seq_id)[0, 0], tr(lang, "ESM: seq_id_mask", "ESM：seq_id_mask"), lang)
    _panel(axes[1], core.seq_id_mask(seq_id)[0, 0] & core.causal_mask(L),
           tr(lang, "LLaMA: & causal_mask", "LLaMA：& causal_mask"), lang)
    for ax in axes:
        ax.set_xticks(range(L), ticks, rotation=90)
        ax.set_yticks(range(L), ticks)
        ax.set_xlabel(tr(lang, "key: its seq_id", "键：所属 seq_id"))
        ax.set_ylabel(tr(lang, "query: its seq_id", "查询：所属 seq_id"))
    return fig


def sliding_window_figure(lang: str, L: int = 8, window: int = 3):
    fig, ax = plt.subplots(figsize=(3.2, 3.0), constrained_layout=True)
    _panel(ax, core.sliding_window_mask(L, window=window), f"window={window}", lang)
    return fig


def prefix_lm_figure(lang: str, L: int = 7, prefix: int = 3):
    fig, ax = plt.subplots(figsize=(3.2, 3.0), constrained_layout=True)
    _panel(ax, core.prefix_lm_mask(torch.tensor([prefix]), L)[0, 0], tr(lang, f"prefix of {prefix}", f"前缀长 {prefix}"), lang)
    ax.axvline(prefix - 0.5, color=C3, ls="--", lw=1.2)
    ax.axhline(prefix - 0.5, color=C3, ls="--", lw=1.2)
    return fig


def chunked_figure(lang: str, L: int = 8, size: int = 3):
    """Chunked causal (no attention across chunks) against block-causal (whole earlier blocks)."""
    fig, axes = plt.subplots(1, 2, figsize=(5.4, 2.9), constrained_layout=True)
    _panel(axes[0], core.chunked_causal_mask(L, chunk_size=size), tr(lang, "chunked causal", "分块因果"), lang)
    _panel(axes[1], core.block_causal_mask(L, block_size=size), tr(lang, "block-causal", "块因果"), lang)
    for ax in axes:
        _boundaries(ax, size, L, L)
    return fig


def alibi_figure(lang: str, num_heads: int = 8, L: int = 5, heads: tuple[int, ...] = (0, 3)):
    """ALiBi's bias of two heads under the causal mask: colour strength exp(bias), the factor it puts
    on a key's unnormalised weight; the numbers are the bias."""
    bias_HLL = core.alibi_bias(num_heads, L)
    causal_LL = core.causal_mask(L)
    slopes_H = core.alibi_slopes(num_heads)
    fig, axes = plt.subplots(1, len(heads), figsize=(5.4, 2.9), constrained_layout=True)
    for ax, h in zip(axes, heads):
        colours = [[C0 if causal_LL[i, j] else BLOCKED for j in range(L)] for i in range(L)]
        # Light enough at full strength for the numbers to read on it in both schemes.
        alphas = [[0.1 + 0.45 * float(bias_HLL[h, i, j].exp()) if causal_LL[i, j] else 1.0 for j in range(L)]
                  for i in range(L)]
        texts = [[f"{bias_HLL[h, i, j].item():.2f}" if causal_LL[i, j] else "" for j in range(L)] for i in range(L)]
        draw_cells(ax, colours, alphas, texts, fontsize=8)
        ax.set_xticks(range(L))
        ax.set_yticks(range(L))
        ax.tick_params(length=0, labelsize=9)
        ax.set_xlabel(mask_labels(lang)["xlabel"], fontsize=10)
        ax.set_ylabel(mask_labels(lang)["ylabel"], fontsize=10)
        slope = f"1/{round(1 / slopes_H[h].item())}"
        ax.set_title(tr(lang, f"head {h}, slope {slope}", f"第 {h} 个头，斜率 {slope}"), fontsize=10)
    return fig
