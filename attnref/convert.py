"""Weight mappings between the implementations, so that one set of weights runs in all of them.

Every mapping goes through one neutral form, a dict with separate projections:

    {"q.weight": (H*D, E_in), "k.weight": (G*D, E_in), "v.weight": (G*D, E_in),
     "o.weight": (E_out, H*D), and optionally "q.bias", "k.bias", "v.bias", "o.bias"}

``from_<layout>(state_dict)`` reads a module's ``state_dict`` into that form and
``to_<layout>(separate)`` writes it back out as a ``state_dict`` that the module loads with
``load_state_dict(..., strict=True)``. A target that has no place for a bias present in the source
raises ``ValueError`` instead of dropping it. Only a target that cannot do without a bias the source
lacks (the ``proj`` of ``fused_qkv``) gets zeros; ``llama`` takes each projection's bias or its
absence as it is.

Layouts:

- ``fused_qkv``:
  [`attnref.fused_qkv.MultiHeadAttentionCombinedQKV`][attnref.fused_qkv.MultiHeadAttentionCombinedQKV],
  one ``qkv`` Linear whose rows are ``[q; k; v]``, then ``proj``.
- ``mha``: ``torch.nn.MultiheadAttention`` (``in_proj_weight`` rows ``[q; k; v]``, ``out_proj``),
  as inside [`attnref.fused_qkv.MHAPyTorchClass`][attnref.fused_qkv.MHAPyTorchClass] (prefix
  ``multihead_attn.``).
- ``happy_llm``: [`attnref.happy_llm.MultiHeadAttention`][attnref.happy_llm.MultiHeadAttention] (``wq``,
  ``wk``, ``wv``, ``wo``).
- ``llama``: [`attnref.llama.LlamaAttention`][attnref.llama.LlamaAttention] and transformers'
  ``LlamaAttention`` (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``), with the biases a checkpoint
  has: all four, none, or q/k/v only (Qwen2's ``Qwen2Attention``).
- ``esm``: [`attnref.esm.MultiHeadAttention`][attnref.esm.MultiHeadAttention], ``layernorm_qkv`` =
  LayerNorm then one Linear
  with rows ``[q; k; v]``. Its LayerNorms (``layernorm_qkv.0``, ``q_ln``, ``k_ln``) have no
  counterpart elsewhere: [`from_esm()`][attnref.convert.from_esm] ignores them and
  [`to_esm()`][attnref.convert.to_esm] sets them to identity
  parameters (weight 1, bias 0), which still normalise.

RoPE pairing: [`adjacent_to_half_split()`][attnref.convert.adjacent_to_half_split] turns q/k weights
trained with Meta's adjacent-pair
rotary (``wq``/``wk`` of the original LLaMA checkpoints) into weights for the half-split
(``rotate_half``) implementation of Hugging Face, for MHA and GQA;
[`half_split_to_adjacent()`][attnref.convert.half_split_to_adjacent]
inverts it. Both wrap [`attnref.core.adjacent_to_half_split()`][attnref.core.adjacent_to_half_split].
"""

from __future__ import annotations

import torch
from torch import Tensor

from attnref import _checks, core

__all__ = [
    "from_fused_qkv",
    "to_fused_qkv",
    "from_mha",
    "to_mha",
    "from_happy_llm",
    "to_happy_llm",
    "from_llama",
    "to_llama",
    "from_esm",
    "to_esm",
    "adjacent_to_half_split",
    "half_split_to_adjacent",
]

Separate = dict[str, Tensor]
_PROJECTIONS = ("q", "k", "v", "o")


def _get(state_dict: dict[str, Tensor], key: str) -> Tensor:
    if not isinstance(state_dict, dict):
        _checks.fail("state_dict", "a dict of tensors (module.state_dict())", type(state_dict).__name__, TypeError)
    if key not in state_dict:
        _checks.fail("state_dict", f"a key {key!r}", f"keys {sorted(state_dict)}")
    return state_dict[key]


def _check_separate(separate: Separate) -> None:
    for name in _PROJECTIONS:
        _get(separate, f"{name}.weight")
    unknown = set(separate) - {f"{p}.{t}" for p in _PROJECTIONS for t in ("weight", "bias")}
    if unknown:
        _checks.fail("separate", "only q/k/v/o weights and biases", sorted(unknown))


def _split_rows(fused: Tensor, name: str) -> tuple[Tensor, Tensor, Tensor]:
    _checks.check_divisible(f"{name}.shape[0]", fused.shape[0], "3", 3)
    return tuple(t.clone() for t in fused.chunk(3, dim=0))


