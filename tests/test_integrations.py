"""attnref.integrations.transformers: attnref as the attention of whole transformers models.

Tiny random Llama, Mistral (sliding window shorter than the sequence) and Qwen2 (q/k/v biases)
models, built from configs with no download, run with attn_implementation="attnref" and are
compared with transformers' own "sdpa" and "eager" (checked against transformers 5.25.0).
"""

import subprocess
import sys

import pytest
import torch
from torch import nn
from transformers import AttentionInterface, AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

from attnref import core
from attnref.integrations import transformers as integration
from attnref.llama import LlamaAttention

ATOL = 1e-5  # float32 logits against transformers' sdpa and eager: only summation order differs
SIZES = dict(vocab_size=101, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, max_position_embeddings=128, pad_token_id=0)
CONFIGS = {
    "llama": lambda: LlamaConfig(**SIZES, rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0,
                                                          "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                          "original_max_position_embeddings": 8}),
    "mistral": lambda: MistralConfig(**SIZES, sliding_window=5),
    "qwen2": lambda: Qwen2Config(**SIZES),
}
B, L = 3, 12
LEFT_PADDING = (0, 3, 7)


@pytest.fixture(scope="module", params=list(CONFIGS))
def model(request):
    integration.register()
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(CONFIGS[request.param](), attn_implementation="attnref").eval()


def inputs(padded: bool):
    torch.manual_seed(1)
    input_ids = torch.randint(1, 101, (B, L))
    attention_mask = torch.ones(B, L, dtype=torch.long)
    if padded:
        for b, n in enumerate(LEFT_PADDING):
            attention_mask[b, :n] = 0
            input_ids[b, :n] = 0
    return input_ids, attention_mask


def logits(model, implementation, input_ids, attention_mask):
    model.set_attn_implementation(implementation)
    with torch.no_grad():
        return model(input_ids=input_ids, attention_mask=attention_mask).logits


def test_import_attnref_does_not_import_transformers():
    code = ("import sys, attnref, attnref.core, attnref.llama, attnref.convert, attnref.esm, attnref.flux, "
            "attnref.happy_llm, attnref.fused_qkv, attnref.integrations; "
            "assert 'transformers' not in sys.modules, sorted(m for m in sys.modules if 'transformers' in m)")
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "left-padding"])
@pytest.mark.parametrize("kernel", core.IMPLEMENTATIONS)
def test_logits_equal_sdpa_and_eager(model, kernel, padded):
    input_ids, attention_mask = inputs(padded)
    integration.register(kernel)
    ours = logits(model, "attnref", input_ids, attention_mask)
    # Padding positions have no defined output (eager averages, sdpa and attnref give zeros): compare real tokens.
    real = attention_mask.bool()
    for reference in ("sdpa", "eager"):
        theirs = logits(model, reference, input_ids, attention_mask)
        assert (ours - theirs)[real].abs().max() < ATOL, reference
    model.set_attn_implementation("attnref")


def test_every_layer_runs_through_attnref(model, monkeypatch):
    calls = []
    forward = integration.attnref_attention_forward
    monkeypatch.setattr(integration, "attnref_attention_forward",
                        lambda *args, **kwargs: calls.append(args[0]) or forward(*args, **kwargs))
    integration.register()
    logits(model, "attnref", *inputs(padded=True))
    assert calls == [layer.self_attn for layer in model.model.layers]
    monkeypatch.undo()
    integration.register()


def test_without_the_mask_function_padding_would_be_dropped(model):
    """Why register() adds a mask function: an attention function alone gets no mask from transformers,
    and runs as if there were no padding (and, in Mistral, no sliding window)."""
    input_ids, attention_mask = inputs(padded=True)
    AttentionInterface.register("attnref-without-mask", integration.attnref_attention_forward)
    dropped = logits(model, "attnref-without-mask", input_ids, attention_mask)
    expected = logits(model, "sdpa", input_ids, attention_mask)
    model.set_attn_implementation("attnref")
    assert (dropped - expected)[attention_mask.bool()].abs().max() > 1e-2
    if getattr(model.config, "sliding_window", None) is None:  # row 0 has no padding
        assert torch.allclose(dropped[0], expected[0], atol=ATOL)
    model.set_attn_implementation("attnref")


@pytest.mark.parametrize("cache,padded", [("dynamic", True), ("static", True), ("static", False)],
                         ids=["dynamic-left-padding", "static-left-padding", "static-no-padding"])
def test_greedy_generation_is_identical(model, cache, padded):
    input_ids, attention_mask = inputs(padded)
    tokens = {}
    for implementation in ("attnref", "sdpa"):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            tokens[implementation] = model.generate(
                input_ids=input_ids, attention_mask=attention_mask, do_sample=False,
                max_new_tokens=20, min_new_tokens=20, cache_implementation=cache,
            )[:, L:]
    model.set_attn_implementation("attnref")
    assert tokens["attnref"].shape == (B, 20)
    assert torch.equal(tokens["attnref"], tokens["sdpa"])


def test_gradients_equal_sdpa(model):
    input_ids, attention_mask = inputs(padded=True)
    grads = {}
    for implementation in ("attnref", "sdpa"):
        model.zero_grad()
        model.set_attn_implementation(implementation)
        loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=input_ids).loss
        loss.backward()
        grads[implementation] = {n: p.grad.clone() for n, p in model.named_parameters() if "self_attn" in n}
    model.zero_grad()
    model.set_attn_implementation("attnref")
    for name, grad in grads["sdpa"].items():
        assert torch.allclose(grads["attnref"][name], grad, atol=ATOL), name


