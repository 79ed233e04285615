"""attnref.llama against transformers' LlamaAttention, core's reference attention, and itself."""

import pytest
import torch
from transformers import LlamaConfig, MistralConfig, Qwen2Config
from transformers.cache_utils import DynamicCache
from transformers.masking_utils import create_causal_mask, create_sliding_window_causal_mask
from transformers.models.llama import modeling_llama as hf
from transformers.models.mistral import modeling_mistral
from transformers.models.qwen2 import modeling_qwen2

from attnref import core
from attnref.llama import KVCache, LlamaAttention, SimpleLlamaAttention

# Half-precision forwards against float32, as max abs error on outputs of size ~0.1-1. The inputs
# and weights are rounded to the half dtype (10 and 7 mantissa bits: eps 1e-3 and 8e-3), then the
# projections accumulate a few dozen such products: about 2 eps of headroom (observed: 7e-4, 5e-3).
FP16_ATOL = 2e-3
BF16_ATOL = 1.6e-2
HF_ATOL = 1e-5  # float32 against transformers: only summation order differs


def make_pair(hidden=32, heads=4, kv_heads=None, head_dim=None, theta=10000.0, bias=False, impl="sdpa"):
    """An attnref module and a transformers module holding the same weights."""
    kv_heads = heads if kv_heads is None else kv_heads
    ours = LlamaAttention(hidden, heads, kv_heads, head_dim, rope_theta=theta, bias=bias)
    config = LlamaConfig(
        hidden_size=hidden,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim if head_dim is not None else hidden // heads,
        attention_bias=bias,
        rope_parameters={"rope_type": "default", "rope_theta": theta},
    )
    config._attn_implementation = impl
    theirs = hf.LlamaAttention(config, layer_idx=0)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours.eval(), theirs.eval(), hf.LlamaRotaryEmbedding(config)


def hf_forward(theirs, rope, x, impl, position_ids=None):
    B, L, _ = x.shape
    if position_ids is None:
        position_ids = torch.arange(L)[None].expand(B, L)
    mask = None
    if impl == "eager":
        # transformers' eager path is causal only through the additive mask it is given.
        mask = core.bool_to_additive(core.causal_mask(L), x.dtype)[None, None]
    out, _ = theirs(x, position_embeddings=rope(x, position_ids), attention_mask=mask)
    return out


# -- against transformers -----------------------------------------------------------------------

CONFIGS = [
    dict(),  # MHA
    dict(kv_heads=2, bias=True),  # GQA with biases
    dict(kv_heads=1, head_dim=6, theta=500.0),  # MQA, head_dim != hidden/heads, rope_theta
    dict(heads=2, head_dim=24, bias=True, theta=1e6),
]


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("cfg", CONFIGS, ids=["mha", "gqa-bias", "mqa-hd6-theta", "hd24-bias"])
def test_matches_transformers(cfg, impl):
    torch.manual_seed(0)
    ours, theirs, rope = make_pair(**cfg, impl=impl)
    ours.attn_implementation = impl
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    # Strict load the other way too: transformers' fresh weights into ours.
    other = hf.LlamaAttention(theirs.config, layer_idx=0)
    ours.load_state_dict(other.state_dict(), strict=True)
    theirs.load_state_dict(other.state_dict(), strict=True)
    x = torch.randn(2, 7, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x), hf_forward(theirs, rope, x, impl), atol=HF_ATOL)
        # Explicit per-batch positions (shifted, as after left padding).
        pos = torch.stack([torch.arange(7) + 3, torch.arange(7) + 11])
        assert torch.allclose(ours(x, position_ids=pos), hf_forward(theirs, rope, x, impl, pos), atol=HF_ATOL)


def test_attribute_names_and_shapes():
    m = LlamaAttention(32, 4, 2, head_dim=6, bias=True)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert shapes == {
        "q_proj.weight": (24, 32), "q_proj.bias": (24,),
        "k_proj.weight": (12, 32), "k_proj.bias": (12,),
        "v_proj.weight": (12, 32), "v_proj.bias": (12,),
        "o_proj.weight": (32, 24), "o_proj.bias": (32,),
    }
    assert m(torch.randn(3, 5, 32)).shape == (3, 5, 32)
    assert set(LlamaAttention(32, 4).state_dict()) == {f"{p}_proj.weight" for p in "qkvo"}