def _renamed(source: dict[str, Tensor], names: dict[str, str]) -> dict[str, Tensor]:
    """Copy tensors from ``source`` under new keys; optional (bias) keys may be absent."""
    out = {}
    for ours, theirs in names.items():
        if theirs in source:
            out[ours] = source[theirs].clone()
        elif ours.endswith(".weight"):
            _get(source, theirs)  # raises with the missing key
    return out


def _refuse_biases(separate: Separate, layout: str, allowed: tuple[str, ...]) -> None:
    for name in _PROJECTIONS:
        if f"{name}.bias" in separate and name not in allowed:
            _checks.fail(
                "separate",
                f"no {name}.bias ({layout} has no place for it; remove it only if it is zero)",
                f"{name}.bias of shape {tuple(separate[f'{name}.bias'].shape)}",
            )


def _all_or_no_bias(separate: Separate, names: tuple[str, ...], layout: str) -> bool:
    present = [f"{n}.bias" in separate for n in names]
    if any(present) and not all(present):
        _checks.fail("separate", f"biases on all or none of {names} ({layout} has one switch)", sorted(separate))
    return all(present)


def _bias_or_zeros(separate: Separate, name: str) -> Tensor:
    weight = separate[f"{name}.weight"]
    return separate.get(f"{name}.bias", torch.zeros(weight.shape[0], dtype=weight.dtype, device=weight.device)).clone()


# ---------------------------------------------------------------------------------------------


def from_fused_qkv(state_dict: dict[str, Tensor]) -> Separate:
    """Read [`MultiHeadAttentionCombinedQKV`][attnref.fused_qkv.MultiHeadAttentionCombinedQKV] weights.

    Args:
        state_dict: with ``qkv.weight`` ``(3*E, E_in)``, optional ``qkv.bias`` ``(3*E,)``,
            ``proj.weight`` ``(E, E)`` and ``proj.bias`` ``(E,)``.

    Returns:
        The separate form; rows ``0:E`` of ``qkv`` are q, ``E:2E`` k, ``2E:3E`` v.
    """
    separate = dict(zip(("q.weight", "k.weight", "v.weight"), _split_rows(_get(state_dict, "qkv.weight"), "qkv.weight")))
    if "qkv.bias" in state_dict:
        separate.update(zip(("q.bias", "k.bias", "v.bias"), _split_rows(state_dict["qkv.bias"], "qkv.bias")))
    separate.update(_renamed(state_dict, {"o.weight": "proj.weight", "o.bias": "proj.bias"}))
    return separate


def to_fused_qkv(separate: Separate) -> dict[str, Tensor]:
    """Write weights for [`MultiHeadAttentionCombinedQKV`][attnref.fused_qkv.MultiHeadAttentionCombinedQKV].

    Its ``proj`` always has a bias (zeros when the source has none) and its causal ``mask``
    buffer is not a weight: load with ``strict=False`` or add ``module.mask`` yourself.

    Args:
        separate: the separate form, ``G == H`` (no GQA in this layout).

    Returns:
        ``{"qkv.weight", ["qkv.bias"], "proj.weight", "proj.bias"}``.
    """
    _check_separate(separate)
    out = {"qkv.weight": torch.cat([separate[f"{n}.weight"] for n in "qkv"], dim=0)}
    if _all_or_no_bias(separate, ("q", "k", "v"), "fused_qkv"):
        out["qkv.bias"] = torch.cat([separate[f"{n}.bias"] for n in "qkv"], dim=0)
    out["proj.weight"] = separate["o.weight"].clone()
    out["proj.bias"] = _bias_or_zeros(separate, "o")
    return out


def from_mha(state_dict: dict[str, Tensor], prefix: str = "") -> Separate:
    """Read ``torch.nn.MultiheadAttention`` weights (packed ``in_proj_weight``).

    Args:
        state_dict: with ``{prefix}in_proj_weight`` ``(3*E, E)``, optional ``in_proj_bias``,
            ``out_proj.weight`` and optional ``out_proj.bias``. ``add_bias_kv`` and separate
            k/v dims (``kdim``/``vdim``) are not supported.
        prefix: ``"multihead_attn."`` for [`MHAPyTorchClass`][attnref.fused_qkv.MHAPyTorchClass].

    Returns:
        The separate form.
    """
    if f"{prefix}bias_k" in state_dict:
        _checks.fail("state_dict", "no bias_k/bias_v (add_bias_kv=False)", f"key {prefix}bias_k")
    w = _get(state_dict, f"{prefix}in_proj_weight")
    separate = dict(zip(("q.weight", "k.weight", "v.weight"), _split_rows(w, "in_proj_weight")))
    if f"{prefix}in_proj_bias" in state_dict:
        separate.update(zip(("q.bias", "k.bias", "v.bias"), _split_rows(state_dict[f"{prefix}in_proj_bias"], "in_proj_bias")))
    separate.update(_renamed(state_dict, {"o.weight": f"{prefix}out_proj.weight", "o.bias": f"{prefix}out_proj.bias"}))
    return separate


