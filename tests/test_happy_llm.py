"""attnref.happy_llm: the tutorial's attention() and MultiHeadAttention, fixed, against core."""

import math

import pytest
import torch
from torch import nn

from attnref import core
from attnref.happy_llm import ModelArgs, MultiHeadAttention, attention

E, H, M = 8, 2, 6  # dim, heads, max_seq_len
D = E // H
# float16/bfloat16 against float32 on unit-scale outputs: about 2 ulps at 1.0 (2^-10 and 2^-7);
# the largest error seen over 20 seeds was 6e-4 and 5e-3.
LOW_PRECISION_ATOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2}


def make(is_causal=False, dropout=0.0, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return MultiHeadAttention(ModelArgs(E, H, M, dropout=dropout, **kw), is_causal=is_causal).to(dtype).eval()


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def composition(module, q, k, v, attn_mask=None, is_causal=False):
    """What the tutorial's forward computes, spelled out with core.sdpa_reference."""
    B, L, S = q.shape[0], q.shape[1], k.shape[1]
    xq = (q @ module.wq.weight.T).view(B, L, H, D).transpose(1, 2)
    xk = (k @ module.wk.weight.T).view(B, S, H, D).transpose(1, 2)
    xv = (v @ module.wv.weight.T).view(B, S, H, D).transpose(1, 2)
    out = core.sdpa_reference(xq, xk, xv, attn_mask, is_causal=is_causal)
    return out.transpose(1, 2).reshape(B, L, E) @ module.wo.weight.T


# -- ModelArgs and structure ------------------------------------------------------------------


def test_model_args_defaults_n_embd_to_dim():
    assert ModelArgs(8, 2, 4).n_embd == 8
    assert ModelArgs(8, 2, 4, n_embd=12).n_embd == 12


@pytest.mark.parametrize("is_causal", [False, True])
def test_state_dict_keys_and_attributes(is_causal):
    module = make(is_causal)
    keys = {"wq.weight", "wk.weight", "wv.weight", "wo.weight"} | ({"mask"} if is_causal else set())
    assert set(module.state_dict()) == keys
    assert module.is_causal is is_causal
    assert (module.n_heads, module.head_dim) == (H, D)
    assert all(getattr(module, n).bias is None for n in ("wq", "wk", "wv", "wo"))


def test_mask_buffer_is_upstreams_additive_triu():
    mask = make(True, dtype=torch.float32).mask
    expected = torch.triu(torch.full((1, 1, M, M), float("-inf")), diagonal=1)
    assert mask.shape == (1, 1, M, M) and mask.dtype == torch.float32
    assert torch.equal(mask, expected)
    # Its boolean form is core's causal mask.
    assert torch.equal(core.additive_to_bool(mask[0, 0]), core.causal_mask(M))


def test_n_embd_differs_from_dim():
    torch.manual_seed(0)
    module = MultiHeadAttention(ModelArgs(E, H, M, n_embd=12)).double()
    assert module.wq.weight.shape == (E, 12) and module.wo.weight.shape == (E, E)
    q, kv = rand(2, 3, 12), rand(2, 4, 12)
    assert module(q, kv, kv).shape == (2, 3, E)


# -- function ---------------------------------------------------------------------------------


@pytest.mark.parametrize("is_causal", [False, True])
@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
def test_forward_equals_the_tutorials_computation(is_causal, implementation):
    module = make(is_causal)
    module.attn_implementation = implementation
    x = rand(2, 5, E)
    # The tutorial adds its additive buffer's top-left slice to the scores.
    mask = module.mask[:, :, :5, :5] if is_causal else None
    out = module(x, x, x)
    assert out.shape == (2, 5, E)
    assert torch.allclose(out, composition(module, x, x, x, mask), atol=1e-12)


@pytest.mark.parametrize("is_causal", [False, True])
def test_sdpa_equals_eager(is_causal):
    module = make(is_causal)
    q, kv = rand(2, 4, E), rand(2, 6, E)
    out_sdpa = module(q, kv, kv)
    module.attn_implementation = "eager"
    assert torch.allclose(module(q, kv, kv), out_sdpa, atol=1e-12)


@pytest.mark.parametrize("is_causal", [False, True])
def test_cross_attention_with_a_different_key_length(is_causal):
    """The tutorial views k and v with the query's length, so S != L crashes there."""
    module = make(is_causal)
    q, k, v = rand(2, 3, E), rand(2, 5, E), rand(2, 5, E)
    out = module(q, k, v)
    assert out.shape == (2, 3, E)
    # Causal with S > L is aligned bottom-right: query i sees keys 0 .. S - L + i.
    expected = composition(module, q, k, v, core.causal_mask(3, 5) if is_causal else None)
    assert torch.allclose(out, expected, atol=1e-12)


def test_causality_future_tokens_do_not_change_the_past():
    module = make(True)
    x = rand(1, 5, E)
    y = x.clone()
    y[:, 3:] = rand(1, 2, E)
    assert torch.allclose(module(x, x, x)[:, :3], module(y, y, y)[:, :3], atol=1e-12)
    assert not torch.allclose(module(x, x, x)[:, 3:], module(y, y, y)[:, 3:])
    non_causal = make(False)
    assert not torch.allclose(non_causal(x, x, x)[:, :3], non_causal(y, y, y)[:, :3])


def test_attention_function_matches_the_formula_and_weights_sum_to_one():
    query, key, value = rand(2, 3, 4, 5), rand(2, 3, 7, 5), rand(2, 3, 7, 6)
    out, p_attn = attention(query, key, value)
    expected_p = torch.softmax(query @ key.transpose(-2, -1) / math.sqrt(5), dim=-1)
    assert out.shape == (2, 3, 4, 6) and p_attn.shape == (2, 3, 4, 7)
    assert torch.allclose(p_attn, expected_p, atol=1e-12)
    assert torch.allclose(p_attn.sum(-1), torch.ones(2, 3, 4, dtype=torch.float64))
    assert torch.allclose(out, expected_p @ value, atol=1e-12)
    # Also on the three-dim (B, N, d) inputs of the tutorial's walk-through.
    x = rand(2, 4, 5)
    out3, p3 = attention(x, x, x)
    assert out3.shape == (2, 4, 5) and p3.shape == (2, 4, 4)


def test_attention_function_returns_the_post_dropout_weights_it_used():
    query, key, value = rand(1, 4, 5), rand(1, 6, 5), rand(1, 6, 3)
    dropout = nn.Dropout(0.5).train()
    torch.manual_seed(7)
    out, p_attn = attention(query, key, value, dropout)
    assert (p_attn == 0).any()
    assert torch.allclose(out, p_attn @ value, atol=1e-12)
    torch.manual_seed(7)
    assert torch.equal(attention(query, key, value, dropout)[1], p_attn)
    # An eval-mode dropout module (or none) leaves the weights alone.
    assert torch.equal(attention(query, key, value, dropout.eval())[1], attention(query, key, value)[1])


# -- gradients, dtypes, determinism -----------------------------------------------------------


@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
def test_gradcheck(implementation):
    module = make(True)
    module.attn_implementation = implementation
    q, k, v = (rand(1, 3, E).requires_grad_() for _ in range(3))
    assert torch.autograd.gradcheck(module, (q, k, v))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("is_causal", [False, True])
def test_low_precision_within_tolerance_of_float32(dtype, is_causal):
    module = make(is_causal, dtype=torch.float32)
    x = torch.randn(2, 5, E)
    expected = module(x, x, x)
    low = module.to(dtype)
    out = low(x.to(dtype), x.to(dtype), x.to(dtype))
    assert out.dtype == dtype
    assert torch.allclose(out.float(), expected, atol=LOW_PRECISION_ATOL[dtype], rtol=0)
    if is_causal:
        assert low.mask.dtype == dtype and torch.isneginf(low.mask).sum() == M * (M - 1) // 2


def test_determinism_and_dropout():
    x = rand(2, 5, E)
    no_dropout = make(True).train()
    assert torch.equal(no_dropout(x, x, x), no_dropout(x, x, x))

    module = make(True, dropout=0.3).train()
    torch.manual_seed(1)
    first = module(x, x, x)
    torch.manual_seed(1)
    assert torch.equal(module(x, x, x), first)
    torch.manual_seed(2)
    assert not torch.equal(module(x, x, x), first)

    module.eval()  # same weights as no_dropout (same seed): eval switches both dropouts off
    assert torch.equal(module(x, x, x), module(x, x, x))
    assert torch.allclose(module(x, x, x), no_dropout(x, x, x), atol=1e-12)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        (dict(dim=0, n_heads=1, max_seq_len=4), ValueError, r"dim: expected a positive int, got 0"),
        (dict(dim="8", n_heads=2, max_seq_len=4), TypeError, r"dim: expected an int, got str '8'"),
        (dict(dim=10, n_heads=3, max_seq_len=4), ValueError, r"dim: expected a multiple of n_heads=3, got 10"),
        (dict(dim=8, n_heads=-2, max_seq_len=4), ValueError, r"n_heads: expected a positive int, got -2"),
        (dict(dim=8, n_heads=2, max_seq_len=0), ValueError, r"max_seq_len: expected a positive int, got 0"),
        (dict(dim=8, n_heads=2, max_seq_len=4, dropout=1.0), ValueError, r"dropout: expected a float in \[0, 1\), got 1.0"),
        (dict(dim=8, n_heads=2, max_seq_len=4, dropout="0.1"), TypeError, r"dropout: expected a float in \[0, 1\)"),
        (dict(dim=8, n_heads=2, max_seq_len=4, n_embd=0), ValueError, r"n_embd: expected a positive int, got 0"),
    ],
)
def test_bad_model_args(kwargs, error, message):
    with pytest.raises(error, match=message):
        ModelArgs(**kwargs)