# -- KV cache -------------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
@pytest.mark.parametrize("kv_heads", [4, 2])
def test_cache_matches_full_pass(impl, kv_heads):
    torch.manual_seed(1)
    m = LlamaAttention(32, 4, kv_heads).eval()
    m.attn_implementation = impl
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        full = m(x)
        # Prefill 4 tokens, decode 2 one at a time, then a chunk of 3 (S > L, bottom-right causal).
        cache = KVCache()
        assert len(cache) == 0
        outs = [m(x[:, :4], kv_cache=cache)]
        assert len(cache) == 4
        for t in (4, 5):
            outs.append(m(x[:, t : t + 1], kv_cache=cache))
            assert len(cache) == t + 1
        outs.append(m(x[:, 6:], kv_cache=cache))
        assert len(cache) == 9
        assert cache.key_BGSD.shape == (2, kv_heads, 9, 8) == cache.value_BGSD.shape
    assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)


def test_cache_positions_continue_and_explicit_positions_agree():
    torch.manual_seed(2)
    m = LlamaAttention(16, 2).eval()
    x = torch.randn(1, 5, 16)
    with torch.no_grad():
        a, b = KVCache(), KVCache()
        m(x[:, :3], kv_cache=a)
        m(x[:, :3], kv_cache=b, position_ids=torch.arange(3)[None])
        default = m(x[:, 3:], kv_cache=a)
        explicit = m(x[:, 3:], kv_cache=b, position_ids=torch.tensor([[3, 4]]))
        assert torch.allclose(default, explicit, atol=1e-6)
        # Without the cache continuing, positions restart at 0: the rotation differs.
        wrong = m(x[:, 3:], kv_cache=KVCache())
    assert not torch.allclose(default, wrong, atol=1e-3)


def test_rope_table_cached_per_device_and_dtype():
    m = LlamaAttention(16, 2).eval()
    with torch.no_grad():
        m(torch.randn(1, 3, 16))
        table = m._rope_table[(torch.device("cpu"), torch.float32)][0]
        m(torch.randn(1, 2, 16))  # shorter: reuses the same table
        assert m._rope_table[(torch.device("cpu"), torch.float32)][0] is table
        m.double()(torch.randn(1, 2, 16, dtype=torch.float64))
    assert set(m._rope_table) == {(torch.device("cpu"), torch.float32), (torch.device("cpu"), torch.float64)}
    assert "_rope_table" not in str(m.state_dict().keys())


# -- causality and kernels ----------------------------------------------------------------------


