"""attnref.convert: one set of weights, every implementation, the same function.

Fused QKV == Happy-LLM == nn.MultiheadAttention == ESM (layer norms and RoPE off) == LLMs-from-scratch's
chapter 3 class; Meta-style (adjacent-pair) RoPE == Hugging Face style after the row permutation.
"""

import pytest
import torch
from torch import nn
from transformers import Qwen2Config
from transformers.models.qwen2 import modeling_qwen2

from attnref import convert, core
from attnref.esm import MultiHeadAttention as EsmMHA
from attnref.fused_qkv import MHAPyTorchClass, MultiHeadAttentionCombinedQKV
from attnref.happy_llm import ModelArgs
from attnref.happy_llm import MultiHeadAttention as HappyMHA
from attnref.llama import LlamaAttention

E, H, L = 16, 4, 6


@pytest.fixture
def fused():
    torch.manual_seed(0)
    module = MultiHeadAttentionCombinedQKV(E, E, H, context_length=8).double().eval()
    with torch.no_grad():
        module.proj.bias.zero_()  # Happy-LLM has no output bias; the others agree with a zero one
    return module


def separate_without_o_bias(module):
    separate = convert.from_fused_qkv(module.state_dict())
    separate.pop("o.bias")
    return separate


def test_fused_equals_happy_llm_equals_nn_multihead_attention(fused):
    x = torch.randn(2, L, E, dtype=torch.float64)
    separate = separate_without_o_bias(fused)

    happy = HappyMHA(ModelArgs(dim=E, n_heads=H, max_seq_len=8), is_causal=True).double().eval()
    happy.load_state_dict(convert.to_happy_llm(separate), strict=False)  # its causal mask buffer stays
    assert set(happy.state_dict()) - set(convert.to_happy_llm(separate)) == {"mask"}

    pytorch = MHAPyTorchClass(E, E, H, context_length=8, need_weights=False).double().eval()
    state = pytorch.state_dict()
    state.update(convert.to_mha(separate, prefix="multihead_attn."))
    with torch.no_grad():  # MHAPyTorchClass projects twice: out_proj inside, proj after; make proj the identity
        state["proj.weight"], state["proj.bias"] = torch.eye(E, dtype=torch.float64), torch.zeros(E, dtype=torch.float64)
    pytorch.load_state_dict(state, strict=True)

    expected = fused(x)
    assert torch.allclose(happy(x, x, x), expected, atol=1e-12)
    assert torch.allclose(pytorch(x), expected, atol=1e-12)


def test_esm_with_norms_and_rope_off_equals_the_others(fused):
    x = torch.randn(2, L, E, dtype=torch.float64)
    esm = EsmMHA(E, H, bias=False, qk_layernorm=False).double().eval()
    esm.load_state_dict(convert.to_esm(separate_without_o_bias(fused), qk_layernorm=False), strict=True)
    esm.rotary = _NoRotary()  # ESM always rotates; switch it off to compare the projections alone
    happy = HappyMHA(ModelArgs(dim=E, n_heads=H, max_seq_len=8), is_causal=False).double().eval()
    happy.load_state_dict(convert.to_happy_llm(separate_without_o_bias(fused)), strict=True)
    # ESM layer-norms its input first (identity LayerNorm parameters still normalise).
    normed = nn.functional.layer_norm(x, (E,))
    assert torch.allclose(esm(x), happy(normed, normed, normed), atol=1e-10)


class _NoRotary(nn.Module):
    def forward(self, q, k, seqlen_offset=0):
        return q, k


def test_fused_equals_llms_from_scratch_chapter_3():
    from llms_from_scratch import ch03  # a test dependency (make setup installs it)
    torch.manual_seed(1)
    theirs = ch03.MultiHeadAttention(E, E, context_length=8, dropout=0.0, num_heads=H, qkv_bias=True).eval()
    separate = {
        "q.weight": theirs.W_query.weight, "k.weight": theirs.W_key.weight, "v.weight": theirs.W_value.weight,
        "q.bias": theirs.W_query.bias, "k.bias": theirs.W_key.bias, "v.bias": theirs.W_value.bias,
        "o.weight": theirs.out_proj.weight, "o.bias": theirs.out_proj.bias,
    }
    ours = MultiHeadAttentionCombinedQKV(E, E, H, context_length=8, qkv_bias=True).eval()
    ours.load_state_dict(convert.to_fused_qkv(separate), strict=False)
    x = torch.randn(2, L, E)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)


