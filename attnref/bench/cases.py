"""What the forward benchmark measures: the cases, the shape they run at, and their FLOP count.

A *case* is one callable computing attention from ``(B, L, E)`` inputs (or q, k, v for Flux): an
attnref module on its default ``"sdpa"`` path or its ``"eager"`` path, or a torch-native baseline
that computes the same function (``torch.*``, and transformers' own ``LlamaAttention``). Each case
also says how to judge it: which baselines compute the same function, and which bare
"projections + kernel" baseline its overhead is measured against.

Shapes use [`attnref.core`][attnref.core]'s letters: B batch, L sequence length (self-attention,
so the key length is L too), E model dim, H query heads, G key/value heads (GQA cases), D = E / H
head dim.

**FLOPs** are counted analytically, as the useful work of the function (what a perfect kernel must
do, independent of the path that runs it): a matmul of ``(m, k) @ (k, n)`` is ``2 m k n``.

- projections: ``2 B L E D (2 H + 2 G)`` (q and out have ``H D`` channels, k and v ``G D``), plus
  ``2 B L E^2`` for the cases that apply one more ``Linear(E, E)`` (``MHAPyTorchClass``);
- attention: ``4 B H D P`` for ``q k^T`` and ``weights v``, with ``P`` the number of (query, key)
  pairs: ``L^2``, or ``L (L + 1) / 2`` for causal attention (masked pairs are not useful work);
- softmax, RoPE, norms and masks are not counted (a few FLOPs per element, not per pair x D);
- ``fwd+bwd`` is 3 x ``fwd``: the backward of a matmul is two matmuls of the same size.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnref import esm, flux, fused_qkv, happy_llm, llama

__all__ = ["Shape", "Case", "make_cases", "flops", "has_transformers"]


@dataclass(frozen=True)
class Shape:
    """One benchmark shape.

    Args:
        B: batch size.
        L: sequence length (queries and keys).
        E: model dim, a multiple of ``H``.
        H: query heads.
        G: key/value heads of the GQA cases, dividing ``H``.
    """

    B: int
    L: int
    E: int
    H: int
    G: int

    @property
    def D(self) -> int:
        """Head dim ``E // H``."""
        return self.E // self.H


@dataclass
class Case:
    """A benchmarked callable and how to judge it.

    Args:
        name: the case's name in results and in ``--cases``.
        kind: ``"attnref"`` or ``"torch"`` (a torch-native baseline, or transformers').
        description: what runs, in a few words.
        build: ``build(shape, device, dtype)`` returns ``(module, make_inputs)``; ``make_inputs()``
            returns the positional arguments of one call.
        causal: whether the function is causal (for the FLOP count).
        kv_heads: whether k/v have G heads (GQA) rather than H.
        projections: whether the case includes the q/k/v/out projections.
        extra_proj: whether it applies one more ``Linear(E, E)`` after the attention output.
        eager: True for an attnref module's explicit (``"eager"``) path.
        same_function: torch-native cases computing the same function (target ``vs_native``).
        bare: the projections + kernel baseline its overhead is measured against.
        quadratic: the path materialises ``L x L`` weights (eager paths, ``need_weights=True``).
        note: why no torch-native path computes the same function, where none does.
    """

    name: str
    kind: str
    description: str
    build: Callable
    causal: bool
    kv_heads: bool = False
    projections: bool = True
    extra_proj: bool = False
    eager: bool = False
    same_function: tuple[str, ...] = ()
    bare: str | None = None
    quadratic: bool = False
    note: str = ""


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------


def _x(shape: Shape, device, dtype) -> Callable[[], tuple]:
    x_BLE = torch.randn(shape.B, shape.L, shape.E, device=device, dtype=dtype)
    return lambda: (x_BLE,)


def _esm(impl: str):
    def build(shape, device, dtype):
        m = esm.MultiHeadAttention(shape.E, shape.H)
        m.attn_implementation = impl
        return m, _x(shape, device, dtype)
    return build


