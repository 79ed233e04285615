"""attnref as an attention backend of Hugging Face transformers.

transformers computes attention through a registry, ``AttentionInterface``: each attention layer
projects q, k and v, applies RoPE and the cache itself, then hands them to the function registered
under ``config._attn_implementation`` (``"sdpa"``, ``"eager"``, ...). The matching registry of
mask functions, ``AttentionMaskInterface``, builds the mask that function receives.
[`register()`][attnref.integrations.transformers.register] adds attnref to both under the name
``"attnref"``:

```python
from transformers import AutoModelForCausalLM
from attnref.integrations.transformers import register

register()
model = AutoModelForCausalLM.from_config(config, attn_implementation="attnref")
# or, for a model already loaded: model.set_attn_implementation("attnref")
```

Every attention layer of the model then computes its ``softmax(q k^T * scale + mask) v`` with
[`attnref.core`][attnref.core], while the model keeps its own projections, RoPE, cache and
generation code. This works for every model whose attention goes through ``AttentionInterface``
(Llama, Mistral, Qwen2 and most decoder models of transformers 5).

The mask function matters as much as the attention: transformers builds no mask at all for an
implementation that has no mask function, and padding would be dropped without an error. attnref's
[`attnref_mask()`][attnref.integrations.transformers.attnref_mask] is transformers' own boolean
mask, always spelled out, so that causality, padding, sliding windows and cache offsets all
reach attnref in the mask.

Importing this module imports transformers, an optional dependency (``pip install
attnref[transformers]``); ``import attnref`` does not. Checked against transformers 5.25.0
(``src/transformers/modeling_utils.py``, ``src/transformers/masking_utils.py``,
``src/transformers/integrations/sdpa_attention.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor, nn
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, causal_mask_function, sdpa_mask

from attnref import _checks, core

__all__ = ["NAME", "register", "attnref_attention_forward", "attnref_mask"]

NAME = "attnref"
"""The ``attn_implementation`` name that [`register()`][attnref.integrations.transformers.register]
gives attnref in transformers."""

# Keywords some models pass that change the attention itself (Gemma 2's logit soft-capping,
# GPT-OSS's attention sinks, T5's position bias); attnref computes plain softmax attention.
_UNSUPPORTED = ("softcap", "s_aux", "sinks", "position_bias")


def register(implementation: str = "eager") -> None:
    """Register attnref with transformers under the name ``"attnref"``.

    Adds [`attnref_attention_forward()`][attnref.integrations.transformers.attnref_attention_forward]
    to ``AttentionInterface`` and [`attnref_mask()`][attnref.integrations.transformers.attnref_mask]
    to ``AttentionMaskInterface``, for every model in the process. Calling it again replaces the
    earlier registration.

    Args:
        implementation: the kernel of [`attnref.core.attend()`][attnref.core.attend]:
            ``"eager"`` (default) for [`attnref.core.sdpa_reference()`][attnref.core.sdpa_reference],
            the written-out float32 softmax, which also returns the attention weights (as
            transformers' ``"eager"`` does), or ``"sdpa"`` for PyTorch's fused kernel.
    """
    _checks.check_choice("implementation", implementation, core.IMPLEMENTATIONS)
    AttentionInterface.register(NAME, functools.partial(attnref_attention_forward, implementation=implementation))
    AttentionMaskInterface.register(NAME, attnref_mask)


def attnref_mask(
    batch_size: int,
    q_length: int,
    kv_length: int,
    q_offset: int = 0,
    kv_offset: int = 0,
    mask_function: Callable = causal_mask_function,
    attention_mask: Tensor | None = None,
    allow_is_bidirectional_skip: bool = False,
    use_vmap: bool = False,
    device: torch.device | str = "cpu",
    **unused: object,
) -> Tensor | None:
    """The mask function registered for ``"attnref"``: transformers' ``sdpa_mask``, never skipped.

    ``sdpa_mask`` returns ``None`` instead of a causal mask where PyTorch's ``is_causal=True`` would
    do, for example in the prefill of a static cache, where ``is_causal`` is right only because
    PyTorch aligns it top-left. attnref aligns causal masks bottom-right, so it always asks for the
    explicit mask: every query row then says which keys it may attend to, whatever the cache.
    Non-causal (bidirectional) layers without padding may still get ``None``, meaning no mask.

    Args:
        batch_size: B.
        q_length: L, the new tokens.
        kv_length: S, the keys the layer will attend to (cached and new).
        q_offset: position of the first query.
        kv_offset: position of the first key (a sliding-window cache drops old keys).
        mask_function: transformers' mask rule (causal, sliding window, chunked, ...).
        attention_mask: ``(B, S)`` padding mask of the tokens, 1 = real token.
        allow_is_bidirectional_skip: whether a bidirectional mask without padding may be ``None``.
        use_vmap: build the mask with ``torch.vmap`` (for custom ``mask_function``s).
        device: where to build the mask.
        **unused: the other keywords transformers passes to every mask function (``dtype``,
            ``config``, ``allow_is_causal_skip``, ``local_size``), not needed for a boolean mask.

    Returns:
        ``(B, 1, L, S)`` boolean, True = may attend, or ``None`` (no mask, only for
        bidirectional layers).
    """
    return sdpa_mask(
        batch_size=batch_size,
        q_length=q_length,
        kv_length=kv_length,
        q_offset=q_offset,
        kv_offset=kv_offset,
        mask_function=mask_function,
        attention_mask=attention_mask,
        allow_is_causal_skip=False,
        allow_is_bidirectional_skip=allow_is_bidirectional_skip,
        use_vmap=use_vmap,
        device=device,
    )


def attnref_attention_forward(
    module: nn.Module,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    *,
    implementation: str = "eager",
    **unused: object,
) -> tuple[Tensor, Tensor | None]:
    """transformers' attention function signature, computed with [`attnref.core`][attnref.core].

    What a transformers attention layer calls after its projections, RoPE and cache update. Key and
    value heads are repeated for grouped-query attention
    ([`attnref.core.repeat_kv()`][attnref.core.repeat_kv]); an additive float mask is converted with
    [`attnref.core.additive_to_bool()`][attnref.core.additive_to_bool]; a fully masked query row
    (a padding token) gives zeros.

    Without a mask, a causal layer (``module.is_causal``, or ``is_causal``) is causal when
    ``L == S`` and sees every key when ``L == 1``; other shapes need a mask, since transformers
    means top-left alignment there (a static cache's empty slots) and attnref would not guess.
    [`attnref_mask()`][attnref.integrations.transformers.attnref_mask] always builds one.

    Args:
        module: the attention layer (read: ``is_causal``).
        query: ``(B, H, L, D)``.
        key: ``(B, G, S, D)``, G dividing H.
        value: ``(B, G, S, Dv)``.
        attention_mask: boolean (True = may attend) or additive float mask broadcastable to
            ``(B, H, L, S)``, or ``None``.
        dropout: dropout on the attention weights (transformers passes 0 in eval mode).
        scaling: score multiplier, default ``1 / sqrt(D)``.
        is_causal: overrides ``module.is_causal`` when given.
        implementation: ``"eager"`` or ``"sdpa"``, set by
            [`register()`][attnref.integrations.transformers.register].
        **unused: the keywords transformers passes on to every attention function
            (``position_ids``, ``sliding_window``, ``cu_seq_lens_q``, ...); the mask already holds
            what they mean for attention. Keywords that would change the attention itself
            (``softcap``, ``s_aux``, ``sinks``, ``position_bias``) raise ``ValueError``.

    Returns:
        ``((B, L, H, Dv), weights)``: the output in transformers' layout, and the ``(B, H, L, S)``
        attention weights for ``"eager"`` (``None`` for ``"sdpa"``).
    """
    for name in _UNSUPPORTED:
        if unused.get(name) is not None:
            _checks.fail(name, "None (attnref computes plain softmax attention)", type(unused[name]).__name__)
    sizes = _checks.check_shape("query", query, "B H L D")
    sizes = _checks.check_shape("key", key, "B G S D", B=sizes["B"], D=sizes["D"]) | sizes
    _checks.check_shape("value", value, "B G S Dv", B=sizes["B"], G=sizes["G"], S=sizes["S"])
    H, G, L, S = sizes["H"], sizes["G"], sizes["L"], sizes["S"]
    _checks.check_divisible("query.shape[1] (query heads)", H, "key.shape[1] (key/value heads)", G)
    key_BHSD = core.repeat_kv(key, H // G)
    value_BHSD = core.repeat_kv(value, H // G)

    causal = getattr(module, "is_causal", True) if is_causal is None else is_causal
    if attention_mask is not None:
        if attention_mask.is_floating_point():
            attention_mask = core.additive_to_bool(attention_mask)
        causal = False  # transformers' masks hold the causal rule
    elif causal and L > 1 and L != S:
        _checks.fail("attention_mask", f"a mask for {L} queries over {S} keys in a causal layer "
                     "(attnref_mask builds one)", None)
    else:
        causal = causal and L > 1  # one query sees every key

    if implementation == "eager":
        out_BHLD, weights_BHLS = core.sdpa_reference(
            query, key_BHSD, value_BHSD, attention_mask,
            is_causal=causal, scale=scaling, dropout_p=dropout, return_weights=True,
        )
    else:
        out_BHLD = core.attend(
            query, key_BHSD, value_BHSD, attention_mask,
            is_causal=causal, scale=scaling, dropout_p=dropout, implementation=implementation,
        )
        weights_BHLS = None
    return out_BHLD.transpose(1, 2).contiguous(), weights_BHLS
