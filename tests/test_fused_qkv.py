"""attnref.fused_qkv: the fused-QKV class and the nn.MultiheadAttention wrapper from LLMs-from-scratch."""

import pytest
import torch

from attnref import core
from attnref.fused_qkv import MHAPyTorchClass, MultiHeadAttentionCombinedQKV

E, H, C = 8, 2, 6  # d_out, heads, context_length
D = E // H
# float16/bfloat16 against float32 on unit-scale outputs: about 2 ulps at 1.0 (2^-10 and 2^-7);
# the largest error seen over 20 seeds was 6e-4 and 7e-3.
LOW_PRECISION_ATOL = {torch.float16: 2e-3, torch.bfloat16: 2e-2}
CLASSES = [MultiHeadAttentionCombinedQKV, MHAPyTorchClass]


def make(cls=MultiHeadAttentionCombinedQKV, d_in=E, dropout=0.0, qkv_bias=False, dtype=torch.float64, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(d_in, E, H, C, dropout=dropout, qkv_bias=qkv_bias, **kw).to(dtype).eval()


def rand(*shape, dtype=torch.float64):
    return torch.randn(*shape, dtype=dtype)


def composition(module, x):
    """Upstream's forward spelled out with core: the same view + permute, then causal attention."""
    B, L, _ = x.shape
    qkv = torch.nn.functional.linear(x, module.qkv.weight, module.qkv.bias)
    q, k, v = qkv.view(B, L, 3, H, D).permute(2, 0, 3, 1, 4)
    out = core.sdpa_reference(q, k, v, is_causal=True)
    return out.transpose(1, 2).reshape(B, L, E) @ module.proj.weight.T + module.proj.bias


# -- structure --------------------------------------------------------------------------------


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_combined_state_dict_matches_upstream(qkv_bias):
    module = make(qkv_bias=qkv_bias, dtype=torch.float32)
    keys = {"qkv.weight", "proj.weight", "proj.bias", "mask"} | ({"qkv.bias"} if qkv_bias else set())
    assert set(module.state_dict()) == keys
    assert module.qkv.weight.shape == (3 * E, E)
    assert (module.num_heads, module.context_length, module.head_dim) == (H, C, D)
    # Upstream's buffer: float, 1 = blocked; its complement is core's True = may attend.
    assert module.mask.dtype == torch.float32
    assert torch.equal(module.mask, torch.triu(torch.ones(C, C), diagonal=1))
    assert torch.equal(module.mask == 0, core.causal_mask(C))
    upstream_like = {k: torch.zeros_like(v) for k, v in module.state_dict().items()}
    module.load_state_dict(upstream_like, strict=True)


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_pytorch_class_state_dict(qkv_bias):
    module = make(MHAPyTorchClass, qkv_bias=qkv_bias, dtype=torch.float32)
    keys = {"multihead_attn.in_proj_weight", "multihead_attn.out_proj.weight", "proj.weight", "proj.bias", "mask"}
    if qkv_bias:  # bias only: no bias_k / bias_v, which upstream's add_bias_kv=True would add
        keys |= {"multihead_attn.in_proj_bias", "multihead_attn.out_proj.bias"}
    assert set(module.state_dict()) == keys
    assert module.mask.dtype == torch.bool
    assert torch.equal(module.mask, ~core.causal_mask(C))  # nn.MultiheadAttention: True = blocked


# -- function ---------------------------------------------------------------------------------


@pytest.mark.parametrize("d_in", [E, 5])
@pytest.mark.parametrize("qkv_bias", [False, True])
@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
def test_combined_equals_the_composition(d_in, qkv_bias, implementation):
    module = make(d_in=d_in, qkv_bias=qkv_bias)
    module.attn_implementation = implementation
    x = rand(2, 5, d_in)
    out = module(x)
    assert out.shape == (2, 5, E)
    assert torch.allclose(out, composition(module, x), atol=1e-12)


def test_sdpa_equals_eager():
    module = make()
    x = rand(2, C, E)
    out_sdpa = module(x)
    module.attn_implementation = "eager"
    assert torch.allclose(module(x), out_sdpa, atol=1e-12)


@pytest.mark.parametrize("cls", CLASSES)
def test_causality_future_tokens_do_not_change_the_past(cls):
    module = make(cls, need_weights=False) if cls is MHAPyTorchClass else make(cls)
    x = rand(1, 5, E)
    y = x.clone()
    y[:, 3:] = rand(1, 2, E)
    assert torch.allclose(module(x)[:, :3], module(y)[:, :3], atol=1e-12)
    assert not torch.allclose(module(x)[:, 3:], module(y)[:, 3:])


def test_need_weights_false_returns_a_tensor_and_true_a_tuple_of_per_head_weights():
    module = make(MHAPyTorchClass, need_weights=False)
    x = rand(2, 5, E)
    out = module(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 5, E)
    module.need_weights = True
    result = module(x)
    assert isinstance(result, tuple) and len(result) == 2
    out_w, weights = result
    assert weights.shape == (2, H, 5, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, H, 5, dtype=torch.float64))
    assert torch.equal(weights.masked_select(~core.causal_mask(5)), torch.zeros(2 * H * 10, dtype=torch.float64))
    assert torch.allclose(out_w, out, atol=1e-12)


