"""Benchmark every attnref module against the PyTorch paths that compute the same function.

Run ``python -m attnref.bench --help`` for the options. For each *case* (an attnref module on its
default ``"sdpa"`` path or its ``"eager"`` path, or a torch-native baseline) and each *mode*
(``fwd``: forward under ``torch.no_grad``; ``fwd+bwd``: forward, then backward of the output) it
records the median time and its spread over repeats, tokens per second, achieved FLOP/s (and the
fraction of the GPU's peak where known) and the peak extra memory of one call. It then checks the
performance targets and writes everything to one JSON file plus a plot.

Shapes use [`attnref.core`][attnref.core]'s letters: B batch, L sequence length (self-attention, so the key
length is L too), E model dim, H query heads, G key/value heads (GQA cases), D = E / H head dim.

**FLOPs** are counted analytically, as the useful work of the function (what a perfect kernel must
do, independent of the path that runs it): a matmul of ``(m, k) @ (k, n)`` is ``2 m k n``.

- projections: ``2 B L E D (2 H + 2 G)`` (q and out have ``H D`` channels, k and v ``G D``), plus
  ``2 B L E^2`` for the cases that apply one more ``Linear(E, E)`` (``MHAPyTorchClass``);
- attention: ``4 B H D P`` for ``q k^T`` and ``weights v``, with ``P`` the number of (query, key)
  pairs: ``L^2``, or ``L (L + 1) / 2`` for causal attention (masked pairs are not useful work);
- softmax, RoPE, norms and masks are not counted (a few FLOPs per element, not per pair x D);
- ``fwd+bwd`` is 3 x ``fwd``: the backward of a matmul is two matmuls of the same size.

**Memory** is the peak of the call above what was allocated before it. On CUDA it is
``torch.cuda.max_memory_allocated()`` after ``torch.cuda.reset_peak_memory_stats()``, minus
``torch.cuda.memory_allocated()`` before. On CPU PyTorch keeps no allocator statistics, so the
resident set size (RSS) of the process is used: freed heap pages are returned to the OS first
(``malloc_trim(0)``), then the kernel's RSS high-water mark is reset (``echo 5 >
/proc/self/clear_refs``) and read back after the call (``VmHWM``); where that is not possible a
thread samples RSS with psutil every 0.5 ms. The CPU figure counts pages touched, so it is a
close but not exact measure of bytes allocated.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as _dt
import fnmatch
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from attnref import esm, flux, fused_qkv, happy_llm, llama

__all__ = [
    "Shape",
    "Case",
    "PEAK_TFLOPS",
    "TARGETS",
    "make_cases",
    "flops",
    "run_benchmark",
    "plot",
    "main",
]

PEAK_TFLOPS: dict[str, dict[str, float]] = {
    # Dense tensor-core peaks from the vendor data sheets (no 2:4 sparsity), TFLOP/s.
    "A100": {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5},
    "H100 PCIe": {"bfloat16": 756.0, "float16": 756.0, "float32": 51.0},
    "H100 NVL": {"bfloat16": 835.0, "float16": 835.0, "float32": 60.0},
    "H100": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "H200": {"bfloat16": 989.0, "float16": 989.0, "float32": 67.0},
    "L40S": {"bfloat16": 362.0, "float16": 362.0, "float32": 91.6},
    "L4": {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3},
    "A10": {"bfloat16": 125.0, "float16": 125.0, "float32": 31.2},
}
"""Peak dense TFLOP/s by GPU (matched as a substring of the device name, longest key first) and
dtype. Used only for the ``peak_fraction`` of CUDA results; CPUs have no entry."""

TARGETS = {
    "vs_native": 1.05,
    "overhead": 0.10,
    "memory_exponent": 1.3,
    "statistic": "min",
}
"""Performance targets: an attnref module takes at most ``vs_native`` x the time of the fastest
torch-native path computing the same function; the share of its time outside projections + kernel
is below ``overhead``; and its default path's memory grows like ``L^a`` with ``a`` at most
``memory_exponent`` (linear, against the eager path's ``a`` near 2). Times are compared by their
``statistic`` over the interleaved repeats: the minimum, because interference from other work on
the machine only ever adds time, so the fastest repeat is the best estimate of the code's own cost."""

PRESETS = {
    # Full on CUDA: milliseconds per call, so many repeats and both sweeps in both modes.
    "full-cuda": dict(shape="8,1024,768,12", warmup=3, repeats=20, seq_lens="128,256,512,1024,2048,4096,8192",
                      batch_sizes="1,2,4,8,16,32", sweep_batch=1, sweep_len=1024, modes="fwd,fwd+bwd",
                      sweep_modes="fwd,fwd+bwd"),
    # Full on CPU: seconds per call at the default shape; about 17 minutes on 2 cores.
    "full-cpu": dict(shape="8,1024,768,12", warmup=1, repeats=5, seq_lens="128,256,512,1024,2048,4096",
                     batch_sizes="1,2,4,8", sweep_batch=1, sweep_len=1024, modes="fwd,fwd+bwd", sweep_modes="fwd"),
    "quick": dict(shape="2,512,768,12", warmup=1, repeats=3, seq_lens="128,256,512,1024",
                  batch_sizes="", sweep_batch=1, sweep_len=512, modes="fwd,fwd+bwd", sweep_modes="fwd"),
}

DEFAULT_SWEEP_CASES = (
    "fused_qkv", "fused_qkv[eager]", "llama[mha]", "llama[mha][eager]", "esm", "esm[eager]",
    "torch.sdpa[causal]", "torch.mha[nw=False]", "torch.mha[nw=True]",
)


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


def _has_transformers() -> bool:
    try:
        import transformers  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return False
    return True


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
    if _has_transformers():
        cases += [
            Case("transformers.llama[mha]", "torch", "transformers LlamaAttention (sdpa), G = H",
                 _transformers_llama(False), causal=True),
            Case("transformers.llama[gqa]", "torch", "transformers LlamaAttention (sdpa), G < H",
                 _transformers_llama(True), causal=True, kv_heads=True),
        ]
    return {c.name: c for c in cases}


# --------------------------------------------------------------------------------------------
# Measurement
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


def _first(out):
    return out[0] if isinstance(out, tuple) else out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _make_call(module: nn.Module, inputs: tuple, mode: str, device: torch.device) -> Callable[[], None]:
    params = [p for p in module.parameters() if p.requires_grad]
    leaves = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if mode == "fwd":
        def call():
            with torch.no_grad():
                module(*inputs)
            _sync(device)
        return call
    grad_out = None

    def call():
        nonlocal grad_out
        for t in params + leaves:
            t.grad = None
        out = _first(module(*inputs))
        if grad_out is None:
            grad_out = torch.randn_like(out)
        out.backward(grad_out)
        _sync(device)
    return call


_LIBC = None


def _malloc_trim() -> None:
    global _LIBC
    try:
        if _LIBC is None:
            _LIBC = ctypes.CDLL("libc.so.6")
        _LIBC.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_kb(field_name: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def _cpu_memory_method() -> str:
    if _reset_hwm():
        return ("CPU: RSS high-water mark. Before the call: gc.collect(), malloc_trim(0) so freed heap "
                "pages go back to the OS, then 'echo 5 > /proc/self/clear_refs' resets VmHWM to the "
                "current RSS; peak = VmHWM after the call - VmRSS before it. Counts pages touched.")
    return ("CPU: RSS sampled by a psutil thread every 0.5 ms during the call (after gc.collect() and "
            "malloc_trim(0)); peak = max sampled RSS - RSS before. Peaks shorter than 0.5 ms can be missed.")


def _peak_memory(call: Callable[[], None], device: torch.device) -> int:
    """Peak bytes above the state before ``call``."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        return int(torch.cuda.max_memory_allocated(device) - before)
    _malloc_trim()
    if _reset_hwm():
        before = _status_kb("VmRSS")
        call()
        return max(0, (_status_kb("VmHWM") - before) * 1024)
    import psutil

    proc = psutil.Process()
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.0005)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        call()
    finally:
        done.set()
        thread.join()
    return max(0, max(peak[0], proc.memory_info().rss) - before)


def _estimate_bytes(case: Case, shape: Shape, mode: str, dtype: torch.dtype) -> float:
    """A rough upper bound of a call's memory, to skip cases that would exhaust the device."""
    elt = torch.empty((), dtype=dtype).element_size()
    acts = (12 if mode == "fwd" else 24) * shape.B * shape.L * shape.E * max(4, elt)
    if case.quadratic:
        # eager: scores, masked scores, weights (float32) alive together; backward keeps and adds more
        acts += (5 if mode == "fwd" else 8) * shape.B * shape.H * shape.L * shape.L * max(4, elt)
    return acts


def _peak_tflops(device_name: str, dtype: torch.dtype) -> float | None:
    for key in sorted(PEAK_TFLOPS, key=len, reverse=True):
        if key in device_name:
            return PEAK_TFLOPS[key].get(str(dtype).removeprefix("torch."))
    return None


def _prepare(case: Case, shape: Shape, mode: str, device: torch.device, dtype: torch.dtype):
    torch.manual_seed(0)
    module, make_inputs = case.build(shape, device, dtype)
    module = module.to(device=device, dtype=dtype).eval()
    inputs = make_inputs()
    if mode == "fwd+bwd" and not any(True for _ in module.parameters()):
        inputs = tuple(t.detach().requires_grad_() for t in inputs)  # flux: gradients w.r.t. q, k, v
    return _make_call(module, inputs, mode, device)


def _skipped(case: Case, shape: Shape, mode: str, dtype: torch.dtype, why: str) -> dict:
    return {"case": case.name, "mode": mode, "dtype": str(dtype).removeprefix("torch."), "B": shape.B,
            "L": shape.L, "skipped": why}


def _measure_group(cases: Sequence[Case], shape: Shape, mode: str, device: torch.device, dtype: torch.dtype,
                   warmup: int, repeats: int, device_name: str, max_memory_bytes: float, bar) -> list[dict]:
    """Time several cases at one shape, interleaved: round ``r`` calls every case once.

    Interleaving makes the comparisons between cases fair on a machine whose speed drifts (shared
    CPUs, turbo and thermal limits): a slow minute slows every case of the round, not one case.
    """
    calls, results = {}, {}
    for case in cases:
        estimate = _estimate_bytes(case, shape, mode, dtype)
        if estimate > max_memory_bytes:
            results[case.name] = _skipped(case, shape, mode, dtype, f"estimated memory above --max-memory-gb "
                                                                    f"({estimate / 2**30:.1f} GiB)")
            continue
        calls[case.name] = _prepare(case, shape, mode, device, dtype)
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)

    def timed(name: str, keep: bool) -> None:
        try:
            start = time.perf_counter()
            calls[name]()
            if keep:
                times[name].append(time.perf_counter() - start)
        except torch.OutOfMemoryError as err:
            del calls[name]
            results[name] = {"skipped": f"out of memory: {str(err).splitlines()[0]}"}
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    for r in range(warmup + repeats):
        # Rotate the order each round so that no case always runs first (or right after another).
        for name in names[r % max(1, len(names)):] + names[: r % max(1, len(names))]:
            if name in calls:
                timed(name, keep=r >= warmup)
                bar.update(1)
    peak = _peak_tflops(device_name, dtype) if device.type == "cuda" else None
    out = []
    for case in cases:
        if case.name not in calls:
            entry = results[case.name]
            out.append(entry if "case" in entry else _skipped(case, shape, mode, dtype, entry["skipped"]))
            continue
        memory = _peak_memory(calls.pop(case.name), device)
        ts = times[case.name]
        median = statistics.median(ts)
        q = statistics.quantiles(ts, n=4, method="inclusive") if len(ts) > 1 else [median] * 3
        n_flops = flops(case, shape, mode)
        out.append({
            "case": case.name, "mode": mode, "dtype": str(dtype).removeprefix("torch."),
            "B": shape.B, "L": shape.L, "E": shape.E, "H": shape.H, "G": shape.G if case.kv_heads else shape.H,
            "time_s": {"median": median, "q25": q[0], "q75": q[2], "min": min(ts), "max": max(ts), "repeats": ts},
            "tokens_per_s": shape.B * shape.L / median,
            "flops": n_flops,
            "tflops_per_s": n_flops / median / 1e12,
            "peak_fraction": None if peak is None else n_flops / median / 1e12 / peak,
            "peak_memory_bytes": memory,
        })
    return out


# --------------------------------------------------------------------------------------------
# Targets
# --------------------------------------------------------------------------------------------


def _index(results: list[dict]) -> dict:
    return {(r["case"], r["mode"], r["dtype"], r["B"], r["L"]): r for r in results if "time_s" in r}


def _targets(cases: dict[str, Case], results: list[dict], shape: Shape, sweep: list[dict]) -> dict:
    by = _index(results)
    vs_native, overhead, memory = [], [], []
    keys = sorted({(r["mode"], r["dtype"]) for r in results if "time_s" in r})
    for name, case in cases.items():
        if case.kind != "attnref" or case.eager:
            continue
        for mode, dtype in keys:
            mine = by.get((name, mode, dtype, shape.B, shape.L))
            if mine is None:
                continue
            stat = TARGETS["statistic"]
            t = mine["time_s"][stat]
            refs = [(n, by[(n, mode, dtype, shape.B, shape.L)]["time_s"][stat]) for n in case.same_function
                    if (n, mode, dtype, shape.B, shape.L) in by]
            if case.same_function and refs:
                ref_name, ref_t = min(refs, key=lambda p: p[1])
                ratio = t / ref_t
                vs_native.append({"case": name, "mode": mode, "dtype": dtype, "reference": ref_name,
                                  "ratio": ratio, "limit": TARGETS["vs_native"],
                                  "holds": ratio <= TARGETS["vs_native"]})
            elif not case.same_function:
                vs_native.append({"case": name, "mode": mode, "dtype": dtype, "reference": None, "ratio": None,
                                  "limit": TARGETS["vs_native"], "holds": None, "why": case.note})
            bare = by.get((case.bare, mode, dtype, shape.B, shape.L)) if case.bare else None
            if bare is not None:
                share = 1.0 - bare["time_s"][stat] / t
                entry = {"case": name, "mode": mode, "dtype": dtype, "bare": case.bare, "share": share,
                         "limit": TARGETS["overhead"], "holds": share < TARGETS["overhead"]}
                if case.quadratic:
                    entry.update(holds=None, why="need_weights=True returns the (B, H, L, L) weights: "
                                                 "not a projections + kernel computation")
                overhead.append(entry)
    # Memory growth: exponent a of peak ~ L^a over the sweep's three longest lengths.
    for name, case in cases.items():
        if case.kind != "attnref":
            continue
        for mode, dtype in sorted({(r["mode"], r["dtype"]) for r in sweep if r["case"] == name}):
            points = sorted((r["L"], r["peak_memory_bytes"]) for r in sweep
                            if r["case"] == name and r["mode"] == mode and r["dtype"] == dtype
                            and r.get("axis") == "L" and "time_s" in r and r["peak_memory_bytes"] > 0)
            if len(points) < 2:
                continue
            top = points[-3:]
            xs = [math.log(p[0]) for p in top]
            ys = [math.log(p[1]) for p in top]
            mx, my = statistics.fmean(xs), statistics.fmean(ys)
            a = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
            entry = {"case": name, "mode": mode, "dtype": dtype, "exponent": a,
                     "L": [p[0] for p in top], "limit": TARGETS["memory_exponent"]}
            if case.eager or case.quadratic:
                entry["holds"] = None
                entry["why"] = "explicit path: materialises L x L weights (quadratic by design)"
            else:
                entry["holds"] = a <= TARGETS["memory_exponent"]
            memory.append(entry)
    return {"vs_native": vs_native, "overhead": overhead, "memory_linear": memory, "limits": TARGETS}


# --------------------------------------------------------------------------------------------
# Environment and running
# --------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "") if commit else None


def _slug(text: str) -> str:
    text = re.sub(r"\(r\)|\(tm\)|processor|\d+-core|nvidia|corporation", "", text.lower())
    return re.sub(r"[^a-z0-9]+", "-", text).strip("-")[:40] or "unknown"


def run_benchmark(
    cases: Sequence[str],
    shape: Shape,
    *,
    device: torch.device,
    dtypes: Sequence[torch.dtype],
    modes: Sequence[str] = ("fwd", "fwd+bwd"),
    warmup: int = 2,
    repeats: int = 7,
    seq_lens: Sequence[int] = (),
    batch_sizes: Sequence[int] = (),
    sweep_cases: Sequence[str] = (),
    sweep_modes: Sequence[str] = ("fwd",),
    sweep_batch: int = 1,
    sweep_len: int = 1024,
    max_memory_bytes: float = float("inf"),
    progress: bool = True,
) -> dict:
    """Time every case at ``shape``, then the sweeps, and check the targets.

    Args:
        cases: names from [`make_cases()`][attnref.bench.make_cases] to run at the default shape.
        shape: the default shape.
        device: where to run.
        dtypes: dtypes to run in (each case and mode once per dtype).
        modes: ``"fwd"`` and/or ``"fwd+bwd"``.
        warmup: untimed calls before timing.
        repeats: timed calls; the median and spread are reported.
        seq_lens: sequence lengths of the L sweep (batch ``sweep_batch``); empty for none.
        batch_sizes: batch sizes of the B sweep (length ``sweep_len``); empty for none.
        sweep_cases: cases of both sweeps (those not in ``cases`` are skipped).
        sweep_modes: modes of the sweeps.
        sweep_batch: batch size of the L sweep.
        sweep_len: sequence length of the B sweep.
        max_memory_bytes: skip a call whose estimated memory exceeds this (recorded as skipped).
        progress: show a tqdm progress bar.

    Returns:
        The JSON-ready result: ``environment``, ``config``, ``results`` (default shape),
        ``sweep`` and ``targets``.
    """
    from tqdm import tqdm

    known = make_cases()
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    groups = []  # (axis, cases, shape, mode, dtype), each timed interleaved
    sweep_names = [n for n in sweep_cases if n in cases]
    for dtype in dtypes:
        for mode in modes:
            groups.append(("default", [known[n] for n in cases], shape, mode, dtype))
        for mode in sweep_modes:
            for L in seq_lens:
                groups.append(("L", [known[n] for n in sweep_names], Shape(sweep_batch, L, shape.E, shape.H, shape.G),
                               mode, dtype))
            for B in batch_sizes:
                groups.append(("B", [known[n] for n in sweep_names], Shape(B, sweep_len, shape.E, shape.H, shape.G),
                               mode, dtype))
    results, sweep = [], []
    total = sum(len(g[1]) for g in groups) * (warmup + repeats)
    bar = tqdm(total=total, desc="attnref.bench", unit="call", disable=not progress, file=sys.stderr)
    started = time.perf_counter()
    for axis, group, s, mode, dtype in groups:
        bar.set_postfix_str(f"{mode} B={s.B} L={s.L}", refresh=False)
        entries = _measure_group(group, s, mode, device, dtype, warmup, repeats, device_name, max_memory_bytes, bar)
        if axis == "default":
            results += entries
        else:
            sweep += [dict(e, axis=axis) for e in entries]
    bar.close()
    environment = {
        "device": device.type,
        "device_name": device_name,
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "transformers": _transformers_version(),
        "git_commit": _git_commit(),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": time.perf_counter() - started,
    }
    config = {
        "shape": asdict(shape) | {"D": shape.D},
        "dtypes": [str(d).removeprefix("torch.") for d in dtypes],
        "modes": list(modes), "warmup": warmup, "repeats": repeats,
        "cases": {n: {"kind": known[n].kind, "description": known[n].description, "causal": known[n].causal,
                      "eager": known[n].eager, "same_function": list(known[n].same_function),
                      "bare": known[n].bare} for n in cases},
        "sweep": {"seq_lens": list(seq_lens), "batch_sizes": list(batch_sizes), "cases": [n for n in sweep_cases
                  if n in cases], "modes": list(sweep_modes), "sweep_batch": sweep_batch, "sweep_len": sweep_len},
        "timing": ("time.perf_counter around one call (CUDA synchronised); fwd under torch.no_grad, "
                   "fwd+bwd = forward + backward of a fixed random output gradient, parameter gradients "
                   "cleared (set to None) before each call; median, quartiles (q25, q75) and min/max of "
                   "the repeats; module in eval mode (no dropout)"),
        "flops": ("projections 2*B*L*E*D*(2H+2G) [+ 2*B*L*E^2 for an extra Linear(E, E)] + attention "
                  "4*B*H*D*P with P = L^2, or L(L+1)/2 when causal; fwd+bwd = 3 x fwd; softmax, RoPE, "
                  "norms not counted"),
        "memory": _cpu_memory_method() if device.type == "cpu" else (
            "CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus "
            "memory_allocated() before the call (inputs and weights excluded)"),
        "peak_tflops": _peak_tflops(device_name, dtypes[0]) if device.type == "cuda" else None,
    }
    data = {"schema": 1, "environment": environment, "config": config, "results": results, "sweep": sweep}
    data["targets"] = _targets({n: known[n] for n in cases}, results, shape, sweep)
    return data


def _transformers_version() -> str | None:
    if not _has_transformers():
        return None
    import transformers

    return transformers.__version__


# --------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------


def plot(data: dict) -> "matplotlib.figure.Figure":
    """Draw a benchmark result: time per case at the default shape, and the L sweep.

    Args:
        data: what [`run_benchmark()`][attnref.bench.run_benchmark] returns (or its JSON, loaded).

    Returns:
        A matplotlib ``Figure`` with up to three panels, namely the median time per case and mode
        (bars, quartiles as error bars), then time and peak memory against L (log-log).
    """
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in data["results"] if "time_s" in r]
    dtype = results[0]["dtype"] if results else None
    results = [r for r in results if r["dtype"] == dtype]
    sweep = [r for r in data.get("sweep", []) if "time_s" in r and r.get("axis") == "L" and r["dtype"] == dtype]
    panels = 1 + (2 if sweep else 0)
    fig, axes = plt.subplots(1, panels, figsize=(4.2 * panels + 1.5, 4.2), squeeze=False)
    axes = axes[0]
    names = list(dict.fromkeys(r["case"] for r in results))
    modes = list(dict.fromkeys(r["mode"] for r in results))
    ax = axes[0]
    height = 0.8 / max(1, len(modes))
    for j, mode in enumerate(modes):
        by = {r["case"]: r for r in results if r["mode"] == mode}
        ys = [i + (j - (len(modes) - 1) / 2) * height for i in range(len(names))]
        med = [by[n]["time_s"]["median"] * 1e3 if n in by else 0 for n in names]
        err = [[(by[n]["time_s"]["median"] - by[n]["time_s"]["q25"]) * 1e3 if n in by else 0 for n in names],
               [(by[n]["time_s"]["q75"] - by[n]["time_s"]["median"]) * 1e3 if n in by else 0 for n in names]]
        ax.barh(ys, med, height=height, xerr=err, label=mode, capsize=1.5)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("median time per call (ms)")
    s = data["config"]["shape"]
    ax.set_title(f"B={s['B']} L={s['L']} E={s['E']} H={s['H']}, {dtype}", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    if sweep:
        mode = sweep[0]["mode"]
        lines = [r for r in sweep if r["mode"] == mode]
        for name in dict.fromkeys(r["case"] for r in lines):
            pts = sorted((r["L"], r["time_s"]["median"] * 1e3, r["peak_memory_bytes"] / 2**20)
                         for r in lines if r["case"] == name)
            style = "--" if ("eager" in name or "nw=True" in name) else "-"
            axes[1].plot([p[0] for p in pts], [p[1] for p in pts], style, marker=".", label=name)
            axes[2].plot([p[0] for p in pts], [max(p[2], 1e-1) for p in pts], style, marker=".", label=name)
        for ax, label in ((axes[1], "median time (ms)"), (axes[2], "peak extra memory (MiB)")):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("sequence length L")
            ax.set_ylabel(label)
            ax.set_title(f"{mode}, B={lines[0]['B']}", fontsize=9)
            ax.grid(True, which="major", alpha=0.3)
        axes[2].legend(fontsize=6, loc="upper left")
    env = data["environment"]
    fig.suptitle(f"{env['device_name']} ({env['threads']} threads), torch {env['torch']}", fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    if not text.strip():
        return []
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m attnref.bench",
        description="Time forward and forward+backward of every attnref module and of the torch-native "
                    "paths computing the same function; write JSON results and a plot to --out. Without "
                    "--quick the full preset runs: on CPU the default shape (1 warm-up, 5 repeats) and a "
                    "forward L sweep 256..4096 at B=1 (about 15 minutes on 2 cores); on CUDA 3 warm-ups, "
                    "20 repeats, L sweep 128..8192 and B sweep 1..32, forward and backward.",
        epilog="Cases: " + ", ".join(make_cases()) + ". FLOPs, memory and timing methods are described "
               "in the JSON's config and in the module docstring (python -m pydoc attnref.bench).",
    )
    p.add_argument("--quick", action="store_true",
                   help="small preset (B,L,E,H = 2,512,768,12; 3 repeats; L sweep 128..1024, fwd only): a few "
                        "minutes on 2 CPU cores. Explicit options below override the preset.")
    p.add_argument("--shape", metavar="B,L,E,H", help="default shape (full preset: 8,1024,768,12, the "
                   "LLMs-from-scratch benchmark's; E must be a multiple of H and E/H even)")
    p.add_argument("--kv-heads", type=int, metavar="G", help="key/value heads of the GQA cases (default: H/3 "
                   "if it divides H, else H/2, else 1)")
    p.add_argument("--cases", metavar="NAMES", help="comma-separated case names or fnmatch patterns "
                   "(e.g. 'llama*,torch.*'); default all")
    p.add_argument("--modes", metavar="MODES", help="comma-separated subset of fwd,fwd+bwd (default both)")
    p.add_argument("--device", help="torch device (default cuda when available, else cpu)")
    p.add_argument("--dtype", metavar="DTYPES", help="comma-separated dtypes (default float32 on CPU, "
                   "bfloat16,float16 on CUDA)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed calls per case (full CPU: 1, CUDA: 3; quick: 1)")
    p.add_argument("--repeats", type=int, metavar="N", help="timed calls per case, interleaved across cases (full CPU: 5, CUDA: 20; quick: 3)")
    p.add_argument("--seq-lens", type=_int_list, metavar="LIST", help="L sweep, comma-separated "
                   "(full CPU: 256,...,4096; CUDA: 128,...,8192; '' for none)")
    p.add_argument("--batch-sizes", type=_int_list, metavar="LIST", help="B sweep, comma-separated "
                   "(full CPU: none; CUDA: 1,2,4,8,16,32; '' for none)")
    p.add_argument("--sweep-batch", type=int, metavar="B", help="batch size of the L sweep (default 1)")
    p.add_argument("--sweep-len", type=int, metavar="L", help="sequence length of the B sweep (full: 1024)")
    p.add_argument("--sweep-cases", metavar="NAMES", help="cases of the sweeps, names or patterns (default: "
                   + ",".join(DEFAULT_SWEEP_CASES) + ")")
    p.add_argument("--sweep-modes", metavar="MODES", help="modes of the sweeps (CPU and quick: fwd; CUDA: fwd,fwd+bwd)")
    p.add_argument("--max-memory-gb", type=float, metavar="GB", help="skip calls whose estimated memory "
                   "exceeds this (default: 60%% of available RAM on CPU, of free memory on CUDA)")
    p.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N) (default: torch's)")
    p.add_argument("--out", default="bench-results", metavar="DIR",
                   help="directory for bench-<device>-<name>.json and .png (default: bench-results)")
    p.add_argument("--no-plot", action="store_true", help="write the JSON only")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _select(p: argparse.ArgumentParser, text: str | None, known: Sequence[str], option: str) -> list[str]:
    if text is None:
        return list(known)
    chosen = []
    for pattern in (t.strip() for t in text.split(",") if t.strip()):
        # Names contain brackets ("llama[gqa]"): an exact name wins over its reading as a pattern.
        hits = [pattern] if pattern in known else [n for n in known if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            p.error(f"{option}: no case matches {pattern!r}; known cases: {', '.join(known)}")
        chosen += [h for h in hits if h not in chosen]
    if not chosen:
        p.error(f"{option}: no case given")
    return chosen


def _parse_shape(p: argparse.ArgumentParser, text: str) -> tuple[int, int, int, int]:
    try:
        B, L, E, H = (int(v) for v in text.split(","))
    except ValueError:
        p.error(f"--shape: expected four comma-separated integers B,L,E,H, got {text!r}")
    for letter, value in zip("BLEH", (B, L, E, H)):
        if value <= 0:
            p.error(f"--shape: expected {letter} > 0, got {letter}={value}")
    if E % H:
        p.error(f"--shape: expected E divisible by H (head dim D = E / H), got E={E}, H={H}")
    if (E // H) % 2:
        p.error(f"--shape: expected an even head dim E / H (RoPE rotates channel pairs), got E/H={E // H}")
    return B, L, E, H


def _modes(p: argparse.ArgumentParser, text: str, option: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("fwd", "fwd+bwd")]
    if bad or not modes:
        p.error(f"{option}: expected a comma-separated subset of fwd,fwd+bwd, got {text!r}")
    return modes


def main(argv: Sequence[str] | None = None) -> dict:
    """Command-line entry point: parse ``argv``, run, write ``--out``/bench-*.json and the plot.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The result written to the JSON file, with ``"json_path"`` (and ``"plot_path"``) added.
    """
    p = _parser()
    args = p.parse_args(argv)
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        p.error(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device: expected an available device, got cuda (torch.cuda.is_available() is False)")
    preset_name = "quick" if args.quick else ("full-cuda" if device.type == "cuda" else "full-cpu")
    preset = PRESETS[preset_name]

    def pick(value, key):
        return preset[key] if value is None else value

    B, L, E, H = _parse_shape(p, pick(args.shape, "shape"))
    if args.kv_heads is None:
        G = next(g for g in (H // 3 if H % 3 == 0 else 0, H // 2 if H % 2 == 0 else 0, 1) if g)
    else:
        G = args.kv_heads
        if G <= 0 or H % G:
            p.error(f"--kv-heads: expected a positive divisor of H={H}, got {G}")
    shape = Shape(B, L, E, H, G)

    dtype_names = args.dtype or ("bfloat16,float16" if device.type == "cuda" else "float32")
    dtypes = []
    for name in (n.strip() for n in dtype_names.split(",") if n.strip()):
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            p.error(f"--dtype: expected floating dtypes such as float32,bfloat16,float16, got {name!r}")
        dtypes.append(dtype)
    for option, value in (("--warmup", args.warmup), ("--repeats", args.repeats)):
        if value is not None and value < (0 if option == "--warmup" else 1):
            p.error(f"{option}: expected an integer >= {0 if option == '--warmup' else 1}, got {value}")
    if args.threads is not None:
        if args.threads <= 0:
            p.error(f"--threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)

    known = list(make_cases())
    cases = _select(p, args.cases, known, "--cases")
    sweep_cases = _select(p, args.sweep_cases, known, "--sweep-cases") if args.sweep_cases else \
        [n for n in DEFAULT_SWEEP_CASES if n in known]
    seq_lens = pick(args.seq_lens, "seq_lens")
    batch_sizes = pick(args.batch_sizes, "batch_sizes")
    seq_lens = _int_list(seq_lens) if isinstance(seq_lens, str) else seq_lens
    batch_sizes = _int_list(batch_sizes) if isinstance(batch_sizes, str) else batch_sizes

    if args.max_memory_gb is not None:
        budget = args.max_memory_gb * 2**30
    elif device.type == "cuda":
        budget = 0.6 * torch.cuda.mem_get_info(device)[0]
    else:
        import psutil

        budget = 0.6 * psutil.virtual_memory().available

    data = run_benchmark(
        cases, shape, device=device, dtypes=dtypes,
        modes=_modes(p, args.modes or preset["modes"], "--modes"),
        warmup=pick(args.warmup, "warmup"), repeats=pick(args.repeats, "repeats"),
        seq_lens=seq_lens, batch_sizes=batch_sizes, sweep_cases=sweep_cases,
        sweep_modes=_modes(p, args.sweep_modes or preset["sweep_modes"], "--sweep-modes"),
        sweep_batch=pick(args.sweep_batch, "sweep_batch"), sweep_len=pick(args.sweep_len, "sweep_len"),
        max_memory_bytes=budget, progress=not args.no_progress,
    )
    data["config"]["preset"] = preset_name
    data["config"]["argv"] = list(sys.argv[1:] if argv is None else argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"bench-{device.type}-{_slug(data['environment']['device_name'])}"
    json_path = out / f"{stem}.json"
    json_path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    data["json_path"] = str(json_path)
    if not args.no_plot:
        fig = plot(data)
        plot_path = out / f"{stem}.png"
        fig.savefig(plot_path, dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
        data["plot_path"] = str(plot_path)
    _summary(data)
    return data


def _summary(data: dict) -> None:
    """Print the default-shape table and the targets."""
    print(f"{data['environment']['device_name']}, torch {data['environment']['torch']}, "
          f"{data['environment']['threads']} threads")
    print(f"{'case':30s} {'mode':8s} {'median ms':>10s} {'IQR ms':>14s} {'tok/s':>10s} {'GFLOP/s':>9s} "
          f"{'mem MiB':>8s}")
    for r in data["results"]:
        if "time_s" not in r:
            print(f"{r['case']:30s} {r['mode']:8s} skipped: {r['skipped']}")
            continue
        t = r["time_s"]
        print(f"{r['case']:30s} {r['mode']:8s} {t['median'] * 1e3:10.1f} "
              f"{t['q25'] * 1e3:6.1f}-{t['q75'] * 1e3:<7.1f} {r['tokens_per_s']:10.0f} "
              f"{r['tflops_per_s'] * 1e3:9.1f} {r['peak_memory_bytes'] / 2**20:8.1f}")
    for kind, rows in data["targets"].items():
        if kind == "limits":
            continue
        for t in rows:
            value = t.get("ratio", t.get("share", t.get("exponent")))
            status = {True: "holds", False: "FAILS", None: "n/a"}[t["holds"]]
            shown = "-" if value is None else f"{value:.3f}"
            print(f"target {kind:13s} {t['case']:30s} {t['mode']:8s} {shown:>7s} {status}")
    print(f"wrote {data['json_path']}" + (f" and {data['plot_path']}" if "plot_path" in data else ""))


if __name__ == "__main__":
    main()
