"""The shared core: reference attention, masks, rotary embeddings and ``repeat_kv``.

Every implementation module imports this file and none imports another, so each module can be
read (and diffed against its upstream) on its own while the math lives here once.

Shape letters, used in every tensor name (``q_BHLD``, ``scores_BHLS``) and einops pattern:

| letter | meaning |
|---|---|
| B | batch |
| L | query length |
| S | key / value length (``S == L`` in self-attention without a cache) |
| H | query heads |
| G | key / value heads (``G == H`` for multi-head attention, ``G < H`` for GQA) |
| D | head dim |
| E | model dim (``d_model``, ``hidden_size``, ``dim``; ``E == H * D`` unless a module says otherwise) |

Masks are boolean with ``True`` meaning *may attend*, the convention of
``torch.nn.functional.scaled_dot_product_attention``. Additive float masks (0 where allowed,
``-inf`` where blocked) are converted only at the edges with
[`bool_to_additive()`][attnref.core.bool_to_additive] and
[`additive_to_bool()`][attnref.core.additive_to_bool]. Every mask is built here: causal in both
alignments, sliding window, chunked, block-causal, prefix-LM, packed sequences and padding on
either side, plus ALiBi's additive score bias; [`attnref.atlas`][attnref.atlas] writes each of them
in the spellings of FlexAttention and transformers.

**Fully masked rows.** A query row whose keys are all masked (boolean False, or additive
``-inf`` or ``torch.finfo(dtype).min``) has no softmax to take. Every path in attnref returns zeros
for such a row (weights and output) with finite gradients, as PyTorch's own
``scaled_dot_product_attention`` does (checked with PyTorch 2.13); none returns NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from attnref import _checks

__all__ = [
    "IMPLEMENTATIONS",
    "sdpa_reference",
    "attend",
    "CAUSAL_ALIGNMENTS",
    "PADDING_SIDES",
    "causal_mask",
    "sliding_window_mask",
    "chunked_causal_mask",
    "block_causal_mask",
    "prefix_lm_mask",
    "seq_id_mask",
    "padding_mask",
    "alibi_slopes",
    "alibi_bias",
    "bool_to_additive",
    "additive_to_bool",
    "rope_angles",
    "ROPE_TYPES",
    "rope_inv_freq",
    "rotate_half",
    "apply_rope_half_split",
    "apply_rope_adjacent",
    "adjacent_to_half_split",
    "half_split_to_adjacent",
    "repeat_kv",
]

IMPLEMENTATIONS = ("sdpa", "eager")
"""Attention kernels a module can use: ``"sdpa"`` (PyTorch's fused kernel, the default) or
``"eager"`` ([`sdpa_reference()`][attnref.core.sdpa_reference], the explicit matmul/softmax path that can
return weights)."""


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # float16/bfloat16 inputs are promoted to float32 for the softmax and the RoPE rotation;
    # float64 stays float64 so the reference is exact enough to test against.
    return torch.promote_types(dtype, torch.float32)


# --------------------------------------------------------------------------------------------
# Masks
# --------------------------------------------------------------------------------------------


CAUSAL_ALIGNMENTS = ("bottom-right", "top-left")
"""Where a causal mask puts query ``i`` when ``S != L``: at position ``S - L + i``, after the cached
keys (``"bottom-right"``, attnref's default), or at position ``i`` (``"top-left"``, what PyTorch's
``is_causal=True`` means)."""

PADDING_SIDES = ("right", "left")
"""Where a padded batch puts its pad tokens: after the real ones (``"right"``) or before them
(``"left"``, usual for generation, so that every sequence ends in the last column)."""


def causal_mask(
    L: int, S: int | None = None, *, align: str = "bottom-right", device: torch.device | str | None = None
) -> Tensor:
    """Boolean causal mask, aligned bottom-right (the default) or top-left.

    Bottom-right: query ``i`` sits at position ``S - L + i`` and may attend to keys
    ``0 .. S - L + i``, so the last query sees every key. With a KV cache holding ``S - L`` earlier
    tokens this is exactly "each new token sees the past and itself"; it needs ``S >= L``.
    Top-left: query ``i`` may attend to keys ``0 .. i`` whatever ``S`` is; this is what PyTorch's
    ``is_causal=True`` means. The two agree when ``S == L``.

    Args:
        L: query length.
        S: key length; defaults to ``L``.
        align: ``"bottom-right"`` or ``"top-left"``.
        device: where to build the mask.

    Returns:
        ``(L, S)`` boolean, True = may attend. No row is fully masked.
    """
    _checks.check_choice("align", align, CAUSAL_ALIGNMENTS)
    if align == "top-left":
        _checks.check_positive_int("L", L)
        S = L if S is None else _checks.check_positive_int("S", S)
        return torch.ones(L, S, dtype=torch.bool, device=device).tril()
    S = _checks.check_lengths(L, S)
    return torch.ones(L, S, dtype=torch.bool, device=device).tril(diagonal=S - L)


def sliding_window_mask(
    L: int, S: int | None = None, *, window: int, device: torch.device | str | None = None
) -> Tensor:
    """Boolean causal mask restricted to the last ``window`` keys, aligned bottom-right.

    Query ``i`` sits at absolute position ``p = S - L + i`` (after ``S - L`` cached tokens) and may
    attend to keys ``p - window + 1 .. p``: itself and the ``window - 1`` tokens before it. This is
    Mistral's rule as transformers writes it (``kv_idx > q_idx - sliding_window`` on top of the
    causal mask), so a query sees exactly ``min(window, p + 1)`` keys.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        window: keys visible to each query, counting itself; ``window >= S`` gives
            [`causal_mask()`][attnref.core.causal_mask].
        device: where to build the mask.

    Returns:
        ``(L, S)`` boolean, True = may attend. No row is fully masked.
    """
    _checks.check_positive_int("window", window)
    causal_LS = causal_mask(L, S, device=device)
    S = causal_LS.shape[-1]
    # tril keeps j <= i + (S - L); triu drops keys more than window - 1 behind the query.
    return causal_LS.triu(diagonal=S - L - window + 1)


def chunked_causal_mask(
    L: int, S: int | None = None, *, chunk_size: int, device: torch.device | str | None = None
) -> Tensor:
    """Causal mask that never crosses a chunk boundary, aligned bottom-right (Llama 4's rule).

    Positions are cut into chunks ``[0, chunk_size)``, ``[chunk_size, 2 chunk_size)``, ...; query
    ``i`` at position ``p = S - L + i`` may attend to keys ``j <= p`` in its own chunk
    (``j // chunk_size == p // chunk_size``). Unlike a sliding window, the first query of a chunk
    sees only itself however long the context. transformers writes this rule as
    ``chunked_causal_mask_function`` (``masking_utils``) and counts chunks from the first real
    token of a left-padded row; here they count from position 0.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        chunk_size: tokens per chunk.
        device: where to build the mask.

    Returns:
        ``(L, S)`` boolean, True = may attend. No row is fully masked.
    """
    _checks.check_positive_int("chunk_size", chunk_size)
    causal_LS = causal_mask(L, S, device=device)
    L, S = causal_LS.shape
    keys_S = torch.arange(S, device=device)
    same_chunk_LS = keys_S // chunk_size == torch.arange(S - L, S, device=device)[:, None] // chunk_size
    return causal_LS & same_chunk_LS


def block_causal_mask(
    L: int, S: int | None = None, *, block_size: int, device: torch.device | str | None = None
) -> Tensor:
    """Causal across blocks, bidirectional within a block, aligned bottom-right.

    Positions are cut into blocks of ``block_size``; query ``i`` at position ``p = S - L + i`` may
    attend to every key ``j`` whose block is not after its own (``j // block_size <= p //
    block_size``), including the later keys of its own block. This is the mask of blockwise
    (semi-autoregressive) generation, where a whole block is produced at once; it is not
    [`chunked_causal_mask()`][attnref.core.chunked_causal_mask], which forbids the *earlier* blocks
    and keeps causality inside one.

    Args:
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        block_size: tokens per block; 1 gives [`causal_mask()`][attnref.core.causal_mask].
        device: where to build the mask.

    Returns:
        ``(L, S)`` boolean, True = may attend. No row is fully masked.
    """
    _checks.check_positive_int("block_size", block_size)
    S = _checks.check_lengths(L, S)
    keys_S = torch.arange(S, device=device)
    return keys_S // block_size <= torch.arange(S - L, S, device=device)[:, None] // block_size


def prefix_lm_mask(prefix_lengths: Tensor, L: int, S: int | None = None) -> Tensor:
    """Prefix-LM mask: the prefix is seen by every query, the rest is causal (bottom-right).

    Query ``i`` at position ``p = S - L + i`` may attend to key ``j`` when ``j <= p`` (causal) or
    ``j < prefix_lengths[b]`` (the prefix, bidirectional: prefix tokens also see the prefix tokens
    after them). This is the mask of T5-style prefix language models and of the image-and-prompt
    prefix of PaliGemma.

    Args:
        prefix_lengths: ``(B,)`` integer prefix length of each sequence; 0 gives
            [`causal_mask()`][attnref.core.causal_mask].
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.

    Returns:
        ``(B, 1, L, S)`` boolean on ``prefix_lengths``' device, True = may attend. No row is fully
        masked.
    """
    _checks.check_counts("prefix_lengths", prefix_lengths)
    causal_LS = causal_mask(L, S, device=prefix_lengths.device)
    keys_S = torch.arange(causal_LS.shape[-1], device=prefix_lengths.device)
    prefix_B1S = (keys_S < prefix_lengths[:, None])[:, None, :]
    return (causal_LS | prefix_B1S)[:, None]


def seq_id_mask(seq_id: Tensor) -> Tensor:
    """Mask for packed sequences: a token attends only to tokens with the same ``seq_id``.

    This is ESM3's rule (``seq_id.unsqueeze(-1) == seq_id.unsqueeze(-2)``). Every token shares
    its own id, so no row is fully masked.

    **Padding inside it.** Pad tokens are one more id: they attend to each other and never to a
    real token (nor a real token to them), and their rows are never empty, so they give finite
    outputs that the caller ignores. ESM C passes a boolean ``seq_id`` that is True on real tokens
    and False on pads (``esm/models/esmc.py``, esm 3.2.1), which makes exactly this split. The one
    way to get it wrong is to give pads the id of a real sequence: they then join that sequence.

    For a causal model, combine it with [`causal_mask()`][attnref.core.causal_mask]:
    ``seq_id_mask(seq_id) & causal_mask(L)``.

    Args:
        seq_id: ``(B, L)`` integer or boolean sequence ids.

    Returns:
        ``(B, 1, L, L)`` boolean, True = may attend.
    """
    _checks.check_shape("seq_id", seq_id, "B L")
    if seq_id.is_floating_point() or seq_id.is_complex():
        _checks.fail("seq_id", "an integer or boolean tensor of sequence ids", seq_id.dtype, TypeError)
    return (seq_id.unsqueeze(-1) == seq_id.unsqueeze(-2)).unsqueeze(1)


def padding_mask(lengths: Tensor, S: int, *, side: str = "right") -> Tensor:
    """Key-padding mask for a padded batch: no query may attend to a pad token.

    Only keys are masked; the rows of pad *queries* still attend to the real keys and give outputs
    that the caller ignores. With ``side="left"`` and a causal mask, though, a pad query sees no
    real key at all: such rows are fully masked and every attnref path returns zeros for them.

    Args:
        lengths: ``(B,)`` integer count of real tokens in each sequence, ``0 <= lengths <= S``.
        S: padded key length.
        side: where the pad tokens are: ``"right"`` (after the real tokens, key ``j`` is real when
            ``j < lengths[b]``) or ``"left"`` (before them, real when ``j >= S - lengths[b]``).

    Returns:
        ``(B, 1, 1, S)`` boolean on ``lengths``' device, True = may attend. A sequence of length 0
        masks every key: its rows are fully masked and every attnref path returns zeros for them.
    """
    _checks.check_counts("lengths", lengths)
    _checks.check_positive_int("S", S)
    _checks.check_choice("side", side, PADDING_SIDES)
    keys_S = torch.arange(S, device=lengths.device)
    if side == "right":
        real_BS = keys_S < lengths[:, None]
    else:
        real_BS = keys_S >= S - lengths[:, None]
    return real_BS[:, None, None, :]


def alibi_slopes(num_heads: int, *, device: torch.device | str | None = None) -> Tensor:
    """The ALiBi slope of each head, as in the ALiBi paper (Press et al., 2022) and BLOOM.

    For ``n`` heads, ``n`` a power of two, the slopes are the geometric sequence
    ``2^(-8/n), 2^(-16/n), ..., 2^(-8)``. For other head counts the first ``n`` heads (``n`` the
    largest power of two below ``num_heads``) take the ``n``-head slopes and the remaining
    ``num_heads - n`` heads take every other slope of the ``2n``-head sequence, starting with its
    first: ``2^(-4/n), 2^(-12/n), ...``. Checked against ``_get_alibi_slopes`` in transformers'
    ``models/bloom/modeling_bloom.py`` (5.25).

    Args:
        num_heads: H.
        device: where to build the slopes.

    Returns:
        ``(H,)`` float32 slopes, each in ``(0, 1)``.
    """
    _checks.check_positive_int("num_heads", num_heads)
    n = 1 << (num_heads.bit_length() - 1)  # the largest power of two <= num_heads
    exponents = [-8 * (h + 1) / n for h in range(n)]
    exponents += [-8 * (2 * h + 1) / (2 * n) for h in range(num_heads - n)]
    return torch.tensor([2.0**e for e in exponents], dtype=torch.float32, device=device)


def alibi_bias(
    num_heads: int, L: int, S: int | None = None, *, device: torch.device | str | None = None
) -> Tensor:
    """ALiBi as an additive score bias: ``-slope_h * (p - j)`` for query position ``p``, key ``j``.

    ALiBi replaces position embeddings by a penalty that grows linearly with the distance from the
    query to the key, one slope per head ([`alibi_slopes()`][attnref.core.alibi_slopes]). Queries
    are aligned bottom-right (``p = S - L + i``). The bias is meant to be added to the scores *and*
    combined with [`causal_mask()`][attnref.core.causal_mask]: above the diagonal (``j > p``) it is
    positive and would favour future keys. It is not a mask and has no boolean form.

    BLOOM adds ``slope_h * j`` instead (``build_alibi_tensor``), which differs from this bias by
    ``slope_h * p``, the same constant for every key of a row: the softmax, and so the attention,
    is the same.

    Args:
        num_heads: H.
        L: query length.
        S: key length, ``S >= L``; defaults to ``L``.
        device: where to build the bias.

    Returns:
        ``(H, L, S)`` float32, to be added to the ``(B, H, L, S)`` scores.
    """
    S = _checks.check_lengths(L, S)
    slopes_H11 = alibi_slopes(num_heads, device=device)[:, None, None]
    # j - p = -(distance from the query back to the key): 0 on the query itself, negative before it.
    offset_LS = torch.arange(S, device=device) - torch.arange(S - L, S, device=device)[:, None]
    return slopes_H11 * offset_LS


def bool_to_additive(mask: Tensor, dtype: torch.dtype = torch.float32) -> Tensor:
    """Boolean mask (True = may attend) to an additive one: 0 where allowed, ``-inf`` where blocked.

    Args:
        mask: boolean mask of any shape.
        dtype: floating dtype of the result.

    Returns:
        Float tensor of ``mask``'s shape, to be *added* to the scores before the softmax.
    """
    _checks.check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        _checks.fail("mask", "a boolean mask (True = may attend)", mask.dtype, TypeError)
    if not dtype.is_floating_point:
        _checks.fail("dtype", "a floating dtype", dtype, TypeError)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, float("-inf"))


def additive_to_bool(mask: Tensor) -> Tensor:
    """Additive mask to boolean: True where the value is above the dtype's lowest finite value.

    Both ``-inf`` and ``torch.finfo(dtype).min`` (what Hugging Face uses) count as blocked. Only
    masks made of 0 and those values are masks; a learned bias such as ALiBi has no boolean form.

    Args:
        mask: floating-point additive mask of any shape.

    Returns:
        Boolean tensor of the same shape, True = may attend.
    """
    _checks.check_floating("mask", mask)
    return mask > torch.finfo(mask.dtype).min


# --------------------------------------------------------------------------------------------
# Attention
# --------------------------------------------------------------------------------------------


def _check_attn_mask(attn_mask: object, q: Tensor, L: int, S: int) -> None:
    _checks.check_tensor("attn_mask", attn_mask)
    if attn_mask.dtype != torch.bool and not attn_mask.is_floating_point():
        _checks.fail("attn_mask", "a boolean or floating-point mask", attn_mask.dtype, TypeError)
    letters = " ".join([f"N{i}" for i in range(q.dim() - 2)] + ["L", "S"])
    _checks.check_mask_shape("attn_mask", attn_mask, (*q.shape[:-2], L, S), letters)


def sdpa_reference(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    return_weights: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Scaled dot-product attention written out: ``softmax(q k^T * scale + mask) v``.

    The plain reference every fast path in attnref is tested against. Scores and softmax are
    computed in float32 (float64 for float64 inputs) and the result is cast back to ``q``'s dtype.

    Args:
        q: ``(..., L, D)`` queries, usually ``(B, H, L, D)``.
        k: ``(..., S, D)`` keys with the same leading dims as ``q``.
        v: ``(..., S, Dv)`` values.
        attn_mask: boolean (True = may attend) or additive float mask, broadcastable to
            ``(..., L, S)``.
        is_causal: also apply [`causal_mask()`][attnref.core.causal_mask] (aligned bottom-right when ``S
            > L``).
        scale: multiplier of the scores; defaults to ``1 / sqrt(D)``.
        dropout_p: dropout probability applied to the weights (always, like PyTorch's function;
            modules pass 0 in eval mode).
        return_weights: also return the attention weights.

    Returns:
        ``(..., L, Dv)`` output in ``q``'s dtype, and with ``return_weights`` the
        ``(..., L, S)`` weights. Fully masked rows give zero weights and a zero output.
    """
    L, S = _checks.check_qkv(q, k, v)
    if attn_mask is not None:
        _check_attn_mask(attn_mask, q, L, S)
    dropout_p = _checks.check_probability("dropout_p", dropout_p)
    scale = q.shape[-1] ** -0.5 if scale is None else scale

    acc = _compute_dtype(q.dtype)
    scores_NLS = (q.to(acc) @ k.to(acc).transpose(-2, -1)) * scale
    blocked_NLS = ~causal_mask(L, S, device=q.device) if is_causal else None
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            blocked_mask = ~attn_mask
        else:
            scores_NLS = scores_NLS + attn_mask.to(acc)
            # finfo.min (Hugging Face's "blocked") counts as blocked, as in additive_to_bool.
            blocked_mask = attn_mask <= torch.finfo(attn_mask.dtype).min
        blocked_NLS = blocked_mask if blocked_NLS is None else blocked_NLS | blocked_mask
    if blocked_NLS is not None:
        scores_NLS = scores_NLS.masked_fill(blocked_NLS, float("-inf"))
    # A row of -inf has no softmax: NaN forward and NaN gradients. Define it as attending to
    # nothing, and feed the softmax zeros there so no NaN reaches the backward pass either.
    empty_NL1 = torch.isneginf(scores_NLS).all(dim=-1, keepdim=True)
    weights_NLS = torch.softmax(scores_NLS.masked_fill(empty_NL1, 0.0), dim=-1).masked_fill(empty_NL1, 0.0)
    if dropout_p > 0.0:
        weights_NLS = F.dropout(weights_NLS, p=dropout_p)
    out_NLD = (weights_NLS @ v.to(acc)).to(q.dtype)
    if return_weights:
        return out_NLD, weights_NLS.to(q.dtype)
    return out_NLD


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    attn_mask: Tensor | None = None,
    *,
    is_causal: bool = False,
    scale: float | None = None,
    dropout_p: float = 0.0,
    implementation: str = "sdpa",
) -> Tensor:
    """Attention through the chosen kernel; what every attnref module calls.

    ``"sdpa"`` runs ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels, no
    ``L x S`` matrix where the backend allows); ``"eager"`` runs
    [`sdpa_reference()`][attnref.core.sdpa_reference]. Both give
    the same function, including bottom-right causal alignment when ``S > L`` (which PyTorch's own
    ``is_causal`` does not do) and zeros for fully masked rows.

    Args:
        q: ``(B, H, L, D)``.
        k: ``(B, H, S, D)``.
        v: ``(B, H, S, Dv)``.
        attn_mask: boolean mask (True = may attend) broadcastable to ``(B, H, L, S)``.
        is_causal: causal masking, aligned bottom-right.
        scale: score multiplier, default ``1 / sqrt(D)``.
        dropout_p: dropout on the weights.
        implementation: ``"sdpa"`` or ``"eager"``.

    Returns:
        ``(B, H, L, Dv)``.
    """
    _checks.check_choice("implementation", implementation, IMPLEMENTATIONS)
    _checks.check_qkv(q, k, v)
    if attn_mask is not None:
        _checks.check_bool_mask("attn_mask", attn_mask, (*q.shape[:-2], q.shape[-2], k.shape[-2]))
    if implementation == "eager":
        return sdpa_reference(q, k, v, attn_mask, is_causal=is_causal, scale=scale, dropout_p=dropout_p)
    L, S = q.shape[-2], k.shape[-2]
    if attn_mask is not None and attn_mask.dim() < 2:
        # PyTorch's kernel reads the mask's last two dims: give an (S,) key mask its query axis.
        attn_mask = attn_mask.expand(L, S)
    if is_causal and (attn_mask is not None or L != S):
        # PyTorch aligns is_causal top-left; spell the bottom-right mask out instead.
        causal_LS = causal_mask(L, S, device=q.device)
        attn_mask = causal_LS if attn_mask is None else attn_mask & causal_LS
        is_causal = False
    return F.scaled_dot_product_attention(
        q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal, scale=scale
    )


# --------------------------------------------------------------------------------------------
# Rotary position embedding
# --------------------------------------------------------------------------------------------


def rope_angles(
    positions: Tensor,
    dim: int,
    theta: float = 10000.0,
    *,
    scaling_factor: float = 1.0,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Rotation angles ``m * theta^(-2i/dim)`` for positions ``m`` and channel pairs ``i``.

    The angles grow with the position, so they are computed in ``dtype`` (float32 by default, as
    Hugging Face LLaMA, ESM and Flux do), never in a half-precision input dtype
    where neighbouring positions would collide.

    Args:
        positions: ``(...)`` token positions (integer or float).
        dim: rotated head dim, even.
        theta: base of the frequencies (``rope_theta``, ``base``).
        scaling_factor: linear position interpolation: positions are divided by it.
        dtype: float32 or float64, the precision of the computation and of the result.

    Returns:
        ``(..., dim / 2)`` angles in ``dtype``; pair ``i`` turns at frequency ``theta^(-2i/dim)``.
    """
    _checks.check_tensor("positions", positions)
    _checks.check_positive_int("dim", dim)
    _checks.check_even("dim", dim)
    if dtype not in (torch.float32, torch.float64):
        _checks.fail("dtype", "torch.float32 or torch.float64", dtype, TypeError)
    inv_freq = 1.0 / (theta ** _pair_exponents(dim, dtype, positions.device))
    return (positions.to(dtype) / scaling_factor)[..., None] * inv_freq


def _pair_exponents(dim: int, dtype: torch.dtype, device: torch.device | str | None) -> Tensor:
    # 2i / dim for pairs i = 0 .. dim/2 - 1: frequency i is theta ** -(2i / dim).
    return torch.arange(0, dim, 2, dtype=dtype, device=device) / dim


ROPE_TYPES = ("default", "linear", "dynamic", "yarn", "longrope", "llama3")
"""The ``rope_type`` values of transformers' ``rope_parameters`` that
[`rope_inv_freq()`][attnref.core.rope_inv_freq] computes."""


def _yarn_mscale(scale: float, mscale: float = 1.0) -> float:
    # YaRN's attention temperature, 0.1 * mscale * ln(scale) + 1 (Eq. 21 of the YaRN paper).
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def rope_inv_freq(
    rope_parameters: dict | None,
    dim: int,
    *,
    max_position_embeddings: int | None = None,
    seq_len: int | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, float]:
    """Frequencies of the rotary pairs for a transformers ``rope_parameters`` dict, with RoPE scaling.

    A checkpoint's config says how its RoPE was stretched beyond the context it was trained on; this
    function turns that dict into the frequency ``inv_freq[i]`` of each channel pair (the angle of
    pair ``i`` at position ``m`` is ``m * inv_freq[i]``) and the factor that multiplies cos and sin.
    With ``theta`` = ``rope_theta``, ``f`` = ``factor``, ``L0`` = ``original_max_position_embeddings``
    and ``base_i = theta^(-2i/dim)``:

    - ``"default"``: ``base_i``.
    - ``"linear"`` (position interpolation): ``base_i / f``, every pair slowed down alike.
    - ``"dynamic"`` (dynamic NTK): ``theta`` grows to
      ``theta * (f * s / M - (f - 1))^(dim / (dim - 2))`` once the sequence length ``s`` exceeds
      ``M`` = ``max_position_embeddings``; ``base_i`` up to ``M``.
    - ``"yarn"``: pairs that turn more than ``beta_fast`` (32) times within ``L0`` keep ``base_i``,
      pairs that turn fewer than ``beta_slow`` (1) times get ``base_i / f``, a linear ramp in ``i``
      between; cos and sin are multiplied by ``attention_factor``, default ``0.1 ln f + 1``.
    - ``"longrope"``: ``base_i / short_factor[i]``, or ``base_i / long_factor[i]`` once the sequence
      is longer than ``L0``; cos and sin are multiplied by ``attention_factor``, default
      ``sqrt(1 + ln f / ln L0)``.
    - ``"llama3"``: wavelengths ``2 pi / base_i`` shorter than ``L0 / high_freq_factor`` keep
      ``base_i``, longer than ``L0 / low_freq_factor`` get ``base_i / f``, and a smooth blend of
      the two lies between.

    Each type computes exactly what its init function in transformers'
    ``src/transformers/modeling_rope_utils.py`` (``ROPE_INIT_FUNCTIONS``) computes, in the same
    float32 operations (checked against transformers 5.25.0). As there, a missing
    ``original_max_position_embeddings`` falls back to ``max_position_embeddings``, and a yarn or
    longrope ``factor`` of ``None`` to ``max_position_embeddings / original_max_position_embeddings``.

    Args:
        rope_parameters: transformers' dict, as in a checkpoint's ``config.json``:
            ``rope_type`` (default ``"default"``; the legacy key ``type`` is read too),
            ``rope_theta`` (default 10000.0) and the fields of that type (``factor``,
            ``original_max_position_embeddings``, ``attention_factor``, ``beta_fast``,
            ``beta_slow``, ``mscale``, ``mscale_all_dim``, ``truncate``, ``short_factor``,
            ``long_factor``, ``low_freq_factor``, ``high_freq_factor``). ``None`` is ``{}``.
        dim: rotated head dim D, even.
        max_position_embeddings: the config's context length; ``"dynamic"`` requires it.
        seq_len: length of the sequence being processed (largest position + 1), for the types that
            depend on it (``"dynamic"``, ``"longrope"``); ``None`` gives what a model starts with.
        device: where to build ``inv_freq``.

    Returns:
        ``(inv_freq, attention_scaling)``: ``(dim / 2,)`` float32 frequencies, and the float that
        multiplies cos and sin (1.0 except for yarn and longrope).
    """
    if rope_parameters is None:
        rope_parameters = {}
    if not isinstance(rope_parameters, dict):
        _checks.fail("rope_parameters", "a dict (a config's rope_parameters) or None",
                     type(rope_parameters).__name__, TypeError)
    _checks.check_positive_int("dim", dim)
    _checks.check_even("dim", dim)
    if max_position_embeddings is not None:
        _checks.check_positive_int("max_position_embeddings", max_position_embeddings)
    if seq_len is not None:
        _checks.check_positive_int("seq_len", seq_len)
    rope_type = rope_parameters.get("rope_type", rope_parameters.get("type", "default"))
    if rope_type not in ROPE_TYPES:
        _checks.fail("rope_parameters", f"a rope_type in {ROPE_TYPES}", f"rope_type {rope_type!r}")
    if rope_parameters.get("partial_rotary_factor", 1.0) != 1.0:
        _checks.fail("rope_parameters", "partial_rotary_factor 1.0 (RoPE on the whole head)",
                     rope_parameters["partial_rotary_factor"])

    def field(name: str, fallback: object = None) -> object:
        value = rope_parameters.get(name)
        if value is None:
            value = fallback
        if value is None:
            _checks.fail("rope_parameters", f"a value for {name!r} (rope_type {rope_type!r})",
                         f"keys {sorted(rope_parameters)}")
        return value

    def context_length() -> int:
        if max_position_embeddings is None:
            _checks.fail("max_position_embeddings", f"the config's context length (rope_type {rope_type!r} needs it)",
                         None)
        return max_position_embeddings

    theta = rope_parameters.get("rope_theta", 10000.0)
    theta = float(_checks.check_positive_number("rope_parameters['rope_theta']", theta))
    exponents_P = _pair_exponents(dim, torch.float32, device)
    inv_freq_P = 1.0 / (theta ** exponents_P)
    if rope_type == "default":
        return inv_freq_P, 1.0
    if rope_type == "linear":
        return inv_freq_P / field("factor"), 1.0
    if rope_type == "dynamic":
        factor, M = field("factor"), context_length()
        # transformers updates this from position_ids, so the arithmetic runs in float32 tensors.
        s = torch.tensor(max(M if seq_len is None else seq_len, M), device=device)
        grown = theta * ((factor * s / M) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (grown ** exponents_P), 1.0

    L0 = field("original_max_position_embeddings", max_position_embeddings)
    if rope_type == "llama3":
        factor = field("factor")
        low, high = field("low_freq_factor"), field("high_freq_factor")
        wavelen_P = 2 * math.pi / inv_freq_P
        # Long wavelengths (slow pairs) are interpolated, short ones kept, the middle blended.
        slowed_P = torch.where(wavelen_P > L0 / low, inv_freq_P / factor, inv_freq_P)
        smooth_P = (L0 / wavelen_P - low) / (high - low)
        blended_P = (1 - smooth_P) * slowed_P / factor + smooth_P * slowed_P
        middle_P = ~(wavelen_P < L0 / high) & ~(wavelen_P > L0 / low)
        return torch.where(middle_P, blended_P, slowed_P), 1.0

    factor = rope_parameters.get("factor")
    if factor is None:
        factor = context_length() / L0
    if rope_type == "longrope":
        attention_factor = rope_parameters.get("attention_factor")
        if attention_factor is None:
            attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(L0))
        name = "long_factor" if seq_len is not None and seq_len > L0 else "short_factor"
        rescale = field(name)
        if len(rescale) != dim // 2:
            _checks.fail("rope_parameters", f"{name} of length dim / 2 = {dim // 2}", f"length {len(rescale)}")
        rescale_P = torch.tensor(rescale, dtype=torch.float32, device=device)
        return 1.0 / (rescale_P * theta**exponents_P), attention_factor

    # yarn
    attention_factor = rope_parameters.get("attention_factor")
    if attention_factor is None:
        mscale, mscale_all_dim = rope_parameters.get("mscale"), rope_parameters.get("mscale_all_dim")
        if mscale and mscale_all_dim:
            attention_factor = float(_yarn_mscale(factor, mscale) / _yarn_mscale(factor, mscale_all_dim))
        else:
            attention_factor = _yarn_mscale(factor)
    beta_fast = rope_parameters.get("beta_fast") or 32
    beta_slow = rope_parameters.get("beta_slow") or 1

    def pair_turning(rotations: float) -> float:
        # The (fractional) pair index that turns `rotations` times within the original context.
        return dim * math.log(L0 / (rotations * 2 * math.pi)) / (2 * math.log(theta))

    low, high = pair_turning(beta_fast), pair_turning(beta_slow)
    if rope_parameters.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # as transformers: no division by zero
    ramp_P = ((torch.arange(dim // 2, dtype=torch.float32, device=device) - low) / (high - low)).clamp(0, 1)
    keep_P = 1 - ramp_P  # 1: keep the frequency (fast pairs), 0: divide it by factor (slow pairs)
    denominator_P = theta**exponents_P  # the unscaled frequency is 1 / denominator_P
    return (1.0 / (factor * denominator_P)) * (1 - keep_P) + (1.0 / denominator_P) * keep_P, attention_factor


def rotate_half(x: Tensor) -> Tensor:
    """``[x1, x2] -> [-x2, x1]`` on the last dim's two halves (the half-split convention)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def _check_rope_inputs(x: Tensor, cos: Tensor, sin: Tensor) -> None:
    _checks.check_floating("x", x)
    _checks.check_even("x.shape[-1]", x.shape[-1])
    half = x.shape[-1] // 2
    for name, t in (("cos", cos), ("sin", sin)):
        _checks.check_floating(name, t)
        letters = " ".join([f"N{i}" for i in range(x.dim() - 1)] + ["D/2"])
        _checks.check_broadcastable(name, t, (*x.shape[:-1], half), letters)


def apply_rope_half_split(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel ``i`` with channel ``i + D/2`` (Hugging Face LLaMA, ESM, GPT-NeoX).

    ``x * [cos, cos] + rotate_half(x) * [sin, sin]``, computed in float32 or better and cast back.

    Args:
        x: ``(..., D)`` queries or keys, ``D`` even.
        cos: ``(..., D/2)`` cosines of [`rope_angles()`][attnref.core.rope_angles], broadcastable to
            ``x[..., :D/2]``.
        sin: ``(..., D/2)`` sines.

    Returns:
        ``x``'s shape and dtype.
    """
    _check_rope_inputs(x, cos, sin)
    acc = _compute_dtype(x.dtype)
    x_acc = x.to(acc)
    cos_D = torch.cat((cos, cos), dim=-1).to(acc)
    sin_D = torch.cat((sin, sin), dim=-1).to(acc)
    return (x_acc * cos_D + rotate_half(x_acc) * sin_D).to(x.dtype)


def apply_rope_adjacent(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate channel ``2i`` with channel ``2i + 1`` (Meta's LLaMA, Flux, Happy-LLM, RoFormer).

    Each adjacent pair ``(a, b)`` becomes ``(a cos - b sin, a sin + b cos)``: the complex product
    ``(a + ib) e^{i angle}``. Computed in float32 or better and cast back.

    Args:
        x: ``(..., D)`` queries or keys, ``D`` even.
        cos: ``(..., D/2)`` cosines of [`rope_angles()`][attnref.core.rope_angles], broadcastable to
            ``x[..., ::2]``.
        sin: ``(..., D/2)`` sines.

    Returns:
        ``x``'s shape and dtype.
    """
    _check_rope_inputs(x, cos, sin)
    acc = _compute_dtype(x.dtype)
    a, b = x.to(acc).unflatten(-1, (-1, 2)).unbind(-1)
    cos, sin = cos.to(acc), sin.to(acc)
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2).to(x.dtype)


def _check_rope_rows(w: Tensor, n_heads: int) -> int:
    _checks.check_tensor("w", w)
    _checks.check_positive_int("n_heads", n_heads)
    if w.dim() not in (1, 2):
        _checks.fail("w", "a projection weight (out, in) or bias (out,)", tuple(w.shape))
    _checks.check_divisible("w.shape[0]", w.shape[0], "n_heads", n_heads)
    head_dim = w.shape[0] // n_heads
    _checks.check_even("head dim w.shape[0] // n_heads", head_dim)
    return head_dim


def adjacent_to_half_split(w: Tensor, n_heads: int) -> Tensor:
    """Reorder q/k projection rows from the adjacent-pair to the half-split RoPE convention.

    Within each head, output rows ``0, 2, 4, ...`` move to the first half and ``1, 3, 5, ...`` to
    the second, so a pair that was rotated as channels ``(2i, 2i+1)`` is rotated as
    ``(i, i + D/2)``. This is the permutation Hugging Face's LLaMA weight conversion
    (``src/transformers/models/llama/convert_llama_weights_to_hf.py``, transformers commit 01cc9cd)
    applies to Meta's ``wq``/``wk``; attention scores are unchanged because q and k move together.

    Args:
        w: ``(n_heads * D, in)`` weight or ``(n_heads * D,)`` bias of a q or k projection.
        n_heads: heads of this projection (``num_kv_heads`` for k under GQA).

    Returns:
        Tensor of ``w``'s shape with rows reordered.
    """
    head_dim = _check_rope_rows(w, n_heads)
    rest = w.shape[1:]
    return w.reshape(n_heads, head_dim // 2, 2, *rest).transpose(1, 2).reshape(w.shape)


def half_split_to_adjacent(w: Tensor, n_heads: int) -> Tensor:
    """Inverse of [`adjacent_to_half_split()`][attnref.core.adjacent_to_half_split]: half-split rows back
    to adjacent pairs.

    Args:
        w: ``(n_heads * D, in)`` weight or ``(n_heads * D,)`` bias of a q or k projection.
        n_heads: heads of this projection.

    Returns:
        Tensor of ``w``'s shape with rows reordered.
    """
    head_dim = _check_rope_rows(w, n_heads)
    rest = w.shape[1:]
    return w.reshape(n_heads, 2, head_dim // 2, *rest).transpose(1, 2).reshape(w.shape)


# --------------------------------------------------------------------------------------------
# Grouped-query attention
# --------------------------------------------------------------------------------------------


def repeat_kv(x: Tensor, n_rep: int) -> Tensor:
    """Repeat each key/value head ``n_rep`` times so G kv heads serve ``H = G * n_rep`` query heads.

    Head ``g`` is repeated in place (``[k0, k0, k1, k1]`` for ``n_rep = 2``), matching how
    Hugging Face groups query heads: query head ``h`` reads kv head ``h // n_rep``.

    Args:
        x: ``(B, G, S, D)`` keys or values.
        n_rep: repetitions, ``H // G``.

    Returns:
        ``(B, G * n_rep, S, D)``; ``x`` itself when ``n_rep == 1``.
    """
    _checks.check_shape("x", x, "B G S D")
    _checks.check_positive_int("n_rep", n_rep)
    if n_rep == 1:
        return x
    B, G, S, D = x.shape
    return x[:, :, None].expand(B, G, n_rep, S, D).reshape(B, G * n_rep, S, D)