@pytest.mark.parametrize("qkv_bias", [False, True])
def test_pytorch_class_equals_combined_with_copied_weights(qkv_bias):
    combined = make(qkv_bias=qkv_bias)
    pytorch = make(MHAPyTorchClass, qkv_bias=qkv_bias, seed=1)
    mha = pytorch.multihead_attn
    with torch.no_grad():
        # in_proj_weight stacks q, k, v rows exactly as qkv.weight does (the 3 is outermost).
        mha.in_proj_weight.copy_(combined.qkv.weight)
        mha.out_proj.weight.copy_(torch.eye(E))  # its own output projection, then proj: make it the identity
        if qkv_bias:
            mha.in_proj_bias.copy_(combined.qkv.bias)
            mha.out_proj.bias.zero_()
        pytorch.proj.load_state_dict(combined.proj.state_dict())
    x = rand(2, 5, E)
    out, weights = pytorch(x)
    assert torch.allclose(out, combined(x), atol=1e-12)
    q, k, _ = torch.nn.functional.linear(x, combined.qkv.weight, combined.qkv.bias).view(2, 5, 3, H, D).permute(2, 0, 3, 1, 4)
    _, expected_weights = core.sdpa_reference(q, k, k, is_causal=True, return_weights=True)
    assert torch.allclose(weights, expected_weights, atol=1e-12)


@pytest.mark.parametrize("d_in", [E, 5])
@pytest.mark.parametrize("qkv_bias", [False, True])
def test_combined_equals_llms_from_scratch_chapter_3(d_in, qkv_bias):
    """Chapter 3's class with separate W_query/W_key/W_value; d_in != d_out is where upstream's
    combined class breaks (it reshapes with d_in)."""
    from llms_from_scratch import ch03  # a test dependency (make setup installs it)
    ours = make(d_in=d_in, qkv_bias=qkv_bias, dtype=torch.float32)
    theirs = ch03.MultiHeadAttention(d_in, E, context_length=C, dropout=0.0, num_heads=H, qkv_bias=qkv_bias).eval()
    with torch.no_grad():
        for i, name in enumerate(("W_query", "W_key", "W_value")):  # qkv's rows in thirds: q, k, v
            getattr(theirs, name).weight.copy_(ours.qkv.weight[i * E:(i + 1) * E])
            if qkv_bias:
                getattr(theirs, name).bias.copy_(ours.qkv.bias[i * E:(i + 1) * E])
        theirs.out_proj.load_state_dict(ours.proj.state_dict())
    x = torch.randn(2, 5, d_in)
    assert torch.allclose(ours(x), theirs(x), atol=1e-5)


def test_unpacking_a_need_weights_false_output_silently_splits_the_batch():
    """The seed's mis-unpacking: upstream always returns one tensor, and ``out, w = module(x)``
    on a batch of 2 "works" by splitting the batch axis. attnref's need_weights=True returns a
    real (out, weights) pair."""
    module = make(MHAPyTorchClass, need_weights=False)
    x = rand(2, 5, E)
    full = module(x)
    out, w = full  # no error: iterates over dim 0
    assert torch.equal(out, full[0]) and torch.equal(w, full[1])
    assert w.shape == (5, E)  # the second sequence's output, not attention weights
    module.need_weights = True
    out, w = module(x)
    assert out.shape == (2, 5, E) and w.shape == (2, H, 5, 5)


# -- gradients, dtypes, determinism -----------------------------------------------------------