def test_bad_constructor_arguments():
    with pytest.raises(TypeError, match=r"args: expected an attnref.happy_llm.ModelArgs, got dict"):
        MultiHeadAttention({"dim": 8})
    with pytest.raises(TypeError, match=r"is_causal: expected a bool, got str 'yes'"):
        MultiHeadAttention(ModelArgs(8, 2, 4), is_causal="yes")
    args = ModelArgs(8, 2, 4)
    args.n_heads = 3  # mutated after construction: checked again by the module
    with pytest.raises(ValueError, match=r"dim: expected a multiple of n_heads=3, got 8"):
        MultiHeadAttention(args)


def test_longer_than_max_seq_len_is_refused_by_name():
    module = make(True)
    long, short = rand(1, M + 1, E), rand(1, 3, E)
    with pytest.raises(ValueError, match=rf"q: expected length L <= max_seq_len={M}, got {M + 1}"):
        module(long, long, long)
    with pytest.raises(ValueError, match=rf"k: expected length S <= max_seq_len={M}, got {M + 1}"):
        make(False)(short, long, long)


@pytest.mark.parametrize(
    "q_shape,k_shape,v_shape,message",
    [
        ((5, E), (5, E), (5, E), r"q: expected shape \(B, L, n_embd\) with n_embd=8 \(3 dims\), got \(5, 8\) \(2 dims\)"),
        ((2, 5, 6), (2, 5, 6), (2, 5, 6), r"q: expected shape \(B, L, n_embd\) with n_embd=8, got \(2, 5, 6\)"),
        ((2, 5, E), (3, 5, E), (3, 5, E), r"k: expected shape \(B, S, n_embd\) with B=2, n_embd=8, got \(3, 5, 8\)"),
        ((2, 5, E), (2, 5, E), (2, 4, E), r"v: expected shape \(B, S, n_embd\) with B=2, S=5, n_embd=8, got \(2, 4, 8\)"),
        ((2, 5, E), (2, 3, E), (2, 3, E), r"k: expected length S >= L=5 with is_causal"),
    ],
)
def test_bad_forward_shapes(q_shape, k_shape, v_shape, message):
    with pytest.raises(ValueError, match=message):
        make(True)(rand(*q_shape), rand(*k_shape), rand(*v_shape))