def to_mha(separate: Separate, prefix: str = "") -> dict[str, Tensor]:
    """Write ``torch.nn.MultiheadAttention`` weights.

    ``nn.MultiheadAttention(bias=True)`` holds biases on the input and output projections
    together: give all four biases or none. Inside ``MHAPyTorchClass`` these are only the inner
    module's weights; its ``proj`` and its ``mask`` buffer are not among them, so start from
    ``module.state_dict()`` and update it.

    Args:
        separate: the separate form, ``G == H`` and square projections.
        prefix: key prefix, ``"multihead_attn."`` inside ``MHAPyTorchClass``.

    Returns:
        ``{prefix}in_proj_weight``, ``out_proj.weight`` and, with biases, ``in_proj_bias`` and
        ``out_proj.bias``.
    """
    _check_separate(separate)
    out = {f"{prefix}in_proj_weight": torch.cat([separate[f"{n}.weight"] for n in "qkv"], dim=0)}
    if _all_or_no_bias(separate, _PROJECTIONS, "nn.MultiheadAttention"):
        out[f"{prefix}in_proj_bias"] = torch.cat([separate[f"{n}.bias"] for n in "qkv"], dim=0)
        out[f"{prefix}out_proj.bias"] = separate["o.bias"].clone()
    out[f"{prefix}out_proj.weight"] = separate["o.weight"].clone()
    return out


_HAPPY = {"q.weight": "wq.weight", "k.weight": "wk.weight", "v.weight": "wv.weight", "o.weight": "wo.weight"}


def from_happy_llm(state_dict: dict[str, Tensor]) -> Separate:
    """Read [`MultiHeadAttention`][attnref.happy_llm.MultiHeadAttention] weights (``wq``, ``wk``, ``wv``,
    ``wo``).

    Args:
        state_dict: the module's ``state_dict``; its causal ``mask`` buffer is ignored.

    Returns:
        The separate form (no biases: the tutorial's projections have none).
    """
    return _renamed(state_dict, _HAPPY)


def to_happy_llm(separate: Separate) -> dict[str, Tensor]:
    """Write [`MultiHeadAttention`][attnref.happy_llm.MultiHeadAttention] weights.

    Args:
        separate: the separate form without biases (raises ``ValueError`` for any bias).

    Returns:
        ``{"wq.weight", "wk.weight", "wv.weight", "wo.weight"}``; a causal module also holds a
        ``mask`` buffer, so load with ``strict=False`` there.
    """
    _check_separate(separate)
    _refuse_biases(separate, "happy_llm.MultiHeadAttention", allowed=())
    return _renamed(separate, {theirs: ours for ours, theirs in _HAPPY.items()})


_LLAMA = {f"{p}.{t}": f"{p}_proj.{t}" for p in _PROJECTIONS for t in ("weight", "bias")}


def from_llama(state_dict: dict[str, Tensor]) -> Separate:
    """Read LLaMA weights (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``), attnref's or transformers'.

    Args:
        state_dict: with ``q_proj.weight`` ``(H*D, E)``, ``k_proj.weight``/``v_proj.weight``
            ``(G*D, E)``, ``o_proj.weight`` ``(E, H*D)`` and the biases the checkpoint has (all four,
            none, or q/k/v as in Qwen2).

    Returns:
        The separate form, with exactly those biases.
    """
    return _renamed(state_dict, _LLAMA)


def to_llama(separate: Separate) -> dict[str, Tensor]:
    """Write LLaMA weights with exactly the biases that ``separate`` holds.

    Checkpoints differ: transformers' Llama has biases on all four projections or none
    (``attention_bias``), Qwen2 on ``q_proj``, ``k_proj`` and ``v_proj`` only. Nothing is added or
    dropped, so the result loads strictly into the module with that layout:
    ``LlamaAttention(..., bias=("q_proj", "k_proj", "v_proj"))`` for Qwen2
    (see [`attnref.llama.LlamaAttention`][attnref.llama.LlamaAttention]).

    Args:
        separate: the separate form (GQA allowed), with any subset of the four biases.

    Returns:
        ``{q,k,v,o}_proj.weight`` and ``{name}_proj.bias`` for each bias in ``separate``.
    """
    _check_separate(separate)
    return _renamed(separate, {theirs: ours for ours, theirs in _LLAMA.items()})