def _flux_axes(D: int) -> list[int]:
    # Flux's three position axes (time/text index, row, column), scaled to head dim D.
    side = (D * 3 // 8) // 2 * 2
    return [a for a in (D - 2 * side, side, side) if a > 0]


def _flux(impl: str):
    def build(shape, device, dtype):
        B, L, H, D = shape.B, shape.L, shape.H, shape.D
        axes = _flux_axes(D)
        side = max(1, math.isqrt(L))
        pos_L = torch.arange(L)
        ids_BLN = torch.stack([torch.zeros(L), pos_L // side, pos_L % side][-len(axes):], dim=-1)
        # pe is computed once per model forward and shared by all blocks, so outside the timing.
        pe = flux.EmbedND(D, 10000, axes)(ids_BLN[None].float()).to(device)
        q, k, v = (torch.randn(B, H, L, D, device=device, dtype=dtype) for _ in range(3))

        class FluxAttention(nn.Module):
            def forward(self, q, k, v):
                return flux.attention(q, k, v, pe, implementation=impl)

        return FluxAttention(), lambda: (q, k, v)
    return build


def _llama(impl: str, gqa: bool):
    def build(shape, device, dtype):
        m = llama.LlamaAttention(shape.E, shape.H, num_kv_heads=shape.G if gqa else shape.H)
        m.attn_implementation = impl
        return m, _x(shape, device, dtype)
    return build


def _happy(impl: str):
    def build(shape, device, dtype):
        args = happy_llm.ModelArgs(dim=shape.E, n_heads=shape.H, max_seq_len=shape.L)
        m = happy_llm.MultiHeadAttention(args, is_causal=True)
        m.attn_implementation = impl
        x_BLE = torch.randn(shape.B, shape.L, shape.E, device=device, dtype=dtype)
        return m, lambda: (x_BLE, x_BLE, x_BLE)
    return build


def _fused(impl: str):
    def build(shape, device, dtype):
        m = fused_qkv.MultiHeadAttentionCombinedQKV(shape.E, shape.E, shape.H, context_length=shape.L)
        m.attn_implementation = impl
        return m, _x(shape, device, dtype)
    return build


def _mha_class(need_weights: bool):
    def build(shape, device, dtype):
        m = fused_qkv.MHAPyTorchClass(shape.E, shape.E, shape.H, shape.L, need_weights=need_weights)
        return m, _x(shape, device, dtype)
    return build


class _TorchMHA(nn.Module):
    """``nn.MultiheadAttention`` as its documentation says to run it causally."""

    def __init__(self, shape: Shape, need_weights: bool, extra_proj: bool) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(shape.E, shape.H, bias=False, batch_first=True)
        self.proj = nn.Linear(shape.E, shape.E) if extra_proj else None
        self.need_weights = need_weights
        # True = blocked, nn.MultiheadAttention's convention; built once, outside the timing.
        self.register_buffer("mask", torch.ones(shape.L, shape.L, dtype=torch.bool).triu(1))

    def forward(self, x: Tensor):
        # is_causal=True is a hint: without need_weights the mask is dropped and SDPA runs with
        # is_causal=True; with need_weights the mask is applied in the explicit path.
        out, weights = self.attn(x, x, x, attn_mask=self.mask, is_causal=True,
                                 need_weights=self.need_weights, average_attn_weights=False)
        if self.proj is not None:
            out = self.proj(out)
        return (out, weights) if self.need_weights else out


def _torch_mha(need_weights: bool, extra_proj: bool = False):
    def build(shape, device, dtype):
        return _TorchMHA(shape, need_weights, extra_proj), _x(shape, device, dtype)
    return build


class _BareSDPA(nn.Module):
    """Projections + ``F.scaled_dot_product_attention``, nothing else: the floor for a module."""

    def __init__(self, shape: Shape, causal: bool, gqa: bool) -> None:
        super().__init__()
        self.H, self.D = shape.H, shape.D
        self.G = shape.G if gqa else shape.H
        self.causal = causal
        self.q = nn.Linear(shape.E, self.H * self.D, bias=False)
        self.k = nn.Linear(shape.E, self.G * self.D, bias=False)
        self.v = nn.Linear(shape.E, self.G * self.D, bias=False)
        self.o = nn.Linear(self.H * self.D, shape.E, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        q = self.q(x).view(B, L, self.H, self.D).transpose(1, 2)
        k = self.k(x).view(B, L, self.G, self.D).transpose(1, 2)
        v = self.v(x).view(B, L, self.G, self.D).transpose(1, 2)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal, enable_gqa=self.G != self.H)
        return self.o(out.transpose(1, 2).reshape(B, L, self.H * self.D))


def _bare(causal: bool, gqa: bool = False):
    def build(shape, device, dtype):
        return _BareSDPA(shape, causal, gqa), _x(shape, device, dtype)
    return build


class _KernelOnly(nn.Module):
    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        out_BHLD = F.scaled_dot_product_attention(q, k, v)
        B, H, L, D = out_BHLD.shape
        return out_BHLD.transpose(1, 2).reshape(B, L, H * D)


def _kernel_only(shape, device, dtype):
    q, k, v = (torch.randn(shape.B, shape.H, shape.L, shape.D, device=device, dtype=dtype) for _ in range(3))
    return _KernelOnly(), lambda: (q, k, v)


def _transformers_llama(gqa: bool):
    def build(shape, device, dtype):
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

        config = LlamaConfig(
            hidden_size=shape.E, num_attention_heads=shape.H,
            num_key_value_heads=shape.G if gqa else shape.H, attention_bias=False,
            max_position_embeddings=max(shape.L, 2048),
        )
        config._attn_implementation = "sdpa"
        m = LlamaAttention(config, layer_idx=0)
        x_BLE = torch.randn(shape.B, shape.L, shape.E, device=device, dtype=dtype)
        # The model computes cos/sin once per forward for all layers: outside the timing.
        rotary = LlamaRotaryEmbedding(config).to(device)
        cos, sin = rotary(x_BLE, torch.arange(shape.L, device=device)[None])

        class HFLlama(nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = m

            def forward(self, x):
                return self.inner(x, position_embeddings=(cos, sin), attention_mask=None)[0]

        return HFLlama(), lambda: (x_BLE,)
    return build


def has_transformers() -> bool:
    """Whether transformers is installed, for its cases (and the decode benchmark's variants)."""
    return importlib.util.find_spec("transformers") is not None


def make_cases() -> dict[str, Case]:
    """Every case the benchmark knows, by name, in the order they run.

    Returns:
        ``{name: Case}``. Names in brackets are variants: ``[eager]`` is the module's explicit
        path, ``[nw=...]`` the ``need_weights`` flag, ``[mha]``/``[gqa]`` LLaMA's head layout.
        The transformers cases are present only when transformers is importable.
    """
    causal_natives = ("torch.mha[nw=False]", "torch.sdpa[causal]")
    cases = [
        Case("esm", "attnref", "esm.MultiHeadAttention (pre-LN, QK-LN, RoPE)", _esm("sdpa"), causal=False,
             bare="torch.sdpa[full]",
             note="no torch-native path computes ESM's function (LayerNorms, RoPE)"),
        Case("esm[eager]", "attnref", "esm.MultiHeadAttention, eager", _esm("eager"), causal=False, eager=True,
             bare="torch.sdpa[full]", quadratic=True),
        Case("flux", "attnref", "flux.attention with pe (no projections)", _flux("sdpa"), causal=False,
             projections=False, bare="torch.sdpa[kernel]",
             note="no torch-native path computes Flux's function (2x2 RoPE matrices)"),
        Case("flux[eager]", "attnref", "flux.attention, eager", _flux("eager"), causal=False, projections=False,
             eager=True, bare="torch.sdpa[kernel]", quadratic=True),
        Case("llama[mha]", "attnref", "llama.LlamaAttention, G = H", _llama("sdpa", False), causal=True,
             same_function=("transformers.llama[mha]",), bare="torch.sdpa[causal]"),
        Case("llama[mha][eager]", "attnref", "llama.LlamaAttention, G = H, eager", _llama("eager", False),
             causal=True, eager=True, bare="torch.sdpa[causal]", quadratic=True),
        Case("llama[gqa]", "attnref", "llama.LlamaAttention, G < H", _llama("sdpa", True), causal=True,
             kv_heads=True, same_function=("transformers.llama[gqa]",), bare="torch.sdpa[gqa]"),
        Case("llama[gqa][eager]", "attnref", "llama.LlamaAttention, G < H, eager", _llama("eager", True),
             causal=True, kv_heads=True, eager=True, bare="torch.sdpa[gqa]", quadratic=True),
        Case("happy_llm", "attnref", "happy_llm.MultiHeadAttention, causal", _happy("sdpa"), causal=True,
             same_function=causal_natives, bare="torch.sdpa[causal]"),
        Case("happy_llm[eager]", "attnref", "happy_llm.MultiHeadAttention, causal, eager", _happy("eager"),
             causal=True, eager=True, bare="torch.sdpa[causal]", quadratic=True),
        Case("fused_qkv", "attnref", "fused_qkv.MultiHeadAttentionCombinedQKV", _fused("sdpa"), causal=True,
             same_function=causal_natives, bare="torch.sdpa[causal]"),
        Case("fused_qkv[eager]", "attnref", "fused_qkv.MultiHeadAttentionCombinedQKV, eager", _fused("eager"),
             causal=True, eager=True, bare="torch.sdpa[causal]", quadratic=True),
        Case("mha_pytorch_class[nw=False]", "attnref", "fused_qkv.MHAPyTorchClass, need_weights=False",
             _mha_class(False), causal=True, extra_proj=True, same_function=("torch.mha+proj[nw=False]",),
             bare="torch.mha+proj[nw=False]"),
        Case("mha_pytorch_class[nw=True]", "attnref", "fused_qkv.MHAPyTorchClass, need_weights=True",
             _mha_class(True), causal=True, extra_proj=True, same_function=("torch.mha+proj[nw=True]",),
             bare="torch.mha+proj[nw=True]", quadratic=True),
        Case("torch.sdpa[causal]", "torch", "q/k/v/out Linear + F.sdpa(is_causal=True)", _bare(True), causal=True),
        Case("torch.sdpa[full]", "torch", "q/k/v/out Linear + F.sdpa", _bare(False), causal=False),
        Case("torch.sdpa[gqa]", "torch",
             "q/k/v/out Linear (G kv heads) + F.sdpa(is_causal=True, enable_gqa=True)",
             _bare(True, gqa=True), causal=True, kv_heads=True),
        Case("torch.sdpa[kernel]", "torch", "F.sdpa alone, heads merged", _kernel_only, causal=False,
             projections=False),
        Case("torch.mha[nw=False]", "torch", "nn.MultiheadAttention(batch_first=True), need_weights=False",
             _torch_mha(False), causal=True),
        Case("torch.mha[nw=True]", "torch", "nn.MultiheadAttention(batch_first=True), need_weights=True",
             _torch_mha(True), causal=True, quadratic=True),
        Case("torch.mha+proj[nw=False]", "torch", "nn.MultiheadAttention + Linear, need_weights=False",
             _torch_mha(False, True), causal=True, extra_proj=True),
        Case("torch.mha+proj[nw=True]", "torch", "nn.MultiheadAttention + Linear, need_weights=True",
             _torch_mha(True, True), causal=True, extra_proj=True, quadratic=True),
    ]
    if has_transformers():
        cases += [
            Case("transformers.llama[mha]", "torch", "transformers LlamaAttention (sdpa), G = H",
                 _transformers_llama(False), causal=True),
            Case("transformers.llama[gqa]", "torch", "transformers LlamaAttention (sdpa), G < H",
                 _transformers_llama(True), causal=True, kv_heads=True),
        ]
    return {c.name: c for c in cases}


# --------------------------------------------------------------------------------------------
# FLOP count
# --------------------------------------------------------------------------------------------


def flops(case: Case, shape: Shape, mode: str) -> float:
    """Useful floating-point operations of one call (see the module docstring for the formula).

    Args:
        case: the case (its ``causal``, ``kv_heads``, ``projections`` and ``extra_proj`` matter).
        shape: the shape.
        mode: ``"fwd"`` or ``"fwd+bwd"`` (3 x the forward).

    Returns:
        FLOPs as a float.
    """
    B, L, E, H, D = shape.B, shape.L, shape.E, shape.H, shape.D
    G = shape.G if case.kv_heads else H
    proj = 2 * B * L * E * D * (2 * H + 2 * G) if case.projections else 0
    proj += 2 * B * L * E * E if case.extra_proj else 0
    pairs = L * (L + 1) / 2 if case.causal else L * L
    total = proj + 4 * B * H * D * pairs
    return float(total * (3 if mode == "fwd+bwd" else 1))