def test_future_tokens_do_not_change_the_past():
    torch.manual_seed(3)
    m = LlamaAttention(16, 4, 2).eval()
    x = torch.randn(2, 6, 16)
    y = x.clone()
    y[:, 4:] = torch.randn(2, 2, 16)
    with torch.no_grad():
        a, b = m(x), m(y)
    assert torch.equal(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def reference_composition(m: LlamaAttention, x: torch.Tensor) -> torch.Tensor:
    """LLaMA attention written from core's pieces and the reference SDPA."""
    B, L, _ = x.shape
    H, G, D = m.num_heads, m.num_kv_heads, m.head_dim
    q = m.q_proj(x).view(B, L, H, D).transpose(1, 2)
    k = m.k_proj(x).view(B, L, G, D).transpose(1, 2)
    v = m.v_proj(x).view(B, L, G, D).transpose(1, 2)
    angles = core.rope_angles(torch.arange(L), D, m.rope_theta)
    q = core.apply_rope_half_split(q, angles.cos(), angles.sin())
    k = core.apply_rope_half_split(k, angles.cos(), angles.sin())
    k, v = core.repeat_kv(k, H // G), core.repeat_kv(v, H // G)
    out = core.sdpa_reference(q, k, v, is_causal=True)
    return m.o_proj(out.transpose(1, 2).reshape(B, L, H * D))


@pytest.mark.parametrize("kv_heads", [4, 1])
def test_sdpa_eager_and_reference_agree_in_float64(kv_heads):
    torch.manual_seed(4)
    m = LlamaAttention(24, 4, kv_heads, head_dim=4, rope_theta=100.0, bias=True).double().eval()
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    with torch.no_grad():
        sdpa = m(x)
        m.attn_implementation = "eager"
        eager = m(x)
        ref = reference_composition(m, x)
    assert torch.allclose(sdpa, eager, atol=1e-12)
    assert torch.allclose(eager, ref, atol=1e-12)


# -- attention_mask -------------------------------------------------------------------------------


@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
def test_padding_mask_equals_unpadded_runs(impl):
    torch.manual_seed(5)
    m = LlamaAttention(16, 4, 2).eval()
    m.attn_implementation = impl
    lengths = torch.tensor([5, 3, 0])
    x = torch.randn(3, 5, 16)
    with torch.no_grad():
        out = m(x, attention_mask=core.padding_mask(lengths, 5))
        for b, n in enumerate(lengths.tolist()):
            if n:
                assert torch.allclose(out[b, :n], m(x[b : b + 1, :n])[0], atol=1e-6)
        # Length 0: every row fully masked; the attention gives zeros, so the output is o_proj's bias
        # (zero here: LLaMA has none).
        assert not out.isnan().any()
        assert torch.equal(out[2], torch.zeros(5, 16))


def test_a_2d_padding_mask_points_to_padding_mask():
    m = LlamaAttention(16, 4, 2)
    keep_BS = torch.ones(3, 5, dtype=torch.long)  # transformers' attention_mask from a tokenizer
    with pytest.raises(ValueError, match=r"attention_mask: expected .* = \(3, 4, 5, 5\), got \(3, 5\); a \(B, S\) key-padding mask .*core.padding_mask"):
        m(torch.randn(3, 5, 16), attention_mask=keep_BS)


def test_float_mask_is_a_type_error_pointing_to_the_converter():
    m = LlamaAttention(16, 2)
    mask = core.bool_to_additive(core.causal_mask(3))
    with pytest.raises(TypeError, match=r"attention_mask: expected a boolean mask.*additive_to_bool.*float32"):
        m(torch.randn(1, 3, 16), attention_mask=mask)


# -- gradients, dtypes, determinism ---------------------------------------------------------------


def test_gradcheck_eager():
    torch.manual_seed(6)
    m = LlamaAttention(8, 2, 1, bias=True).double()
    m.attn_implementation = "eager"
    x = torch.randn(1, 3, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([True, True, False])[None, None, None]
    assert torch.autograd.gradcheck(lambda t: m(t, attention_mask=mask), (x,))


@pytest.mark.parametrize("dtype,atol", [(torch.float16, FP16_ATOL), (torch.bfloat16, BF16_ATOL)])
@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
def test_half_precision_close_to_float32(dtype, atol, impl):
    torch.manual_seed(7)
    ours, theirs, rope = make_pair(kv_heads=2, impl=impl)
    ours.attn_implementation = impl
    x = torch.randn(2, 6, 32)
    with torch.no_grad():
        ref = ours(x)
        out = ours.to(dtype)(x.to(dtype))
        theirs_out = hf_forward(theirs.to(dtype), rope, x.to(dtype), impl)
    assert out.dtype == dtype
    err = (out.float() - ref).abs().max()
    assert err < atol
    # As flash-attention's tests do: at most twice the error transformers makes in the same dtype.
    assert err <= 2 * (theirs_out.float() - ref).abs().max()


def test_dropout_determinism():
    torch.manual_seed(8)
    x = torch.randn(2, 6, 16)
    m = LlamaAttention(16, 2, dropout=0.0).train()
    assert torch.equal(m(x), m(x))
    d = LlamaAttention(16, 2, dropout=0.3)
    d.load_state_dict(m.state_dict())
    d.train()
    for impl in core.IMPLEMENTATIONS:
        d.attn_implementation = m.attn_implementation = impl
        torch.manual_seed(1)
        a = d(x)
        torch.manual_seed(1)
        b = d(x)
        torch.manual_seed(2)
        c = d(x)
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)
        assert torch.equal(d.eval()(x), m(x))
        d.train()


# -- RoPE scaling (checked against transformers 5.25.0) ---------------------------------------------

ORIGINAL, MAX_POS = 64, 128  # original_max_position_embeddings, max_position_embeddings
SCALINGS = {
    "linear": {"rope_type": "linear", "factor": 4.0},
    "dynamic": {"rope_type": "dynamic", "factor": 3.0},
    "yarn": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": ORIGINAL},
    "yarn-mscale": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": ORIGINAL,
                    "beta_fast": 16, "beta_slow": 2, "mscale": 0.707, "mscale_all_dim": 1.0, "truncate": False},
    "longrope": {"rope_type": "longrope", "factor": 2.0, "original_max_position_embeddings": ORIGINAL,
                 "short_factor": [1.0 + 0.05 * i for i in range(8)], "long_factor": [1.0 + 0.5 * i for i in range(8)]},
    "llama3": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
               "original_max_position_embeddings": ORIGINAL},
}


