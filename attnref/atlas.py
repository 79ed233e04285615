"""Every mask of [`attnref.core`][attnref.core] in the spellings other APIs use, and the
conversions between them.

attnref's own spelling is a boolean mask, True = may attend, built by ``core`` (``causal_mask``,
``sliding_window_mask``, ``chunked_causal_mask``, ``block_causal_mask``, ``prefix_lm_mask``,
``seq_id_mask``, ``padding_mask``) plus ALiBi's score bias (``alibi_bias``). The same mask, in the
other spellings a user meets:

| spelling | may attend | blocked | in attnref |
|---|---|---|---|
| attnref | ``True`` | ``False`` | ``core.*_mask`` |
| additive float | ``0`` | ``-inf`` | [`core.bool_to_additive()`][attnref.core.bool_to_additive] |
| ``F.scaled_dot_product_attention`` | ``attn_mask``: either form above | | ``is_causal=True`` instead is the top-left causal mask and nothing else |
| FlexAttention ``mask_mod(b, h, q_idx, kv_idx)`` | returns ``True`` | returns ``False`` | the ``*_mask_mod`` functions; a ``BlockMask`` is ``create_block_mask(mask_mod, B, H, L, S, device=...)`` |
| FlexAttention ``score_mod(score, b, h, q_idx, kv_idx)`` | returns a new score | | [`alibi_score_mod()`][attnref.atlas.alibi_score_mod] |
| transformers, ``(B, 1, L, S)`` | ``True`` or ``0`` | ``False`` or ``finfo(dtype).min`` | [`to_transformers_mask()`][attnref.atlas.to_transformers_mask] |
| ``nn.MultiheadAttention`` ``attn_mask`` / ``key_padding_mask`` | ``False`` | ``True`` | ``~mask``: inverted |

Each ``*_mask_mod`` states the same rule as the ``core`` function of the same name, written on
indices instead of tensors; ``tests/test_atlas.py`` checks that every spelling of every mask
gives the same attention. A mask_mod is plain index arithmetic: it needs no FlexAttention import
and works on scalar indices (as FlexAttention calls it) and on broadcast index tensors alike.
The ``L`` and ``S`` a mask_mod is made for must be the query and key lengths it is used with,
and the tensors it reads (``lengths``, ``seq_id``, ``prefix_lengths``) must be on the queries'
device.

Shape letters are those of [`attnref.core`][attnref.core]: B batch, H heads, L query length, S key
length.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from attnref import _checks, core

__all__ = [
    "causal_mask_mod",
    "sliding_window_mask_mod",
    "chunked_causal_mask_mod",
    "block_causal_mask_mod",
    "prefix_lm_mask_mod",
    "seq_id_mask_mod",
    "padding_mask_mod",
    "alibi_score_mod",
    "mask_mod_from_bool",
    "to_transformers_mask",
    "from_transformers_mask",
]

MaskMod = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
ScoreMod = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


# --------------------------------------------------------------------------------------------
# FlexAttention: one mask_mod per mask of core
# --------------------------------------------------------------------------------------------


def causal_mask_mod(L: int, S: int | None = None, *, align: str = "bottom-right") -> MaskMod:
    """FlexAttention spelling of [`core.causal_mask()`][attnref.core.causal_mask].

    Bottom-right: ``kv_idx <= q_idx + (S - L)``. Top-left: ``kv_idx <= q_idx``, the mask_mod
    PyTorch's documentation calls ``causal``; it equals the bottom-right one only when ``S == L``.

    Args:
        L: query length.
        S: key length; defaults to ``L``.
        align: ``"bottom-right"`` or ``"top-left"``.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    _checks.check_choice("align", align, core.CAUSAL_ALIGNMENTS)
    if align == "top-left":
        _checks.check_positive_int("L", L)
        if S is not None:
            _checks.check_positive_int("S", S)
        offset = 0
    else:
        offset = _checks.check_lengths(L, S) - L

    def causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return kv_idx <= q_idx + offset

    return causal


