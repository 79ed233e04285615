"""Numerics across modules: half-precision error within the tolerances the numerics page states,
fully masked rows (zeros or an error, never NaN), and determinism with and without dropout.

The tolerances and the measurement live once, in ``docs/snippets/numerics_table.py``: the page
prints its table at build time and this file asserts every entry of it.
"""

import copy
import importlib.util

import pytest
import torch

from attnref import core, esm, flux, fused_qkv, happy_llm, llama
from conftest import DOCS

_spec = importlib.util.spec_from_file_location("numerics_table", DOCS / "snippets" / "numerics_table.py")
numerics_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(numerics_table)

cuda = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]
DEVICES = [pytest.param("cpu"), pytest.param("cuda", marks=cuda)]
IMPLEMENTATIONS = core.IMPLEMENTATIONS


# --------------------------------------------------------------------------------------------
# Half precision against float64
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", list(numerics_table.CASES))
@pytest.mark.parametrize("dtype", list(numerics_table.DTYPES))
@pytest.mark.parametrize("row,implementation", numerics_table.ROWS, ids=lambda x: str(x))
def test_half_precision_error_within_stated_tolerance(row, implementation, dtype, case, device):
    error = numerics_table.measure(row, implementation, dtype, case, device)
    tolerance = numerics_table.TOLERANCES[dtype][case]
    assert error == error, "NaN"
    assert error <= tolerance, f"{row} ({implementation}) {dtype} {case}: {error:.2e} > {tolerance:.1e}"


def test_every_row_dtype_and_case_has_a_tolerance():
    assert set(numerics_table.TOLERANCES) == set(numerics_table.DTYPES)
    for per_case in numerics_table.TOLERANCES.values():
        assert set(per_case) == set(numerics_table.CASES)


# --------------------------------------------------------------------------------------------
# Fully masked rows
# --------------------------------------------------------------------------------------------


def _qkv(B=2, H=2, L=3, S=5, D=4, dtype=torch.float32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, D, generator=gen).to(dtype) for n in (L, S, S)]


def _mask_with_empty_row(L=3, S=5):
    mask = torch.ones(L, S, dtype=torch.bool)
    mask[1] = False  # query 1 may attend to nothing
    return mask


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_attend_fully_masked_row_is_zero(implementation, dtype):
    q, k, v = _qkv(dtype=dtype)
    out = core.attend(q, k, v, _mask_with_empty_row(), implementation=implementation)
    assert not out.isnan().any()
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    assert out[:, :, [0, 2]].abs().sum() > 0


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_attend_fully_masked_row_with_causal_and_cache(implementation):
    # S > L: the causal part is bottom-right; the boolean mask empties query 0.
    q, k, v = _qkv(L=2, S=4)
    mask = torch.ones(2, 4, dtype=torch.bool)
    mask[0] = False
    out = core.attend(q, k, v, mask, is_causal=True, implementation=implementation)
    assert torch.equal(out[:, :, 0], torch.zeros_like(out[:, :, 0]))
    assert not out.isnan().any()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_attend_refuses_an_additive_mask(implementation):
    q, k, v = _qkv()
    with pytest.raises(TypeError, match=r"^attn_mask: expected a boolean mask"):
        core.attend(q, k, v, core.bool_to_additive(_mask_with_empty_row()), implementation=implementation)


def test_reference_fully_masked_row_bool_and_additive_minus_inf_give_zeros():
    q, k, v = _qkv()
    mask = _mask_with_empty_row()
    for m in (mask, core.bool_to_additive(mask)):
        out, weights = core.sdpa_reference(q, k, v, m, return_weights=True)
        assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
        assert torch.equal(weights[:, :, 1], torch.zeros_like(weights[:, :, 1]))
        assert not out.isnan().any() and not weights.isnan().any()


def test_reference_finfo_min_mask_counts_as_blocked():
    # Hugging Face blocks with finfo.min, not -inf: a plain softmax would average such a row;
    # attnref counts finfo.min as blocked (as additive_to_bool does) and gives zeros.
    q, k, v = _qkv()
    mask = _mask_with_empty_row()
    finfo_mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    out = core.sdpa_reference(q, k, v, finfo_mask)
    assert torch.equal(out[:, :, 1], torch.zeros_like(out[:, :, 1]))
    assert torch.allclose(out, core.sdpa_reference(q, k, v, core.additive_to_bool(finfo_mask)), atol=1e-6)