def from_esm(state_dict: dict[str, Tensor]) -> Separate:
    """Read the projections of [`MultiHeadAttention`][attnref.esm.MultiHeadAttention]
    (``layernorm_qkv.1``, ``out_proj``).

    The LayerNorm before the projection and ``q_ln``/``k_ln`` are not projections and are not
    read. ESM always applies RoPE, so another layout holding these weights computes what ESM
    computes only on layer-normed inputs, with ``qk_layernorm=False``, and with ESM's rotation
    taken out (at position 0 it is the identity; ``tests/test_convert.py`` swaps
    ``module.rotary`` for a no-op to compare whole sequences).

    Args:
        state_dict: the ESM module's ``state_dict``.

    Returns:
        The separate form.
    """
    separate = dict(zip(("q.weight", "k.weight", "v.weight"), _split_rows(_get(state_dict, "layernorm_qkv.1.weight"), "layernorm_qkv.1.weight")))
    if "layernorm_qkv.1.bias" in state_dict:
        separate.update(zip(("q.bias", "k.bias", "v.bias"), _split_rows(state_dict["layernorm_qkv.1.bias"], "layernorm_qkv.1.bias")))
    separate.update(_renamed(state_dict, {"o.weight": "out_proj.weight", "o.bias": "out_proj.bias"}))
    return separate


def to_esm(separate: Separate, qk_layernorm: bool = True) -> dict[str, Tensor]:
    """Write [`MultiHeadAttention`][attnref.esm.MultiHeadAttention] weights; LayerNorms get identity
    parameters.

    ``bias=True`` in ESM means biases on both Linears and on ``q_ln``/``k_ln``: give all four
    projection biases or none.

    Args:
        separate: the separate form, ``G == H`` and square projections.
        qk_layernorm: whether the target module has ``q_ln``/``k_ln`` weights.

    Returns:
        A full ``state_dict`` for ``MultiHeadAttention(d_model, n_heads, bias, qk_layernorm)``.
    """
    _check_separate(separate)
    bias = _all_or_no_bias(separate, _PROJECTIONS, "esm.MultiHeadAttention")
    weight = separate["q.weight"]
    d_model = weight.shape[1]
    ones = torch.ones(d_model, dtype=weight.dtype, device=weight.device)
    out = {
        "layernorm_qkv.0.weight": ones.clone(),
        "layernorm_qkv.0.bias": torch.zeros_like(ones),
        "layernorm_qkv.1.weight": torch.cat([separate[f"{n}.weight"] for n in "qkv"], dim=0),
        "out_proj.weight": separate["o.weight"].clone(),
    }
    if bias:
        out["layernorm_qkv.1.bias"] = torch.cat([separate[f"{n}.bias"] for n in "qkv"], dim=0)
        out["out_proj.bias"] = separate["o.bias"].clone()
    if qk_layernorm:
        for name in ("q_ln", "k_ln"):
            out[f"{name}.weight"] = ones.clone()
            if bias:
                out[f"{name}.bias"] = torch.zeros_like(ones)
    return out


# ---------------------------------------------------------------------------------------------


def _permute_qk(separate: Separate, n_heads: int, n_kv_heads: int | None, permute) -> Separate:
    # Only q and k rotate: v and o may be absent.
    _get(separate, "q.weight"), _get(separate, "k.weight")
    n_kv_heads = n_heads if n_kv_heads is None else n_kv_heads
    out = {key: value.clone() for key, value in separate.items()}
    for name, heads in (("q", n_heads), ("k", n_kv_heads)):
        for kind in ("weight", "bias"):
            key = f"{name}.{kind}"
            if key in out:
                out[key] = permute(out[key], heads)
    return out


def adjacent_to_half_split(separate: Separate, n_heads: int, n_kv_heads: int | None = None) -> Separate:
    """Make adjacent-pair RoPE weights (Meta, Flux) work in a half-split RoPE module (HF, ESM).

    Reorders the rows of q and k within each head (see
    [`attnref.core.adjacent_to_half_split()`][attnref.core.adjacent_to_half_split]); v and o are untouched.

    Args:
        separate: the separate form of a model trained with adjacent-pair RoPE.
        n_heads: query heads H.
        n_kv_heads: key/value heads G (GQA); defaults to ``n_heads``.

    Returns:
        A new separate form for the half-split convention.
    """
    return _permute_qk(separate, n_heads, n_kv_heads, core.adjacent_to_half_split)


def half_split_to_adjacent(separate: Separate, n_heads: int, n_kv_heads: int | None = None) -> Separate:
    """Inverse of [`adjacent_to_half_split()`][attnref.convert.adjacent_to_half_split].

    Args:
        separate: the separate form of a model using half-split RoPE.
        n_heads: query heads H.
        n_kv_heads: key/value heads G; defaults to ``n_heads``.

    Returns:
        A new separate form for the adjacent-pair convention.
    """
    return _permute_qk(separate, n_heads, n_kv_heads, core.half_split_to_adjacent)