def scaled_pair(rope_parameters, impl="sdpa"):
    """attnref and transformers LLaMA attention (E=64, H=4, G=2, D=16) with one RoPE scaling."""
    ours = LlamaAttention(64, 4, 2, rope_parameters=rope_parameters, max_position_embeddings=MAX_POS).eval()
    config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=MAX_POS, rope_parameters=dict(rope_parameters, rope_theta=10000.0))
    config._attn_implementation = impl
    theirs = hf.LlamaAttention(config, layer_idx=0).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs, hf.LlamaRotaryEmbedding(config)


def hf_step(theirs, rope, x, position_ids, cache=None, sliding=False):
    """One forward of a transformers attention layer, with the mask its model would build."""
    make_mask = create_sliding_window_causal_mask if sliding else create_causal_mask
    mask = make_mask(config=theirs.config, inputs_embeds=x, attention_mask=None, cache=cache)
    out, _ = theirs(x, position_embeddings=rope(x, position_ids), attention_mask=mask, cache=cache)
    return out


@pytest.mark.parametrize("name", SCALINGS)
def test_rope_scaling_matches_transformers_past_the_original_context(name):
    torch.manual_seed(11)
    ours, theirs, rope = scaled_pair(SCALINGS[name])
    x = torch.randn(2, 24, 64)
    with torch.no_grad():
        # Positions before, across and past original_max_position_embeddings (and max_position_embeddings).
        for start in (0, ORIGINAL - 8, MAX_POS + 20):
            pos = torch.arange(start, start + 24)[None].expand(2, 24)
            expected = hf_step(theirs, rope, x, pos)
            assert torch.allclose(ours(x, position_ids=pos), expected, atol=HF_ATOL), start
            # The same cos/sin handed over in transformers' layout.
            assert torch.allclose(ours(x, position_embeddings=rope(x, pos)), expected, atol=HF_ATOL), start
    assert ours.attention_scaling == rope.attention_scaling
    assert (ours.attention_scaling != 1.0) == name.startswith(("yarn", "longrope"))


@pytest.mark.parametrize("name", SCALINGS)
def test_rope_scaling_with_a_cache_across_the_original_context(name):
    """Prefill, decode past original_max_position_embeddings, then a chunk past max_position_embeddings:
    "dynamic" regrows and "longrope" switches factors on the way, as transformers does."""
    torch.manual_seed(12)
    ours, theirs, rope = scaled_pair(SCALINGS[name])
    x = torch.randn(1, 140, 64)
    ours_cache, their_cache = KVCache(), DynamicCache()
    steps = [(0, 60)] + [(t, t + 1) for t in range(60, 68)] + [(68, 140)]
    with torch.no_grad():
        for a, b in steps:
            expected = hf_step(theirs, rope, x[:, a:b], torch.arange(a, b)[None], their_cache)
            assert torch.allclose(ours(x[:, a:b], kv_cache=ours_cache), expected, atol=HF_ATOL), (a, b)


