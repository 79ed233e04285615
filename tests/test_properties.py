"""Property tests (hypothesis): random shapes, masks and dtypes.

- every attention path (``core.attend`` with both kernels, each module with both kernels) equals
  :func:`attnref.core.sdpa_reference` in float64, the expected output composed from the module's own
  weights through ``core`` functions;
- the weight conversions of :mod:`attnref.convert` and the RoPE row permutations round-trip exactly;
- malformed shapes raise ``ValueError``/``TypeError`` whose message starts with the argument's name.

Profiles: ``ci`` (default: few examples, derandomized so CI is reproducible) and ``dev`` (many
examples); pick one with ``HYPOTHESIS_PROFILE=dev``.
"""

import os

import einops
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnref import convert, core, esm, flux, fused_qkv, happy_llm, llama

settings.register_profile(
    "ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

F64 = torch.float64
IMPLEMENTATIONS = core.IMPLEMENTATIONS
# Output tolerance (absolute, outputs are O(1)) of each dtype against the float64 composition.
ATOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 3e-2}

seeds = st.integers(0, 2**31 - 1)
head_dims = st.sampled_from([2, 4, 6, 8])


def randn(gen, *shape, dtype=F64):
    return torch.randn(*shape, generator=gen, dtype=F64).to(dtype)


def random_bool(gen, shape, p_true=0.7):
    return torch.rand(shape, generator=gen) < p_true