# -- attnref.llama.LlamaAttention inside the model -----------------------------------------------


class SwappedIn(LlamaAttention):
    """attnref's LlamaAttention behind the call of a transformers decoder layer (no cache)."""

    def forward(self, hidden_states, position_embeddings, attention_mask=None, **unused):
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = core.additive_to_bool(attention_mask)
        out = super().forward(hidden_states, attention_mask=attention_mask, position_embeddings=position_embeddings)
        return out, None


@pytest.mark.parametrize("padded", [False, True], ids=["no-padding", "left-padding"])
def test_attnref_llama_attention_replaces_every_layer(model, padded):
    """Qwen2's bias layout and Mistral's sliding window, on every layer of a whole model."""
    input_ids, attention_mask = inputs(padded)
    expected = logits(model, "sdpa", input_ids, attention_mask)
    config = model.config
    bias = [name for name in ("q_proj", "k_proj", "v_proj", "o_proj")
            if getattr(model.model.layers[0].self_attn, name).bias is not None]
    originals = [layer.self_attn for layer in model.model.layers]
    for layer in model.model.layers:
        ours = SwappedIn(config.hidden_size, config.num_attention_heads, config.num_key_value_heads,
                         bias=bias, sliding_window=getattr(config, "sliding_window", None))
        ours.load_state_dict(layer.self_attn.state_dict(), strict=True)
        layer.self_attn = ours.eval()
    try:
        swapped = logits(model, "sdpa", input_ids, attention_mask)
    finally:
        for layer, original in zip(model.model.layers, originals):
            layer.self_attn = original
        model.set_attn_implementation("attnref")
    real = attention_mask.bool()
    assert (swapped - expected)[real].abs().max() < ATOL


# -- the attention function on its own -------------------------------------------------------------


class _Layer(nn.Module):
    is_causal = True


def test_mask_function_always_spells_the_causal_mask_out():
    """The prefill of a static cache: 3 queries, 8 key slots of which 5 are still empty. transformers'
    sdpa mask leaves it to PyTorch's top-left is_causal (None); attnref's mask says it."""
    from transformers.masking_utils import sdpa_mask

    assert sdpa_mask(batch_size=1, q_length=3, kv_length=8) is None
    mask = integration.attnref_mask(batch_size=1, q_length=3, kv_length=8, dtype=torch.float32, config=None)
    assert mask.shape == (1, 1, 3, 8) and mask.dtype == torch.bool
    assert mask[0, 0].int().tolist() == [[1, 0, 0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0, 0, 0]]


def test_attention_function_masks_weights_and_errors():
    torch.manual_seed(2)
    q, k, v = torch.randn(2, 4, 5, 8), torch.randn(2, 2, 5, 8), torch.randn(2, 2, 5, 8)
    allowed = core.causal_mask(5)[None, None] & core.padding_mask(torch.tensor([5, 3]), 5)
    out, weights = integration.attnref_attention_forward(_Layer(), q, k, v, allowed)
    assert out.shape == (2, 5, 4, 8) and weights.shape == (2, 4, 5, 5)
    expected = core.sdpa_reference(q, core.repeat_kv(k, 2), core.repeat_kv(v, 2), allowed)
    assert torch.allclose(out, expected.transpose(1, 2))
    # transformers' additive form (finfo.min where blocked) gives the same.
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    assert torch.equal(integration.attnref_attention_forward(_Layer(), q, k, v, additive)[0], out)
    # No mask: causal when L == S, as transformers' sdpa is.
    no_mask, _ = integration.attnref_attention_forward(_Layer(), q, k, v, None)
    assert torch.allclose(no_mask, integration.attnref_attention_forward(_Layer(), q, k, v, allowed[:1, :, :, :])[0])
    sdpa_out, sdpa_weights = integration.attnref_attention_forward(_Layer(), q, k, v, allowed, implementation="sdpa")
    assert sdpa_weights is None and torch.allclose(sdpa_out, out, atol=1e-6)
    with pytest.raises(ValueError, match=r"attention_mask: expected a mask for 2 queries over 5 keys in a causal layer"):
        integration.attnref_attention_forward(_Layer(), q[:, :, :2], k, v, None)
    with pytest.raises(ValueError, match=r"softcap: expected None \(attnref computes plain softmax attention\), got float"):
        integration.attnref_attention_forward(_Layer(), q, k, v, allowed, softcap=30.0)
    with pytest.raises(ValueError, match=r"key: expected shape \(B, G, S, D\) with B=2, D=8, got \(2, 2, 5, 6\)"):
        integration.attnref_attention_forward(_Layer(), q, k[..., :6], v, allowed)
    with pytest.raises(ValueError, match=r"query.shape\[1\] \(query heads\): expected a multiple of key.shape\[1\] \(key/value heads\)=3, got 4"):
        integration.attnref_attention_forward(_Layer(), q, torch.randn(2, 3, 5, 8), torch.randn(2, 3, 5, 8), allowed)
    with pytest.raises(ValueError, match=r"implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        integration.register("flash")