def test_dynamic_ntk_updates_like_transformers():
    """Grows past max_position_embeddings, keeps the grown frequencies for shorter sequences still
    past it, and resets below it: the state machine of transformers' dynamic_rope_update."""
    torch.manual_seed(13)
    ours, theirs, rope = scaled_pair(SCALINGS["dynamic"])
    original = ours._inv_freq
    x = torch.randn(1, 150, 64)
    with torch.no_grad():
        for L in (20, 140, 135, 150, 60, 10, 129):
            pos = torch.arange(L)[None]
            assert torch.allclose(ours(x[:, :L]), hf_step(theirs, rope, x[:, :L], pos), atol=HF_ATOL), L
            assert torch.equal(ours._inv_freq, rope.inv_freq), L
            assert ours._max_seq_len_cached == rope.max_seq_len_cached, L
            if L == 135:  # still the frequencies grown for 140
                assert not torch.equal(ours._inv_freq, original)
            if L == 60:  # back to the original ones
                assert torch.equal(ours._inv_freq, original)


def test_rope_theta_argument_and_rope_parameters():
    assert LlamaAttention(16, 2, rope_theta=500.0).rope_parameters == {"rope_type": "default", "rope_theta": 500.0}
    # The dict's rope_theta wins, as a config's rope_parameters wins over its rope_theta.
    m = LlamaAttention(16, 2, rope_theta=500.0, rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6})
    assert m.rope_theta == 1e6
    assert torch.allclose(m._inv_freq, core.rope_angles(torch.ones(()), 8, 1e6) / 2.0)


# -- per-projection biases and sliding windows ------------------------------------------------------


def test_qwen2_layout_loads_strictly_both_ways():
    torch.manual_seed(14)
    config = Qwen2Config(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    config._attn_implementation = "sdpa"
    theirs = modeling_qwen2.Qwen2Attention(config, layer_idx=0).eval()
    rope = modeling_qwen2.Qwen2RotaryEmbedding(config)
    ours = LlamaAttention(64, 4, 2, rope_theta=config.rope_parameters["rope_theta"],
                          bias=("q_proj", "k_proj", "v_proj")).eval()
    assert ours.o_proj.bias is None and ours.q_proj.bias is not None
    ours.load_state_dict(theirs.state_dict(), strict=True)
    theirs.load_state_dict(LlamaAttention(64, 4, 2, bias={"q_proj", "k_proj", "v_proj"}).state_dict(), strict=True)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 9, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), hf_step(theirs, rope, x, torch.arange(9)[None].expand(2, 9)), atol=HF_ATOL)
    # The Llama switch (all four) and none do not load a Qwen2 checkpoint.
    for bias in (True, False):
        with pytest.raises(RuntimeError):
            LlamaAttention(64, 4, 2, bias=bias).load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
def test_sliding_window_matches_mistral_prefill_and_cached_decoding(impl):
    torch.manual_seed(15)
    window = 4
    config = MistralConfig(hidden_size=32, num_attention_heads=4, num_key_value_heads=2, sliding_window=window,
                           max_position_embeddings=64, num_hidden_layers=1)
    config._attn_implementation = "sdpa"
    theirs = modeling_mistral.MistralAttention(config, layer_idx=0).eval()
    rope = modeling_mistral.MistralRotaryEmbedding(config)
    ours = LlamaAttention(32, 4, 2, rope_theta=config.rope_parameters["rope_theta"], sliding_window=window).eval()
    ours.attn_implementation = impl
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 16, 32)
    with torch.no_grad():
        # Prefill longer than the window.
        full = ours(x)
        assert torch.allclose(full, hf_step(theirs, rope, x, torch.arange(16)[None], sliding=True), atol=HF_ATOL)
        # Prefill 7, decode 4 one at a time, then a chunk of 5: transformers' sliding cache drops old keys,
        # attnref's KVCache keeps them under the mask.
        ours_cache, their_cache = KVCache(), DynamicCache(config=config)
        outs = []
        for a, b in [(0, 7), (7, 8), (8, 9), (9, 10), (10, 11), (11, 16)]:
            pos = torch.arange(a, b)[None]
            outs.append(ours(x[:, a:b], kv_cache=ours_cache))
            assert torch.allclose(outs[-1], hf_step(theirs, rope, x[:, a:b], pos, their_cache, sliding=True),
                                  atol=HF_ATOL), (a, b)
        assert torch.allclose(torch.cat(outs, dim=1), full, atol=1e-5)
        assert len(ours_cache) == 16
        # A token further back than the window has no influence.
        y = x.clone()
        y[:, 0] += 1.0
        changed = (ours(y) - full).abs().amax(dim=(0, 2)) > 0
    assert changed.tolist() == [True] * window + [False] * (16 - window)