def sliding_window_mask_mod(L: int, S: int | None = None, *, window: int) -> MaskMod:
    """FlexAttention spelling of [`core.sliding_window_mask()`][attnref.core.sliding_window_mask].

    With ``p = q_idx + (S - L)``: ``kv_idx <= p`` and ``kv_idx > p - window``.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        window: keys visible to each query, counting itself.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    offset = _checks.check_lengths(L, S) - L
    _checks.check_positive_int("window", window)

    def sliding_window(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        p = q_idx + offset
        return (kv_idx <= p) & (kv_idx > p - window)

    return sliding_window


def chunked_causal_mask_mod(L: int, S: int | None = None, *, chunk_size: int) -> MaskMod:
    """FlexAttention spelling of [`core.chunked_causal_mask()`][attnref.core.chunked_causal_mask].

    With ``p = q_idx + (S - L)``: ``kv_idx <= p`` and ``kv_idx // chunk_size == p // chunk_size``.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        chunk_size: tokens per chunk.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    offset = _checks.check_lengths(L, S) - L
    _checks.check_positive_int("chunk_size", chunk_size)

    def chunked_causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        p = q_idx + offset
        return (kv_idx <= p) & (kv_idx // chunk_size == p // chunk_size)

    return chunked_causal


def block_causal_mask_mod(L: int, S: int | None = None, *, block_size: int) -> MaskMod:
    """FlexAttention spelling of [`core.block_causal_mask()`][attnref.core.block_causal_mask].

    With ``p = q_idx + (S - L)``: ``kv_idx // block_size <= p // block_size``.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        block_size: tokens per block.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    offset = _checks.check_lengths(L, S) - L
    _checks.check_positive_int("block_size", block_size)

    def block_causal(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return kv_idx // block_size <= (q_idx + offset) // block_size

    return block_causal


def prefix_lm_mask_mod(prefix_lengths: Tensor, L: int, S: int | None = None) -> MaskMod:
    """FlexAttention spelling of [`core.prefix_lm_mask()`][attnref.core.prefix_lm_mask].

    ``kv_idx <= q_idx + (S - L)`` or ``kv_idx < prefix_lengths[b]``: the causal mask or-ed with
    the prefix, as ``or_masks(prefix, causal)`` would write it.

    Args:
        prefix_lengths: ``(B,)`` integer prefix length of each sequence.
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    _checks.check_counts("prefix_lengths", prefix_lengths)
    offset = _checks.check_lengths(L, S) - L

    def prefix_lm(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx <= q_idx + offset) | (kv_idx < prefix_lengths[b])

    return prefix_lm


def seq_id_mask_mod(seq_id: Tensor) -> MaskMod:
    """FlexAttention spelling of [`core.seq_id_mask()`][attnref.core.seq_id_mask] (a document mask).

    ``seq_id[b, q_idx] == seq_id[b, kv_idx]``. For a causal model combine it with
    [`causal_mask_mod()`][attnref.atlas.causal_mask_mod] through FlexAttention's ``and_masks``.

    Args:
        seq_id: ``(B, L)`` integer or boolean sequence ids.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    _checks.check_shape("seq_id", seq_id, "B L")
    if seq_id.is_floating_point() or seq_id.is_complex():
        _checks.fail("seq_id", "an integer or boolean tensor of sequence ids", seq_id.dtype, TypeError)

    def same_sequence(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return seq_id[b, q_idx] == seq_id[b, kv_idx]

    return same_sequence


def padding_mask_mod(lengths: Tensor, S: int, *, side: str = "right") -> MaskMod:
    """FlexAttention spelling of [`core.padding_mask()`][attnref.core.padding_mask].

    Right padding: ``kv_idx < lengths[b]``. Left padding: ``kv_idx >= S - lengths[b]``.

    Args:
        lengths: ``(B,)`` integer count of real tokens in each sequence.
        S: padded key length.
        side: ``"right"`` or ``"left"``.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    _checks.check_counts("lengths", lengths)
    _checks.check_positive_int("S", S)
    _checks.check_choice("side", side, core.PADDING_SIDES)

    if side == "right":

        def real_key(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return kv_idx < lengths[b]

    else:

        def real_key(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
            return kv_idx >= S - lengths[b]

    return real_key


def alibi_score_mod(
    num_heads: int, L: int, S: int | None = None, *, device: torch.device | str | None = None
) -> ScoreMod:
    """FlexAttention spelling of [`core.alibi_bias()`][attnref.core.alibi_bias]: a score_mod.

    ``score - slope[h] * (q_idx + (S - L) - kv_idx)``. ALiBi is a bias, not a mask: pass the
    causal mask separately, as a ``BlockMask`` of
    [`causal_mask_mod()`][attnref.atlas.causal_mask_mod].

    Args:
        num_heads: H, the heads the score_mod will see.
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        device: the device of the queries (where the slopes live).

    Returns:
        ``score_mod(score, b, h, q_idx, kv_idx)``.
    """
    offset = _checks.check_lengths(L, S) - L
    slopes_H = core.alibi_slopes(num_heads, device=device)

    def alibi(score: Tensor, b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return score - slopes_H[h] * (q_idx + offset - kv_idx)

    return alibi


# --------------------------------------------------------------------------------------------
# Conversions
# --------------------------------------------------------------------------------------------


def mask_mod_from_bool(mask: Tensor, B: int, H: int, L: int, S: int) -> MaskMod:
    """Any boolean mask as a FlexAttention mask_mod that looks it up.

    The way to FlexAttention for a mask with no index rule (a mask read from a file, a
    transformers mask after [`from_transformers_mask()`][attnref.atlas.from_transformers_mask]).
    It keeps the ``(B, H, L, S)`` mask in memory, which an index rule avoids. The reverse is
    FlexAttention's own ``create_mask(mask_mod, B, H, L, S)``.

    Args:
        mask: boolean, True = may attend, broadcastable to ``(B, H, L, S)``.
        B: batch size the mask_mod will see.
        H: heads the mask_mod will see.
        L: query length.
        S: key length.

    Returns:
        ``mask_mod(b, h, q_idx, kv_idx)``, True = may attend.
    """
    for name, size in (("B", B), ("H", H), ("L", L), ("S", S)):
        _checks.check_positive_int(name, size)
    _checks.check_bool_mask("mask", mask, (B, H, L, S))
    mask_BHLS = mask.expand(B, H, L, S)  # a view: broadcast dims cost no memory

    def look_up(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return mask_BHLS[b, h, q_idx, kv_idx]

    return look_up


def to_transformers_mask(mask: Tensor, B: int, L: int, S: int, *, dtype: torch.dtype | None = None) -> Tensor:
    """attnref's boolean mask as the 4D mask transformers passes to its attention functions.

    transformers (``masking_utils``, 5.25) builds the mask once per forward pass and hands it to
    every layer: ``(B, 1, L, S)`` boolean (True = may attend) for its ``"sdpa"`` attention
    (``sdpa_mask``), and ``(B, 1, L, S)`` additive for ``"eager"`` (``eager_mask``): 0 where
    allowed and ``torch.finfo(dtype).min``, not ``-inf``, where blocked. (Its flash-attention path
    gets the 2D padding mask instead, its FlexAttention path a ``BlockMask``.) With ``finfo.min``
    a plain softmax turns a fully masked row into a uniform average of the values instead of NaN.

    Args:
        mask: boolean, True = may attend, broadcastable to ``(B, 1, L, S)``; one mask for every
            head, as transformers has.
        B: batch size.
        L: query length.
        S: key length.
        dtype: None for the boolean form; a floating dtype (the model's) for the additive form.

    Returns:
        ``(B, 1, L, S)``: ``mask`` expanded (a view), or the additive float mask in ``dtype``.
    """
    for name, size in (("B", B), ("L", L), ("S", S)):
        _checks.check_positive_int(name, size)
    _checks.check_bool_mask("mask", mask, (B, 1, L, S), letters="B 1 L S")
    mask_B1LS = mask.expand(B, 1, L, S)
    if dtype is None:
        return mask_B1LS
    # transformers blocks with the lowest finite value: clamp the -inf of bool_to_additive to it.
    return core.bool_to_additive(mask_B1LS, dtype).clamp_min(torch.finfo(dtype).min)


def from_transformers_mask(mask: Tensor) -> Tensor:
    """A transformers 4D mask, boolean or additive, as attnref's boolean mask.

    Args:
        mask: ``(B, 1, L, S)`` boolean (True = may attend) or additive float (0 allowed;
            ``finfo.min`` or ``-inf`` blocked), as
            [`to_transformers_mask()`][attnref.atlas.to_transformers_mask] or transformers'
            ``create_causal_mask`` returns it.

    Returns:
        ``(B, 1, L, S)`` boolean, True = may attend.
    """
    _checks.check_shape("mask", mask, "B H L S", H=1)
    if mask.dtype == torch.bool:
        return mask
    if not mask.is_floating_point():
        _checks.fail("mask", "a boolean or floating-point mask", mask.dtype, TypeError)
    return core.additive_to_bool(mask)