@pytest.mark.parametrize("n_heads,n_kv_heads", [(4, 4), (4, 2), (4, 1)])
def test_meta_rope_equals_hugging_face_rope_after_permutation(n_heads, n_kv_heads):
    """A model trained with adjacent-pair RoPE (Meta's LLaMA) runs unchanged in the half-split
    LlamaAttention once its q/k rows are permuted, for MHA and GQA."""
    torch.manual_seed(2)
    head_dim = 8
    hf = LlamaAttention(E, n_heads, n_kv_heads, head_dim=head_dim).double().eval()
    meta_weights = convert.half_split_to_adjacent(convert.from_llama(hf.state_dict()), n_heads, n_kv_heads)
    x = torch.randn(2, L, E, dtype=torch.float64)

    # Meta's computation, spelled out with core: adjacent-pair rotation of q and k.
    q = (x @ meta_weights["q.weight"].T).unflatten(-1, (n_heads, head_dim)).transpose(1, 2)
    k = (x @ meta_weights["k.weight"].T).unflatten(-1, (n_kv_heads, head_dim)).transpose(1, 2)
    v = (x @ meta_weights["v.weight"].T).unflatten(-1, (n_kv_heads, head_dim)).transpose(1, 2)
    angles = core.rope_angles(torch.arange(L), head_dim)
    q, k = (core.apply_rope_adjacent(t, angles.cos(), angles.sin()) for t in (q, k))
    group = n_heads // n_kv_heads
    out = core.sdpa_reference(q, core.repeat_kv(k, group), core.repeat_kv(v, group), is_causal=True)
    meta_out = out.transpose(1, 2).flatten(2) @ meta_weights["o.weight"].T

    converted = LlamaAttention(E, n_heads, n_kv_heads, head_dim=head_dim).double().eval()
    converted.load_state_dict(convert.to_llama(convert.adjacent_to_half_split(meta_weights, n_heads, n_kv_heads)), strict=True)
    assert torch.allclose(converted(x), meta_out, atol=1e-10)
    # Without the permutation the half-split module computes something else.
    wrong = LlamaAttention(E, n_heads, n_kv_heads, head_dim=head_dim).double().eval()
    wrong.load_state_dict(convert.to_llama(meta_weights), strict=True)
    assert (wrong(x) - meta_out).abs().max() > 1e-3


@pytest.mark.parametrize("layout,biases", [("fused_qkv", "qkvo"), ("mha", "qkvo"), ("happy_llm", ""),
                                           ("llama", "qkvo"), ("llama", "qkv"), ("llama", ""), ("esm", "qkvo")])
def test_round_trips_are_exact(layout, biases):
    torch.manual_seed(3)
    separate = {f"{p}.weight": torch.randn(E, E) for p in "qkvo"}
    separate.update({f"{p}.bias": torch.randn(E) for p in biases})
    to, from_ = getattr(convert, f"to_{layout}"), getattr(convert, f"from_{layout}")
    back = from_(to(separate))
    assert back.keys() == separate.keys()
    for key in separate:
        assert torch.equal(back[key], separate[key])


def test_converters_load_into_the_real_modules_strictly():
    torch.manual_seed(4)
    sources = {
        "llama": LlamaAttention(E, H, 2, bias=True),
        "esm": EsmMHA(E, H, bias=True),
        "mha": nn.MultiheadAttention(E, H, batch_first=True),
    }
    for layout, module in sources.items():
        separate = getattr(convert, f"from_{layout}")(module.state_dict())
        rebuilt = getattr(convert, f"to_{layout}")(separate)
        if layout == "esm":  # LayerNorm parameters are not projections: to_esm sets identity ones
            rebuilt.update({k: v for k, v in module.state_dict().items() if "ln" in k or "layernorm_qkv.0" in k})
        module.load_state_dict(rebuilt, strict=True)


def test_qwen2_bias_layout_passes_through_unchanged():
    """q/k/v biases and no o_proj bias: nothing invented, nothing dropped, strict loads both ways."""
    torch.manual_seed(5)
    config = Qwen2Config(hidden_size=E, num_attention_heads=H, num_key_value_heads=2)
    qwen = modeling_qwen2.Qwen2Attention(config, layer_idx=0)
    separate = convert.from_llama(qwen.state_dict())
    assert sorted(k for k in separate if k.endswith("bias")) == ["k.bias", "q.bias", "v.bias"]
    weights = convert.to_llama(separate)
    assert weights.keys() == qwen.state_dict().keys()
    ours = LlamaAttention(E, H, 2, bias=("q_proj", "k_proj", "v_proj"))
    ours.load_state_dict(weights, strict=True)
    for key, value in qwen.state_dict().items():
        assert torch.equal(ours.state_dict()[key], value)
    qwen.load_state_dict(convert.to_llama(convert.from_llama(ours.state_dict())), strict=True)


def test_missing_places_for_biases_are_refused_not_dropped():
    separate = {f"{p}.weight": torch.randn(E, E) for p in "qkvo"} | {"o.bias": torch.randn(E)}
    with pytest.raises(ValueError, match=r"separate: expected no o.bias .*got o.bias of shape \(16,\)"):
        convert.to_happy_llm(separate)
    with pytest.raises(ValueError, match=r"separate: expected biases on all or none of"):
        convert.to_mha(separate)
    with pytest.raises(ValueError, match=r"state_dict: expected a key 'qkv.weight', got keys \['wq.weight'\]"):
        convert.from_fused_qkv({"wq.weight": torch.zeros(1)})
    with pytest.raises(TypeError, match=r"state_dict: expected a dict of tensors"):
        convert.from_llama([1, 2])
    with pytest.raises(ValueError, match=r"separate: expected only q/k/v/o weights and biases, got \['x.weight'\]"):
        convert.to_llama({f"{p}.weight": torch.zeros(2, 2) for p in "qkvo"} | {"x.weight": torch.zeros(1)})