def test_sliding_window_not_shorter_than_the_sequence_is_causal():
    torch.manual_seed(16)
    m = LlamaAttention(16, 2).eval()
    w = LlamaAttention(16, 2, sliding_window=6).eval()
    w.load_state_dict(m.state_dict())
    x = torch.randn(1, 6, 16)
    with torch.no_grad():
        assert torch.equal(w(x), m(x))
        assert not torch.allclose(w(torch.cat([x, x], 1))[:, 6:], m(torch.cat([x, x], 1))[:, 6:])


# -- SimpleLlamaAttention -------------------------------------------------------------------------


def simple_reference(m: SimpleLlamaAttention, x: torch.Tensor, mask=None) -> torch.Tensor:
    B, L, E = x.shape
    H = m.num_attention_heads
    q, k, v = (p(x).view(B, L, H, E // H).transpose(1, 2) for p in (m.query, m.key, m.value))
    return m.out_proj(core.sdpa_reference(q, k, v, mask).transpose(1, 2).reshape(B, L, E))


@pytest.mark.parametrize("impl", core.IMPLEMENTATIONS)
def test_simple_attention(impl):
    torch.manual_seed(9)
    m = SimpleLlamaAttention(24, 3).double().eval()
    m.attn_implementation = impl
    assert set(m.state_dict()) == {f"{n}.{p}" for n in ("query", "key", "value", "out_proj") for p in ("weight", "bias")}
    x = torch.randn(2, 5, 24, dtype=torch.float64)
    mask = core.padding_mask(torch.tensor([5, 2]), 5)
    with torch.no_grad():
        out = m(x)
        assert out.shape == (2, 5, 24)
        assert torch.allclose(out, simple_reference(m, x), atol=1e-12)
        # Not causal: the first token sees the last.
        y = x.clone()
        y[:, -1] += 1
        assert not torch.allclose(m(y)[:, 0], out[:, 0])
        assert torch.allclose(m(x, attention_mask=mask), simple_reference(m, x, mask), atol=1e-12)
        # Key padding: the real tokens of sequence 1 see only each other.
        assert torch.allclose(m(x, attention_mask=mask)[1, :2], m(x[1:, :2])[0], atol=1e-12)
    with pytest.raises(TypeError, match=r"attention_mask: expected a boolean mask.*additive_to_bool"):
        m(x, attention_mask=core.bool_to_additive(mask, torch.float64))


def test_simple_attention_dropout_only_in_training():
    torch.manual_seed(10)
    m = SimpleLlamaAttention(16, 2, dropout=0.5)
    x = torch.randn(1, 4, 16)
    assert torch.equal(m.eval()(x), m(x))
    m.train()
    torch.manual_seed(0)
    a = m(x)
    torch.manual_seed(0)
    assert torch.equal(a, m(x))
    assert not torch.allclose(a, m.eval()(x))


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(hidden_size=30, num_heads=4), ValueError, r"hidden_size: expected a multiple of num_heads=4, got 30"),
        (dict(hidden_size=32, num_heads=4, num_kv_heads=3), ValueError, r"num_heads: expected a multiple of num_kv_heads=3, got 4"),
        (dict(hidden_size=32, num_heads=4, head_dim=5), ValueError, r"head_dim: expected an even number.*got 5"),
        (dict(hidden_size=12, num_heads=4), ValueError, r"head_dim: expected an even number.*got 3"),
        (dict(hidden_size=32, num_heads=0), ValueError, r"num_heads: expected a positive int, got 0"),
        (dict(hidden_size=32.0, num_heads=4), TypeError, r"hidden_size: expected an int, got float 32.0"),
        (dict(hidden_size=32, num_heads=4, rope_theta=-1.0), ValueError, r"rope_theta: expected a positive number, got -1.0"),
        (dict(hidden_size=32, num_heads=4, dropout=1.5), ValueError, r"dropout: expected a float in \[0, 1\), got 1.5"),
        (dict(hidden_size=32, num_heads=4, bias=1), TypeError, r"bias: expected a bool or a collection of names from .*got int 1"),
        (dict(hidden_size=32, num_heads=4, bias="q_proj"), TypeError, r"bias: expected a bool or a collection .*got str 'q_proj'"),
        (dict(hidden_size=32, num_heads=4, bias=("q_proj", "query")), ValueError, r"bias: expected names from .*got \['query'\]"),
        (dict(hidden_size=32, num_heads=4, sliding_window=0), ValueError, r"sliding_window: expected a positive int, got 0"),
        (dict(hidden_size=32, num_heads=4, rope_parameters={"rope_type": "ntk"}), ValueError,
         r"rope_parameters: expected a rope_type in \('default', 'linear', 'dynamic', 'yarn', 'longrope', 'llama3'\), got rope_type 'ntk'"),
        (dict(hidden_size=32, num_heads=4, rope_parameters={"rope_type": "linear"}), ValueError,
         r"rope_parameters: expected a value for 'factor' \(rope_type 'linear'\), got keys \['rope_theta', 'rope_type'\]"),
        (dict(hidden_size=32, num_heads=4, rope_parameters={"rope_type": "dynamic", "factor": 2.0}), ValueError,
         r"max_position_embeddings: expected the config's context length \(rope_type 'dynamic' needs it\), got None"),
        (dict(hidden_size=32, num_heads=4, rope_parameters=[("rope_type", "linear")]), TypeError,
         r"rope_parameters: expected a dict .*got list"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        LlamaAttention(**kwargs)


def test_bad_simple_constructor_arguments():
    with pytest.raises(ValueError, match=r"hidden_size: expected a multiple of num_attention_heads=3, got 16"):
        SimpleLlamaAttention(16, 3)
    with pytest.raises(ValueError, match=r"dropout: expected a float in \[0, 1\), got -0.1"):
        SimpleLlamaAttention(16, 2, dropout=-0.1)


@pytest.fixture
def module():
    return LlamaAttention(16, 4, 2)


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda m: m(torch.randn(2, 3, 12)), ValueError, r"x: expected shape \(B, L, E\) with E=16, got \(2, 3, 12\)"),
        (lambda m: m(torch.randn(3, 16)), ValueError, r"x: expected shape \(B, L, E\).*got \(3, 16\) \(2 dims\)"),
        (lambda m: m(torch.randn(1, 3, 16).double()), TypeError, r"x: expected dtype torch.float32.*got torch.float64"),
        (lambda m: m(torch.ones(1, 3, 16, dtype=torch.long)), TypeError, r"x: expected a floating-point tensor, got torch.int64"),
        (lambda m: m(torch.randn(2, 3, 16), position_ids=torch.arange(4)[None]), ValueError,
         r"position_ids: expected shape \(B, L\) = \(2, 3\) or \(1, 3\), got \(1, 4\)"),
        (lambda m: m(torch.randn(2, 3, 16), position_ids=torch.zeros(3, 3, dtype=torch.long)), ValueError,
         r"position_ids: expected shape .*got \(3, 3\)"),
        (lambda m: m(torch.randn(2, 3, 16), position_ids=torch.arange(3)), ValueError,
         r"position_ids: expected shape .*got \(3,\)"),
        (lambda m: m(torch.randn(2, 3, 16), position_ids=torch.arange(3.0)[None]), TypeError,
         r"position_ids: expected an integer tensor, got torch.float32"),
        (lambda m: m(torch.randn(2, 3, 16), attention_mask=torch.ones(2, 3, 3, 3, dtype=torch.bool)), ValueError,
         r"attention_mask: expected a shape broadcastable to \(B, H, L, S\) = \(2, 4, 3, 3\), got \(2, 3, 3, 3\)"),
        (lambda m: m(torch.randn(2, 3, 16), attention_mask=torch.ones(3, 4, dtype=torch.bool)), ValueError,
         r"attention_mask: expected .*= \(2, 4, 3, 3\), got \(3, 4\)"),
        (lambda m: m(torch.randn(2, 3, 16), attention_mask=torch.zeros(2, 1, 1, 3)), TypeError,
         r"attention_mask: expected a boolean mask .*additive_to_bool, got torch.float32"),
        (lambda m: m(torch.randn(2, 3, 16), kv_cache={}), TypeError, r"kv_cache: expected an attnref.llama.KVCache or None, got dict"),
        (lambda m: m(torch.randn(2, 3, 16), position_embeddings=torch.ones(2, 3, 4)), TypeError,
         r"position_embeddings: expected a pair \(cos, sin\), got Tensor"),
        (lambda m: m(torch.randn(2, 3, 16), position_embeddings=(torch.ones(2, 3, 2), torch.ones(2, 3, 2))), ValueError,
         r"position_embeddings\[0\] \(cos\): expected shape \(B, L, D\) = \(2, 3, 4\) or \(1, 3, 4\), got \(2, 3, 2\)"),
        (lambda m: m(torch.randn(2, 3, 16), position_embeddings=(torch.ones(1, 3, 4), torch.ones(1, 3, 4, dtype=torch.long))),
         TypeError, r"position_embeddings\[1\] \(sin\): expected a floating-point tensor, got torch.int64"),
        (lambda m: m(torch.randn(2, 3, 16), position_ids=torch.arange(3)[None],
                     position_embeddings=(torch.ones(1, 3, 4), torch.ones(1, 3, 4))), TypeError,
         r"position_ids: expected None when position_embeddings is given"),
    ],
)
def test_bad_forward_arguments(module, call, error, match):
    with pytest.raises(error, match=match):
        call(module)