def test_bad_forward_types():
    module = make(False)
    x = rand(2, 3, E)
    with pytest.raises(TypeError, match=r"q: expected a torch.Tensor, got list"):
        module([1.0], x, x)
    with pytest.raises(TypeError, match=r"k: expected a floating-point tensor, got torch.int64"):
        module(x, torch.ones(2, 3, E, dtype=torch.long), x)
    with pytest.raises(TypeError, match=r"q: expected dtype torch.float64 \(the dtype of wq.weight\), got torch.float32"):
        module(x.float(), x.float(), x.float())
    with pytest.raises(TypeError, match=r"v: expected dtype torch.float64 \(the dtype of q\), got torch.float32"):
        module(x, x, x.float())
    module.attn_implementation = "flash"
    with pytest.raises(ValueError, match=r"attn_implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        module(x, x, x)


@pytest.mark.parametrize(
    "args,error,message",
    [
        ((torch.ones(2, 3, dtype=torch.long), rand(2, 3), rand(2, 3)), TypeError, r"query: expected a floating-point tensor"),
        ((rand(3), rand(2, 3), rand(2, 3)), ValueError, r"query: expected at least 2 dims .*got \(3,\)"),
        ((rand(2, 4, 3), rand(2, 5, 4), rand(2, 5, 3)), ValueError, r"key: expected head dim 3 \(that of query\), got 4"),
        ((rand(2, 4, 3), rand(2, 5, 3), rand(2, 6, 3)), ValueError, r"value: expected length 5 \(that of key\), got 6"),
        ((rand(2, 4, 3), rand(3, 5, 3), rand(3, 5, 3)), ValueError, r"key: expected leading dims \(2,\) \(those of query"),
        ((rand(2, 4, 3), rand(2, 5, 3).float(), rand(2, 5, 3)), TypeError, r"key: expected dtype torch.float64 \(the dtype of query\)"),
    ],
)
def test_bad_attention_inputs(args, error, message):
    with pytest.raises(error, match=message):
        attention(*args)


def test_bad_attention_dropout():
    x = rand(2, 3)
    with pytest.raises(TypeError, match=r"dropout: expected an nn.Module \(such as nn.Dropout\) or None, got float"):
        attention(x, x, x, dropout=0.1)