def test_reference_fully_masked_row_has_finite_gradients():
    # The backward of a softmax over a row of -inf is NaN; the reference must keep it out of
    # q.grad and k.grad for additive masks as well as boolean ones.
    mask = _mask_with_empty_row()
    for m in (mask, core.bool_to_additive(mask)):
        q, k, v = (t.double().requires_grad_() for t in _qkv())
        core.sdpa_reference(q, k, v, m).sum().backward()
        for name, t in (("q", q), ("k", k), ("v", v)):
            assert not t.grad.isnan().any(), f"{m.dtype} mask: NaN in {name}.grad"


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_attend_fully_masked_row_has_finite_gradients(implementation):
    q, k, v = (t.double().requires_grad_() for t in _qkv())
    core.attend(q, k, v, _mask_with_empty_row(), implementation=implementation).sum().backward()
    for t in (q, k, v):
        assert not t.grad.isnan().any()


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_padding_mask_with_a_zero_length_sequence(implementation):
    q, k, v = _qkv(B=3, L=5, S=5)
    mask = core.padding_mask(torch.tensor([5, 0, 2]), 5)
    out = core.attend(q, k, v, mask, implementation=implementation)
    assert torch.equal(out[1], torch.zeros_like(out[1]))  # nothing to attend to: zeros
    assert not out.isnan().any()
    expected = core.sdpa_reference(q[2:, :, :, :], k[2:, :, :2], v[2:, :, :2])
    torch.testing.assert_close(out[2:], expected)


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_llama_zero_length_sequence_gives_o_proj_bias(implementation, bias):
    torch.manual_seed(0)
    module = llama.LlamaAttention(16, 4, num_kv_heads=2, bias=bias).eval()
    module.attn_implementation = implementation
    x = torch.randn(3, 5, 16)
    out = module(x, attention_mask=core.padding_mask(torch.tensor([5, 0, 3]), 5))
    assert not out.isnan().any()
    expected = module.o_proj.bias.expand(5, 16) if bias else torch.zeros(5, 16)
    assert torch.equal(out[1], expected)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_llama_left_padding_and_causal_empty_rows(implementation):
    # Left padding: key j of sequence 1 is real only from j = 2 on; its queries 0 and 1 see only
    # padding under the causal mask, so their rows are fully masked.
    torch.manual_seed(0)
    module = llama.LlamaAttention(16, 4).eval()
    module.attn_implementation = implementation
    x = torch.randn(2, 4, 16)
    real_BS = torch.tensor([[True] * 4, [False, False, True, True]])
    out = module(x, attention_mask=real_BS[:, None, None, :])
    assert not out.isnan().any()
    assert torch.equal(out[1, :2], torch.zeros(2, 16))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_simple_llama_zero_length_sequence_gives_out_proj_bias(implementation):
    torch.manual_seed(0)
    module = llama.SimpleLlamaAttention(16, 4).eval()
    module.attn_implementation = implementation
    x = torch.randn(2, 5, 16)
    out = module(x, attention_mask=core.padding_mask(torch.tensor([0, 4]), 5))
    assert not out.isnan().any()
    assert torch.equal(out[0], module.out_proj.bias.expand(5, 16))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_esm_seq_id_never_empties_a_row(implementation):
    torch.manual_seed(0)
    seq_id = torch.randint(0, 4, (3, 7))
    assert core.seq_id_mask(seq_id).diagonal(dim1=-2, dim2=-1).all()  # every token sees itself
    module = esm.MultiHeadAttention(16, 2).eval()
    module.attn_implementation = implementation
    assert not module(torch.randn(3, 7, 16), seq_id).isnan().any()


# --------------------------------------------------------------------------------------------
# Determinism: one test per module
# --------------------------------------------------------------------------------------------

P = 0.3  # dropout probability for the training-mode checks


def _llama(p):
    return llama.LlamaAttention(16, 4, num_kv_heads=2, dropout=p), (torch.randn(2, 6, 16),)