def test_inconsistent_cache(module):
    cache = KVCache()
    module(torch.randn(2, 3, 16), kv_cache=cache)
    with pytest.raises(ValueError, match=r"kv_cache: expected new keys .*B=2, G=2, D=4.*got \(1, 2, 1, 4\)"):
        module(torch.randn(1, 1, 16), kv_cache=cache)
    assert len(cache) == 3  # the failed call left the cache as it was
    other = LlamaAttention(16, 2, 1)  # G=1, D=8
    with pytest.raises(ValueError, match=r"kv_cache: expected new keys .*got \(2, 1, 1, 8\)"):
        other(torch.randn(2, 1, 16), kv_cache=cache)
    with pytest.raises(TypeError, match=r"kv_cache: expected new keys of dtype torch.float32.*got torch.float64"):
        module.double()(torch.randn(2, 1, 16, dtype=torch.float64), kv_cache=cache)
    # A mask sized for the cache: S counts the cached tokens.
    with pytest.raises(ValueError, match=r"attention_mask: expected .*\(2, 4, 1, 4\), got \(2, 1, 1, 3\)"):
        module.float()(torch.randn(2, 1, 16), attention_mask=torch.ones(2, 1, 1, 3, dtype=torch.bool), kv_cache=cache)


def test_bad_cache_update():
    cache = KVCache()
    with pytest.raises(ValueError, match=r"value_BGLD: expected shape \(B, G, L, D\) with B=1, G=2, L=3, D=4, got \(1, 2, 3, 5\)"):
        cache.update(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 5))
    with pytest.raises(TypeError, match=r"key_BGLD: expected a torch.Tensor, got list"):
        cache.update([], torch.randn(1, 2, 3, 4))
    assert len(cache) == 0