def randomise(module, gen, std=0.4):
    """Random values in every parameter (LayerNorm weights included), so nothing is trivially 1."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(randn(gen, *p.shape, dtype=p.dtype) * std)
    return module.eval()


def broadcast_mask(draw, gen, full_shape):
    """None, or a random boolean mask whose dims are each 1 or the full size (right-aligned)."""
    if not draw(st.booleans()):
        return None
    ndim = draw(st.integers(2, len(full_shape)))
    shape = [draw(st.sampled_from([1, n])) for n in full_shape[-ndim:]]
    return random_bool(gen, shape)


def check(out, expected, dtype):
    torch.testing.assert_close(out.to(F64), expected, rtol=0, atol=ATOL[dtype])


# --------------------------------------------------------------------------------------------
# core.attend against the float64 reference
# --------------------------------------------------------------------------------------------


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), G=st.integers(1, 3), n_rep=st.integers(1, 3),
    L=st.integers(1, 7), S=st.integers(1, 9), D=head_dims, is_causal=st.booleans(),
    dtype=st.sampled_from([F64, torch.float32, torch.float16, torch.bfloat16]),
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_attend_equals_float64_reference(data, seed, B, G, n_rep, L, S, D, is_causal, dtype, implementation):
    if is_causal:
        S = max(S, L)  # keys include every query position
    gen = torch.Generator().manual_seed(seed)
    H = G * n_rep
    q_BHLD = randn(gen, B, H, L, D, dtype=dtype)
    k_BGSD, v_BGSD = randn(gen, B, G, S, D, dtype=dtype), randn(gen, B, G, S, D, dtype=dtype)
    mask = broadcast_mask(data.draw, gen, (B, H, L, S))
    k_BHSD, v_BHSD = core.repeat_kv(k_BGSD, n_rep), core.repeat_kv(v_BGSD, n_rep)
    out = core.attend(q_BHLD, k_BHSD, v_BHSD, mask, is_causal=is_causal, implementation=implementation)

    # Expected: the causal mask spelled out (bottom-right), then the float64 reference.
    full = torch.ones(L, S, dtype=torch.bool) if mask is None else mask
    full = full & core.causal_mask(L, S) if is_causal else full
    expected = core.sdpa_reference(q_BHLD.to(F64), k_BHSD.to(F64), v_BHSD.to(F64), full)
    assert out.dtype == dtype and out.shape == (B, H, L, D)
    check(out, expected, dtype)


# --------------------------------------------------------------------------------------------
# Modules against a composition of core functions in float64
# --------------------------------------------------------------------------------------------

module_dtypes = st.sampled_from([F64, torch.float32])


def _cos_sin_f32(angles_f32):
    """cos/sin the way the modules tabulate them: angles and cos/sin in float32, then float64."""
    return angles_f32.cos().to(F64), angles_f32.sin().to(F64)


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), L=st.integers(1, 8), H=st.integers(1, 3), D=head_dims,
    bias=st.booleans(), qk_layernorm=st.booleans(), dtype=module_dtypes,
    implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_esm_equals_core_composition(data, seed, B, L, H, D, bias, qk_layernorm, dtype, implementation):
    gen = torch.Generator().manual_seed(seed)
    E = H * D
    module = randomise(esm.MultiHeadAttention(E, H, bias=bias, qk_layernorm=qk_layernorm), gen).to(dtype)
    module.attn_implementation = implementation
    x = randn(gen, B, L, E, dtype=dtype)
    seq_id = torch.randint(0, 3, (B, L), generator=gen) if data.draw(st.booleans()) else None
    out = module(x, seq_id)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    x64 = x.to(F64)
    eps = module.layernorm_qkv[0].eps
    h = F.layer_norm(x64, (E,), p["layernorm_qkv.0.weight"], p["layernorm_qkv.0.bias"], eps)
    q, k, v = F.linear(h, p["layernorm_qkv.1.weight"], p.get("layernorm_qkv.1.bias")).chunk(3, dim=-1)
    if qk_layernorm:
        q = F.layer_norm(q, (E,), p["q_ln.weight"], p.get("q_ln.bias"), module.q_ln.eps)
        k = F.layer_norm(k, (E,), p["k_ln.weight"], p.get("k_ln.bias"), module.k_ln.eps)
    cos, sin = _cos_sin_f32(core.rope_angles(torch.arange(L), D))
    q_BHLD, k_BHLD, v_BHLD = (einops.rearrange(t, "B L (H D) -> B H L D", H=H) for t in (q, k, v))
    q_BHLD = core.apply_rope_half_split(q_BHLD, cos, sin)
    k_BHLD = core.apply_rope_half_split(k_BHLD, cos, sin)
    mask = None if seq_id is None else core.seq_id_mask(seq_id)
    ctx = einops.rearrange(core.sdpa_reference(q_BHLD, k_BHLD, v_BHLD, mask), "B H L D -> B L (H D)")
    check(out, F.linear(ctx, p["out_proj.weight"], p.get("out_proj.bias")), dtype)


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), L=st.integers(1, 8), H=st.integers(1, 3),
    dtype=module_dtypes, implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_flux_equals_core_composition(data, seed, B, L, H, dtype, implementation):
    gen = torch.Generator().manual_seed(seed)
    axes_dim = data.draw(st.lists(st.sampled_from([2, 4, 6]), min_size=1, max_size=3))
    D, theta = sum(axes_dim), data.draw(st.sampled_from([10000, 500]))
    ids = torch.randint(0, 40, (B, L, len(axes_dim)), generator=gen).float()
    pe = flux.EmbedND(D, theta, axes_dim)(ids)
    if data.draw(st.booleans()):
        pe = pe[:1]  # B may be 1 in pe
        ids = ids[:1]
    q, k, v = (randn(gen, B, H, L, D, dtype=dtype) for _ in range(3))
    out = flux.attention(q, k, v, pe, implementation=implementation)

    # Each axis gets its own block of pairs; float32 ids give float32 angles, as in Flux.
    angles = torch.cat([core.rope_angles(ids[..., i], n, theta) for i, n in enumerate(axes_dim)], -1)
    cos, sin = (t.float().to(F64)[:, None] for t in (angles.cos(), angles.sin()))
    q64 = core.apply_rope_adjacent(q.to(F64), cos, sin)
    k64 = core.apply_rope_adjacent(k.to(F64), cos, sin)
    expected = einops.rearrange(core.sdpa_reference(q64, k64, v.to(F64)), "B H L D -> B L (H D)")
    check(out, expected, dtype)


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), L=st.integers(1, 6), past=st.integers(0, 5),
    G=st.integers(1, 2), n_rep=st.integers(1, 3), D=head_dims, E=st.integers(1, 12), bias=st.booleans(),
    dtype=module_dtypes, implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_llama_equals_core_composition(data, seed, B, L, past, G, n_rep, D, E, bias, dtype, implementation):
    gen = torch.Generator().manual_seed(seed)
    H = G * n_rep
    module = randomise(llama.LlamaAttention(E, H, num_kv_heads=G, head_dim=D, bias=bias), gen).to(dtype)
    module.attn_implementation = implementation
    S = past + L
    x_all = randn(gen, B, S, E, dtype=dtype)
    mask = broadcast_mask(data.draw, gen, (B, H, L, S))
    position_ids = None
    if past == 0 and data.draw(st.booleans()):
        position_ids = torch.randint(0, 50, (data.draw(st.sampled_from([1, B])), L), generator=gen)
    cache = llama.KVCache() if past else None
    if past:
        module(x_all[:, :past], kv_cache=cache)
    out = module(x_all[:, past:], position_ids=position_ids, attention_mask=mask, kv_cache=cache)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    x64 = x_all.to(F64)
    q = einops.rearrange(F.linear(x64[:, past:], p["q_proj.weight"], p.get("q_proj.bias")), "B L (H D) -> B H L D", D=D)
    k = einops.rearrange(F.linear(x64, p["k_proj.weight"], p.get("k_proj.bias")), "B S (G D) -> B G S D", D=D)
    v = einops.rearrange(F.linear(x64, p["v_proj.weight"], p.get("v_proj.bias")), "B S (G D) -> B G S D", D=D)
    if position_ids is None:
        cos, sin = _cos_sin_f32(core.rope_angles(torch.arange(S), D))
        q = core.apply_rope_half_split(q, cos[past:], sin[past:])
        k = core.apply_rope_half_split(k, cos, sin)
    else:
        cos, sin = _cos_sin_f32(core.rope_angles(position_ids, D)[:, None])
        q, k = core.apply_rope_half_split(q, cos, sin), core.apply_rope_half_split(k, cos, sin)
    full = core.causal_mask(L, S) if mask is None else mask & core.causal_mask(L, S)
    ctx = core.sdpa_reference(q, core.repeat_kv(k, n_rep), core.repeat_kv(v, n_rep), full)
    expected = F.linear(einops.rearrange(ctx, "B H L D -> B L (H D)"), p["o_proj.weight"], p.get("o_proj.bias"))
    check(out, expected, dtype)


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), L=st.integers(1, 6), S=st.integers(1, 8),
    H=st.integers(1, 3), D=head_dims, n_embd=st.integers(1, 10), is_causal=st.booleans(),
    dtype=module_dtypes, implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_happy_llm_equals_core_composition(data, seed, B, L, S, H, D, n_embd, is_causal, dtype, implementation):
    if is_causal:
        S = max(S, L)
    gen = torch.Generator().manual_seed(seed)
    args = happy_llm.ModelArgs(dim=H * D, n_heads=H, max_seq_len=8, n_embd=n_embd)
    module = randomise(happy_llm.MultiHeadAttention(args, is_causal=is_causal), gen).to(dtype)
    module.attn_implementation = implementation
    q_in, k_in, v_in = randn(gen, B, L, n_embd, dtype=dtype), randn(gen, B, S, n_embd, dtype=dtype), randn(gen, B, S, n_embd, dtype=dtype)
    out = module(q_in, k_in, v_in)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    q, k, v = (einops.rearrange(F.linear(t.to(F64), p[f"{w}.weight"]), "B N (H D) -> B H N D", H=H)
               for t, w in ((q_in, "wq"), (k_in, "wk"), (v_in, "wv")))
    mask = core.causal_mask(L, S) if is_causal else None
    ctx = einops.rearrange(core.sdpa_reference(q, k, v, mask), "B H L D -> B L (H D)")
    check(out, F.linear(ctx, p["wo.weight"]), dtype)

    # The tutorial's attention function: output and weights are the reference's.
    out_fn, weights = happy_llm.attention(q, k, v)
    ref_out, ref_weights = core.sdpa_reference(q, k, v, return_weights=True)
    assert torch.equal(out_fn, ref_out) and torch.equal(weights, ref_weights)


@given(
    seed=seeds, B=st.integers(1, 3), L=st.integers(1, 8), H=st.integers(1, 3), D=head_dims,
    d_in=st.integers(1, 10), qkv_bias=st.booleans(), dtype=module_dtypes, implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_combined_qkv_equals_core_composition(seed, B, L, H, D, d_in, qkv_bias, dtype, implementation):
    gen = torch.Generator().manual_seed(seed)
    module = fused_qkv.MultiHeadAttentionCombinedQKV(d_in, H * D, H, context_length=8, qkv_bias=qkv_bias)
    module = randomise(module, gen).to(dtype)
    module.attn_implementation = implementation
    x = randn(gen, B, L, d_in, dtype=dtype)
    out = module(x)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    qkv = F.linear(x.to(F64), p["qkv.weight"], p.get("qkv.bias"))
    q, k, v = (einops.rearrange(t, "B L (H D) -> B H L D", H=H) for t in qkv.chunk(3, dim=-1))
    ctx = einops.rearrange(core.sdpa_reference(q, k, v, core.causal_mask(L)), "B H L D -> B L (H D)")
    check(out, F.linear(ctx, p["proj.weight"], p["proj.bias"]), dtype)


@given(
    seed=seeds, B=st.integers(1, 3), L=st.integers(1, 8), H=st.integers(1, 3), D=head_dims,
    qkv_bias=st.booleans(), need_weights=st.booleans(), dtype=module_dtypes,
)
def test_mha_pytorch_class_equals_core_composition(seed, B, L, H, D, qkv_bias, need_weights, dtype):
    gen = torch.Generator().manual_seed(seed)
    E = H * D
    module = fused_qkv.MHAPyTorchClass(E, E, H, context_length=8, qkv_bias=qkv_bias, need_weights=need_weights)
    module = randomise(module, gen).to(dtype)
    x = randn(gen, B, L, E, dtype=dtype)
    result = module(x)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    qkv = F.linear(x.to(F64), p["multihead_attn.in_proj_weight"], p.get("multihead_attn.in_proj_bias"))
    q, k, v = (einops.rearrange(t, "B L (H D) -> B H L D", H=H) for t in qkv.chunk(3, dim=-1))
    ctx, weights = core.sdpa_reference(q, k, v, core.causal_mask(L), return_weights=True)
    attn = F.linear(einops.rearrange(ctx, "B H L D -> B L (H D)"), p["multihead_attn.out_proj.weight"],
                    p.get("multihead_attn.out_proj.bias"))
    expected = F.linear(attn, p["proj.weight"], p["proj.bias"])
    if need_weights:
        assert isinstance(result, tuple) and len(result) == 2
        check(result[0], expected, dtype)
        check(result[1], weights, dtype)
    else:
        assert isinstance(result, torch.Tensor)
        check(result, expected, dtype)


@given(
    data=st.data(), seed=seeds, B=st.integers(1, 3), L=st.integers(1, 8), H=st.integers(1, 3), D=head_dims,
    dtype=module_dtypes, implementation=st.sampled_from(IMPLEMENTATIONS),
)
def test_simple_llama_equals_core_composition(data, seed, B, L, H, D, dtype, implementation):
    gen = torch.Generator().manual_seed(seed)
    E = H * D
    module = randomise(llama.SimpleLlamaAttention(E, H), gen).to(dtype)
    module.attn_implementation = implementation
    x = randn(gen, B, L, E, dtype=dtype)
    mask = broadcast_mask(data.draw, gen, (B, H, L, L))
    out = module(x, attention_mask=mask)

    p = {k: v.to(F64) for k, v in module.state_dict().items()}
    q, k, v = (einops.rearrange(F.linear(x.to(F64), p[f"{n}.weight"], p[f"{n}.bias"]), "B L (H D) -> B H L D", H=H)
               for n in ("query", "key", "value"))
    ctx = einops.rearrange(core.sdpa_reference(q, k, v, mask), "B H L D -> B L (H D)")
    check(out, F.linear(ctx, p["out_proj.weight"], p["out_proj.bias"]), dtype)


# --------------------------------------------------------------------------------------------
# Conversions round-trip exactly
# --------------------------------------------------------------------------------------------


def separate_form(gen, H, G, D, E_in, E_out, bias):
    sep = {
        "q.weight": randn(gen, H * D, E_in), "k.weight": randn(gen, G * D, E_in),
        "v.weight": randn(gen, G * D, E_in), "o.weight": randn(gen, E_out, H * D),
    }
    if bias:
        sep.update({"q.bias": randn(gen, H * D), "k.bias": randn(gen, G * D), "v.bias": randn(gen, G * D),
                    "o.bias": randn(gen, E_out)})
    return sep


def same(a, b):
    return set(a) == set(b) and all(torch.equal(a[key], b[key]) for key in a)


@given(seed=seeds, H=st.integers(1, 4), D=head_dims, E_in=st.integers(1, 9), bias=st.booleans())
def test_fused_mha_happy_esm_round_trip(seed, H, D, E_in, bias):
    gen = torch.Generator().manual_seed(seed)
    E = H * D
    # Square projections, G == H: every layout can hold these.
    sep = separate_form(gen, H, H, D, E, E, bias)

    assert same(convert.from_mha(convert.to_mha(sep)), sep)
    mha = fused_qkv.MHAPyTorchClass(E, E, H, context_length=4, qkv_bias=bias).double()
    mha.load_state_dict(convert.to_mha(sep, prefix="multihead_attn.") | {"proj.weight": mha.proj.weight,
                                                                        "proj.bias": mha.proj.bias,
                                                                        "mask": mha.mask})
    assert same(convert.from_mha(mha.state_dict(), prefix="multihead_attn."), sep)

    esm_sd = convert.to_esm(sep)
    esm.MultiHeadAttention(E, H, bias=bias).double().load_state_dict(esm_sd, strict=True)
    assert same(convert.from_esm(esm_sd), sep)

    # fused_qkv always has proj.bias (zeros when the source has none); any input width works.
    sep_in = separate_form(gen, H, H, D, E_in, E, bias)
    fused = fused_qkv.MultiHeadAttentionCombinedQKV(E_in, E, H, context_length=4, qkv_bias=bias).double()
    fused.load_state_dict(convert.to_fused_qkv(sep_in), strict=False)
    back = convert.from_fused_qkv(fused.state_dict())
    expected = dict(sep_in) if bias else sep_in | {"o.bias": torch.zeros(E, dtype=F64)}
    assert same(back, expected)

    no_bias = {key: t for key, t in sep_in.items() if key.endswith("weight")}
    happy = happy_llm.MultiHeadAttention(happy_llm.ModelArgs(dim=E, n_heads=H, max_seq_len=4, n_embd=E_in)).double()
    happy.load_state_dict(convert.to_happy_llm(no_bias), strict=True)
    assert same(convert.from_happy_llm(happy.state_dict()), no_bias)


@given(
    seed=seeds, G=st.integers(1, 3), n_rep=st.integers(1, 3), D=head_dims, E=st.integers(1, 9),
    bias=st.booleans(),
)
def test_llama_round_trip_and_rope_permutations_invert(seed, G, n_rep, D, E, bias):
    gen = torch.Generator().manual_seed(seed)
    H = G * n_rep
    sep = separate_form(gen, H, G, D, E, E, bias)
    module = llama.LlamaAttention(E, H, num_kv_heads=G, head_dim=D, bias=bias).double()
    module.load_state_dict(convert.to_llama(sep), strict=True)
    assert same(convert.from_llama(module.state_dict()), sep)

    half = convert.adjacent_to_half_split(sep, H, G)
    assert same(convert.half_split_to_adjacent(half, H, G), sep)
    assert same(convert.adjacent_to_half_split(convert.half_split_to_adjacent(sep, H, G), H, G), sep)
    for name in ("v.weight", "o.weight"):
        assert torch.equal(half[name], sep[name])  # only q and k rows move


@given(seed=seeds, n_heads=st.integers(1, 4), D=head_dims, cols=st.integers(0, 5), L=st.integers(1, 6))
def test_core_rope_permutation_inverts_and_preserves_scores(seed, n_heads, D, cols, L):
    gen = torch.Generator().manual_seed(seed)
    w = randn(gen, n_heads * D, cols) if cols else randn(gen, n_heads * D)  # weight or bias
    assert torch.equal(core.half_split_to_adjacent(core.adjacent_to_half_split(w, n_heads), n_heads), w)
    assert torch.equal(core.adjacent_to_half_split(core.half_split_to_adjacent(w, n_heads), n_heads), w)

    # Scores of adjacent-pair RoPE on rows w equal half-split RoPE on the permuted rows.
    wq, wk, x = randn(gen, n_heads * D, 5), randn(gen, n_heads * D, 5), randn(gen, L, 5)
    cos, sin = (f(core.rope_angles(torch.arange(L), D, dtype=F64)) for f in (torch.cos, torch.sin))

    def scores(rope, wq, wk):
        q = rope(einops.rearrange(x @ wq.T, "L (H D) -> H L D", H=n_heads), cos, sin)
        k = rope(einops.rearrange(x @ wk.T, "L (H D) -> H L D", H=n_heads), cos, sin)
        return q @ k.transpose(-2, -1)

    adjacent = scores(core.apply_rope_adjacent, wq, wk)
    half = scores(core.apply_rope_half_split, core.adjacent_to_half_split(wq, n_heads),
                  core.adjacent_to_half_split(wk, n_heads))
    torch.testing.assert_close(half, adjacent, rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Malformed inputs name the argument
# --------------------------------------------------------------------------------------------


def bumped(draw, n, lowest=1):
    """A size different from ``n``, at least ``lowest`` (2 for masks: a 1 would broadcast)."""
    return draw(st.integers(lowest, n + 3).filter(lambda m: m != n))


def raises_naming(fn, name):
    with pytest.raises((ValueError, TypeError)) as info:
        fn()
    message = str(info.value)
    assert message.startswith(f"{name}: expected"), message


ATTEND_FAULTS = ["q_1d", "k_dim", "k_heads", "v_len", "k_dtype", "mask_shape", "mask_float"]


@pytest.mark.parametrize("fault", ATTEND_FAULTS)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@given(data=st.data(), B=st.integers(1, 2), H=st.integers(1, 3), L=st.integers(1, 4), S=st.integers(1, 4),
       D=head_dims)
def test_malformed_attend_inputs_name_the_argument(implementation, fault, data, B, H, L, S, D):
    q, k, v = torch.randn(B, H, L, D), torch.randn(B, H, S, D), torch.randn(B, H, S, D)
    args, name = dict(q=q, k=k, v=v, attn_mask=None), fault.split("_")[0]
    if fault == "q_1d":
        args["q"] = torch.randn(D)
    elif fault == "k_dim":
        args["k"] = torch.randn(B, H, S, bumped(data.draw, D))
    elif fault == "k_heads":
        args["k"] = torch.randn(B, bumped(data.draw, H), S, D)
    elif fault == "v_len":
        args["v"] = torch.randn(B, H, bumped(data.draw, S), D)
    elif fault == "k_dtype":
        args["k"] = k.double()
    elif fault == "mask_shape":
        args["attn_mask"], name = torch.ones(bumped(data.draw, L, 2), S, dtype=torch.bool), "attn_mask"
    else:
        args["attn_mask"], name = torch.zeros(L, S), "attn_mask"
    raises_naming(lambda: core.attend(**args, implementation=implementation), name)
    if fault != "mask_float":  # sdpa_reference accepts additive masks
        raises_naming(lambda: core.sdpa_reference(**args), name)


MODULE_FAULTS = [
    "esm_x", "esm_seq_id", "esm_seq_id_float", "flux_pe", "flux_k", "flux_v", "llama_x", "llama_mask",
    "llama_position_ids", "llama_cache", "happy_k", "happy_q_long", "happy_causal", "fused_x", "fused_long",
    "mha_x", "repeat_kv_x", "causal_S", "padding_lengths", "rope_cos", "rope_rows",
]


@pytest.mark.parametrize("case", MODULE_FAULTS)
@given(data=st.data(), B=st.integers(1, 2), H=st.integers(1, 3), L=st.integers(1, 4), D=head_dims)
def test_malformed_module_inputs_name_the_argument(case, data, B, H, L, D):
    E = H * D
    x = torch.randn(B, L, E)
    bad_E = torch.randn(B, L, bumped(data.draw, E))
    if case.startswith("esm"):
        module = esm.MultiHeadAttention(E, H)
        if case == "esm_x":
            raises_naming(lambda: module(bad_E), "x")
        elif case == "esm_seq_id":
            raises_naming(lambda: module(x, torch.zeros(B, bumped(data.draw, L), dtype=torch.long)), "seq_id")
        else:
            raises_naming(lambda: module(x, torch.zeros(B, L)), "seq_id")
    elif case.startswith("flux"):
        q = torch.randn(B, H, L, D)
        pe = flux.EmbedND(D, 10000, [D])(torch.zeros(B, L, 1))
        if case == "flux_pe":
            raises_naming(lambda: flux.attention(q, q, q, pe[:, 0]), "pe")  # the seed's pe: no head axis
        elif case == "flux_k":
            raises_naming(lambda: flux.attention(q, torch.randn(B, H, bumped(data.draw, L), D), q, pe), "k")
        else:
            raises_naming(lambda: flux.attention(q, q, torch.randn(B, H, L, D + 2), pe), "v")
    elif case.startswith("llama"):
        module = llama.LlamaAttention(E, H)
        if case == "llama_x":
            raises_naming(lambda: module(bad_E), "x")
        elif case == "llama_mask":
            bad = torch.ones(B, 1, L, bumped(data.draw, L, 2), dtype=torch.bool)
            raises_naming(lambda: module(x, attention_mask=bad), "attention_mask")
        elif case == "llama_position_ids":
            raises_naming(lambda: module(x, position_ids=torch.zeros(1, bumped(data.draw, L), dtype=torch.long)),
                          "position_ids")
        else:
            raises_naming(lambda: module(x, kv_cache={}), "kv_cache")
    elif case.startswith("happy"):
        module = happy_llm.MultiHeadAttention(happy_llm.ModelArgs(E, H, max_seq_len=4), is_causal=True)
        if case == "happy_k":
            raises_naming(lambda: module(x, bad_E, bad_E), "k")
        elif case == "happy_q_long":
            long = torch.randn(B, 5, E)
            raises_naming(lambda: module(long, long, long), "q")
        else:
            short = torch.randn(B, L - 1, E) if L > 1 else torch.randn(B, 1, E)
            q_in = x if L > 1 else torch.randn(B, 2, E)
            raises_naming(lambda: module(q_in, short, short), "k")  # causal needs S >= L
    elif case.startswith("fused"):
        module = fused_qkv.MultiHeadAttentionCombinedQKV(E, E, H, context_length=4)
        raises_naming(lambda: module(bad_E if case == "fused_x" else torch.randn(B, 5, E)), "x")
    elif case == "mha_x":
        module = fused_qkv.MHAPyTorchClass(E, E, H, context_length=4)
        raises_naming(lambda: module(bad_E), "x")
    elif case == "repeat_kv_x":
        raises_naming(lambda: core.repeat_kv(torch.randn(B, H, L), 2), "x")
    elif case == "causal_S":
        raises_naming(lambda: core.causal_mask(L + 1, data.draw(st.integers(1, L))), "S")
    elif case == "padding_lengths":
        raises_naming(lambda: core.padding_mask(torch.ones(B, 2, dtype=torch.long), L), "lengths")
    elif case == "rope_cos":
        cos = torch.ones(L, bumped(data.draw, D // 2, 2))
        raises_naming(lambda: core.apply_rope_half_split(torch.randn(B, H, L, D), cos, cos), "cos")
    else:
        rows = (H + 1) * D + 1  # not a multiple of n_heads = H + 1 >= 2
        raises_naming(lambda: core.adjacent_to_half_split(torch.randn(rows, 3), H + 1), "w.shape[0]")