@pytest.mark.parametrize("implementation", core.IMPLEMENTATIONS)
def test_gradcheck_combined(implementation):
    module = make(qkv_bias=True)
    module.attn_implementation = implementation
    x = rand(1, 4, E).requires_grad_()
    assert torch.autograd.gradcheck(module, (x,))


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_within_tolerance_of_float32(cls, dtype):
    extra = {"need_weights": False} if cls is MHAPyTorchClass else {}
    module = make(cls, dtype=torch.float32, **extra)
    x = torch.randn(2, 5, E)
    expected = module(x)
    out = module.to(dtype)(x.to(dtype))
    assert out.dtype == dtype
    assert torch.allclose(out.float(), expected, atol=LOW_PRECISION_ATOL[dtype], rtol=0)


@pytest.mark.parametrize("cls", CLASSES)
def test_determinism_and_dropout(cls):
    extra = {"need_weights": False} if cls is MHAPyTorchClass else {}
    x = rand(2, 5, E)
    no_dropout = make(cls, **extra).train()
    assert torch.equal(no_dropout(x), no_dropout(x))

    module = make(cls, dropout=0.3, **extra).train()
    torch.manual_seed(1)
    first = module(x)
    torch.manual_seed(1)
    assert torch.equal(module(x), first)
    torch.manual_seed(2)
    assert not torch.equal(module(x), first)

    module.eval()  # same weights as no_dropout (same seed): eval switches dropout off
    assert torch.equal(module(x), module(x))
    assert torch.allclose(module(x), no_dropout(x), atol=1e-12)


# -- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(
    "args,kwargs,error,message",
    [
        ((8, 0, 2, 6), {}, ValueError, r"d_out: expected a positive int, got 0"),
        ((8, 9, 2, 6), {}, ValueError, r"d_out: expected a multiple of num_heads=2, got 9"),
        ((8.0, 8, 2, 6), {}, TypeError, r"d_in: expected an int, got float 8.0"),
        ((8, 8, 0, 6), {}, ValueError, r"num_heads: expected a positive int, got 0"),
        ((8, 8, 2, -1), {}, ValueError, r"context_length: expected a positive int, got -1"),
        ((8, 8, 2, 6), {"dropout": 1.5}, ValueError, r"dropout: expected a float in \[0, 1\), got 1.5"),
        ((8, 8, 2, 6), {"qkv_bias": 1}, TypeError, r"qkv_bias: expected a bool, got int 1"),
    ],
)
def test_bad_constructor_arguments(cls, args, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls(*args, **kwargs)


def test_bad_pytorch_class_arguments():
    with pytest.raises(ValueError, match=r"d_in: expected d_in == d_out=8 \(nn.MultiheadAttention has one embed_dim\), got 6"):
        MHAPyTorchClass(6, 8, 2, 6)
    with pytest.raises(TypeError, match=r"need_weights: expected a bool, got str 'no'"):
        MHAPyTorchClass(8, 8, 2, 6, need_weights="no")


@pytest.mark.parametrize("cls", CLASSES)
def test_longer_than_context_length_is_refused_by_name(cls):
    with pytest.raises(ValueError, match=rf"x: expected length L <= context_length={C}, got {C + 1}"):
        make(cls)(rand(1, C + 1, E))


@pytest.mark.parametrize("cls", CLASSES)
def test_bad_forward_input(cls):
    module = make(cls)
    with pytest.raises(TypeError, match=r"x: expected a torch.Tensor, got list"):
        module([[1.0]])
    with pytest.raises(TypeError, match=r"x: expected a floating-point tensor, got torch.int64"):
        module(torch.ones(2, 3, E, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, L, d_in\) with d_in=8 \(3 dims\), got \(3, 8\) \(2 dims\)"):
        module(rand(3, E))
    with pytest.raises(ValueError, match=r"x: expected shape \(B, L, d_in\) with d_in=8, got \(2, 3, 7\)"):
        module(rand(2, 3, 7))
    with pytest.raises(TypeError, match=r"x: expected dtype torch.float64 \(the dtype of the module's weights\), got torch.float32"):
        module(torch.randn(2, 3, E))


def test_bad_attn_implementation():
    module = make()
    module.attn_implementation = "flash"
    with pytest.raises(ValueError, match=r"attn_implementation: expected one of \('sdpa', 'eager'\), got 'flash'"):
        module(rand(1, 3, E))