def _simple_llama(p):
    return llama.SimpleLlamaAttention(16, 4, dropout=p), (torch.randn(2, 6, 16),)


def _happy_llm(p):
    x = torch.randn(2, 6, 16)
    return happy_llm.MultiHeadAttention(happy_llm.ModelArgs(16, 4, 8, dropout=p), is_causal=True), (x, x, x)


def _combined(p):
    return fused_qkv.MultiHeadAttentionCombinedQKV(16, 16, 4, 8, dropout=p), (torch.randn(2, 6, 16),)


def _mha(p):
    return fused_qkv.MHAPyTorchClass(16, 16, 4, 8, dropout=p, need_weights=False), (torch.randn(2, 6, 16),)


WITH_DROPOUT = {
    "llama.LlamaAttention": _llama,
    "llama.SimpleLlamaAttention": _simple_llama,
    "happy_llm.MultiHeadAttention": _happy_llm,
    "fused_qkv.MultiHeadAttentionCombinedQKV": _combined,
    "fused_qkv.MHAPyTorchClass": _mha,
}


def _implementations(module):
    return IMPLEMENTATIONS if hasattr(module, "attn_implementation") else ("torch",)


@pytest.mark.parametrize("name", list(WITH_DROPOUT))
def test_determinism_with_dropout(name):
    torch.manual_seed(0)
    module, inputs = WITH_DROPOUT[name](P)
    module0, _ = WITH_DROPOUT[name](0.0)
    module0.load_state_dict(module.state_dict())
    for implementation in _implementations(module):
        if implementation != "torch":
            module.attn_implementation = module0.attn_implementation = implementation
        # dropout 0: bit-identical across calls, in training mode too
        module0.train()
        assert torch.equal(module0(*inputs), module0(*inputs))
        # dropout > 0 in training mode: the output follows torch.manual_seed
        module.train()
        torch.manual_seed(1)
        a = module(*inputs)
        torch.manual_seed(1)
        b = module(*inputs)
        torch.manual_seed(2)
        c = module(*inputs)
        assert torch.equal(a, b), implementation
        assert not torch.equal(a, c), implementation
        # eval mode: no dropout anywhere, whatever the seed: equal to the p = 0 module
        module.eval()
        module0.eval()
        torch.manual_seed(3)
        d = module(*inputs)
        torch.manual_seed(4)
        assert torch.equal(d, module(*inputs))
        torch.testing.assert_close(d, module0(*inputs), rtol=0, atol=0)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_determinism_esm(implementation):
    # No dropout at all: training and eval mode give the same bits, call after call.
    torch.manual_seed(0)
    module = esm.MultiHeadAttention(16, 2)
    module.attn_implementation = implementation
    x, seq_id = torch.randn(2, 6, 16), torch.tensor([[0, 0, 0, 1, 1, 1]] * 2)
    train = module.train()(x, seq_id)
    assert torch.equal(train, module(x, seq_id))
    assert torch.equal(train, module.eval()(x, seq_id))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_determinism_flux(implementation):
    # flux.attention has no dropout: a pure function of its inputs.
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 8) for _ in range(3))
    pe = flux.EmbedND(8, 10000, [4, 4])(torch.randint(0, 9, (2, 6, 2)).float())
    first = flux.attention(q, k, v, pe, implementation=implementation)
    torch.manual_seed(123)
    assert torch.equal(first, flux.attention(q, k, v, pe, implementation=implementation))


def test_happy_llm_attention_function_dropout_follows_the_seed():
    torch.manual_seed(0)
    q, k, v = _qkv()
    dropout = torch.nn.Dropout(P).train()
    torch.manual_seed(5)
    a = happy_llm.attention(q, k, v, dropout)
    torch.manual_seed(5)
    b = happy_llm.attention(q, k, v, dropout)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    dropout.eval()
    assert all(torch.equal(x, y) for x, y in zip(happy_llm.attention(q, k, v, dropout), happy_llm.attention(q, k, v)))


def test_copy_of_a_module_gives_the_same_bits():
    # deepcopy (what the numerics table does) must not change the computation.
    torch.manual_seed(0)
    module = llama.LlamaAttention(16, 4).eval()
    x = torch.randn(1, 5, 16)
    assert torch.equal(module(x), copy.deepcopy(module)(x))
