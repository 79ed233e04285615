"""The decode benchmark: LLaMA attention generating one token per step after a prefill.

For each cache length S, every *variant* starts from an empty cache, prefills S tokens in one
forward, then decodes N tokens, one forward per token, each attending to everything cached so
far. Every decode step is timed on its own (CUDA synchronised after it, as sampling the next token
would) and a trial's step time is the median of its N steps, so a few steps slowed down by other
work on the machine do not move it; tokens per second is ``B / step time``. The prefill is timed
too and reported, but it is not what a cache changes.

Variants (the transformers ones when transformers 5 or later is installed):

- ``attnref[KVCache]``: [`attnref.llama.LlamaAttention`][attnref.llama.LlamaAttention] with the
  growing [`KVCache`][attnref.llama.KVCache], which concatenates at every step;
- ``attnref[StaticKVCache]``: the same module with the preallocated
  [`StaticKVCache`][attnref.llama.StaticKVCache] (``max_length = S + N``), which writes in place;
- ``transformers[DynamicCache]``: transformers' ``LlamaAttention`` (``sdpa``) with
  ``DynamicCache``, which concatenates at every step;
- ``transformers[StaticCache]``: the same with ``StaticCache`` (``max_cache_len = S + N``), which
  writes in place and attends over all ``S + N`` slots, the empty ones hidden by the mask.

All variants hold the same weights (transformers' module loads attnref's ``state_dict``) and see the
same inputs. Their last decode step's outputs are compared with ``attnref[KVCache]``'s
(``max_abs_diff``), so a fast wrong answer would show.

Outside the timing, as a model shares them between its layers: transformers' cos/sin for every
position and the ``StaticCache`` mask, computed once before the trials. attnref's module looks its
cos/sin up in its own table inside ``forward``, so that lookup is timed.

Memory: the peak of the N decode steps above the state after the prefill (so it shows what each
step allocates), and the bytes the cache holds at the end (a preallocated cache holds its full
``S + N`` positions).
"""

from __future__ import annotations

import inspect
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from attnref import core, llama
from attnref.bench import timing
from attnref.bench._deps import progress_bar
from attnref.bench.cases import has_transformers
from attnref.bench.targets import decode_targets

__all__ = ["DecodeShape", "DECODE_VARIANTS", "run_decode"]

DECODE_VARIANTS = {
    "attnref[KVCache]": "attnref LlamaAttention, growing KVCache (concatenates every step)",
    "attnref[StaticKVCache]": "attnref LlamaAttention, preallocated StaticKVCache (writes in place)",
    "transformers[DynamicCache]": "transformers LlamaAttention (sdpa), DynamicCache (concatenates every step)",
    "transformers[StaticCache]": "transformers LlamaAttention (sdpa), StaticCache (writes in place, "
                                 "attends over every slot with a mask)",
}
"""The decode benchmark's variants, by name, with what each runs."""

RATIOS = (
    ("attnref[StaticKVCache]", "transformers[DynamicCache]"),
    ("attnref[StaticKVCache]", "transformers[StaticCache]"),
    ("attnref[KVCache]", "transformers[DynamicCache]"),
    ("attnref[StaticKVCache]", "attnref[KVCache]"),
)
"""Pairs ``(case, reference)`` whose tokens/s ratio is reported at every cache length."""

TIMING = ("per trial: a fresh empty cache, a prefill of S tokens (timed on its own), then N decode "
          "steps of one token, each timed on its own with time.perf_counter (CUDA synchronised after every "
          "step, as sampling the next token would); a trial's step time is the median of its N steps, which a "
          "few interrupted steps do not move; torch.no_grad, eval mode; trials of all variants interleaved, "
          "order rotated every round; tokens/s = B / step time, 'best' from the fastest trial, 'median' from "
          "the median one")


@dataclass(frozen=True)
class DecodeShape:
    """The shape of the decode benchmark's attention layer.

    Args:
        B: batch size (sequences decoded together).
        E: model dim, a multiple of ``H``.
        H: query heads.
        G: key/value heads, dividing ``H``.
    """

    B: int = 1
    E: int = 1024
    H: int = 16
    G: int = 4

    @property
    def D(self) -> int:
        """Head dim ``E // H``."""
        return self.E // self.H


# --------------------------------------------------------------------------------------------
# Variants: a fresh cache, and one forward of L new tokens after `start` cached ones
# --------------------------------------------------------------------------------------------


class _Attnref:
    def __init__(self, module: llama.LlamaAttention, static: bool) -> None:
        self.module, self.static = module, static

    def new_cache(self, max_length: int) -> llama.KVCache:
        return llama.StaticKVCache(max_length) if self.static else llama.KVCache()

    def __call__(self, x_BLE: Tensor, cache: llama.KVCache, start: int) -> Tensor:
        return self.module(x_BLE, kv_cache=cache)

    @staticmethod
    def held(cache: llama.KVCache) -> tuple[Tensor, Tensor]:
        return cache.key_BGSD, cache.value_BGSD


class _Transformers:
    def __init__(self, module, rotary, static: bool, positions: int, device: torch.device) -> None:
        self.module, self.static = module, static
        # transformers 5.25 names the cache argument `cache`; earlier 5.x releases `past_key_values`.
        params = inspect.signature(module.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        # What a model computes once per forward and shares between its layers: cos/sin of every
        # position, and (StaticCache) the causal mask over the preallocated slots.
        probe = module.q_proj.weight
        self.cos, self.sin = rotary(probe, torch.arange(positions, device=device)[None])
        self.visible_PM: Tensor | None = None

    def new_cache(self, max_length: int):
        from transformers import DynamicCache, StaticCache

        if not self.static:
            return DynamicCache()
        if self.visible_PM is None or self.visible_PM.shape[-1] != max_length:
            self.visible_PM = core.causal_mask(max_length, device=self.cos.device)
        return StaticCache(config=self.module.config, max_cache_len=max_length)

    def __call__(self, x_BLE: Tensor, cache, start: int) -> Tensor:
        L = x_BLE.shape[1]
        # DynamicCache needs no mask: the prefill is causal through is_causal, and one new token
        # sees every cached key. StaticCache attends over every slot: hide those not written yet.
        mask = self.visible_PM[None, None, start : start + L] if self.static else None
        rope = (self.cos[:, start : start + L], self.sin[:, start : start + L])
        out, _ = self.module(x_BLE, position_embeddings=rope, attention_mask=mask, **{self.cache_arg: cache})
        return out

    @staticmethod
    def held(cache) -> tuple[Tensor, Tensor]:
        return cache.layers[0].keys, cache.layers[0].values


def _transformers_usable() -> str | None:
    """None when transformers' variants can run, else why not."""
    if not has_transformers():
        return "transformers is not installed"
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        return f"needs transformers 5 or later (its cache API), found {transformers.__version__}"
    return None


def _runners(names: Sequence[str], shape: DecodeShape, positions: int, device: torch.device,
             dtype: torch.dtype) -> tuple[dict, dict[str, str]]:
    """Build the variants (same weights) and say why any could not be built."""
    torch.manual_seed(0)
    ours = llama.LlamaAttention(shape.E, shape.H, num_kv_heads=shape.G).to(device=device, dtype=dtype).eval()
    runners, skipped = {}, {}
    for name in names:
        if name.startswith("attnref"):
            runners[name] = _Attnref(ours, static=name == "attnref[StaticKVCache]")
            continue
        why = _transformers_usable()
        if why:
            skipped[name] = why
            continue
        from transformers import LlamaConfig
        from transformers.models.llama.modeling_llama import LlamaAttention, LlamaRotaryEmbedding

        config = LlamaConfig(hidden_size=shape.E, num_attention_heads=shape.H, num_key_value_heads=shape.G,
                             attention_bias=False, num_hidden_layers=1, max_position_embeddings=positions)
        config._attn_implementation = "sdpa"
        theirs = LlamaAttention(config, layer_idx=0)
        theirs.load_state_dict(ours.state_dict(), strict=True)
        theirs = theirs.to(device=device, dtype=dtype).eval()
        rotary = LlamaRotaryEmbedding(config).to(device)
        runners[name] = _Transformers(theirs, rotary, static=name == "transformers[StaticCache]",
                                      positions=positions, device=device)
    return runners, skipped


# --------------------------------------------------------------------------------------------
# One trial, and the benchmark
# --------------------------------------------------------------------------------------------


def _trial(runner, prefill_BSE: Tensor, steps_BNE: Tensor, device: torch.device, last: dict, name: str,
           memory: bool = False):
    """Prefill, then decode one token per step: ``(step_s, prefill_s)`` with ``step_s`` the median
    step, or with ``memory`` the peak bytes of the decode steps and the bytes the cache holds."""
    S, N = prefill_BSE.shape[1], steps_BNE.shape[1]
    cache = runner.new_cache(S + N)
    with torch.no_grad():
        start = time.perf_counter()
        runner(prefill_BSE, cache, 0)
        timing.sync(device)
        prefill_s = time.perf_counter() - start

        def decode() -> list[float]:
            step_s = []
            for t in range(N):
                start = time.perf_counter()
                out_B1E = runner(steps_BNE[:, t : t + 1], cache, S + t)
                timing.sync(device)
                step_s.append(time.perf_counter() - start)
            last[name] = out_B1E
            return step_s

        if memory:
            peak = timing.peak_memory(decode, device)
            held = sum(t.untyped_storage().nbytes() for t in runner.held(cache))
            return peak, held
        return statistics.median(decode()), prefill_s


def run_decode(
    shape: DecodeShape,
    cache_lens: Sequence[int],
    *,
    steps: int = 32,
    device: torch.device,
    dtype: torch.dtype = torch.float32,
    warmup: int = 1,
    repeats: int = 5,
    variants: Sequence[str] = tuple(DECODE_VARIANTS),
    progress: bool = True,
) -> dict:
    """Prefill then decode with every variant at every cache length, and check the decode target.

    Args:
        shape: the attention layer's shape.
        cache_lens: tokens cached before decoding starts (S), each at least 1.
        steps: tokens decoded per trial (N), one per forward.
        device: where to run.
        dtype: parameters' and inputs' dtype.
        warmup: untimed trials per variant and cache length.
        repeats: timed trials per variant and cache length.
        variants: names from [`DECODE_VARIANTS`][attnref.bench.DECODE_VARIANTS].
        progress: show a tqdm progress bar (needs tqdm, from the ``bench`` extra).

    Returns:
        The JSON-ready result: ``environment``, ``config``, ``results`` (one row per variant and
        cache length), ``ratios`` (tokens/s of each pair in ``RATIOS``, same run) and ``targets``.
    """
    names = list(variants)
    positions = max(cache_lens) + steps
    runners, skipped = _runners(names, shape, positions, device, dtype)
    bar = progress_bar(len(cache_lens) * len(runners) * (warmup + repeats), "decode", "trial", progress)
    started = time.perf_counter()
    results = []
    for S in cache_lens:
        bar.set_postfix_str(f"cache {S}", refresh=False)
        gen = torch.Generator(device=device).manual_seed(S)
        prefill_BSE = torch.randn(shape.B, S, shape.E, generator=gen, device=device, dtype=dtype)
        steps_BNE = torch.randn(shape.B, steps, shape.E, generator=gen, device=device, dtype=dtype)
        last: dict[str, Tensor] = {}
        calls: dict[str, Callable] = {
            name: (lambda r=runner, n=name: _trial(r, prefill_BSE, steps_BNE, device, last, n))
            for name, runner in runners.items()
        }
        measured = timing.time_interleaved(calls, warmup, repeats, device, lambda: bar.update(1))
        reference = next((n for n in names if n in last), None)
        for name in names:
            row = {"variant": name, "cache_len": S, "steps": steps, "B": shape.B}
            got = skipped.get(name, measured.get(name))
            if isinstance(got, str):
                results.append(row | {"skipped": got})
                continue
            peak, held = _trial(runners[name], prefill_BSE, steps_BNE, device, last, name, memory=True)
            step_s = timing.spread([d for d, _ in got])
            results.append(row | {
                "step_s": step_s,
                "prefill_s": timing.spread([p for _, p in got]),
                "tokens_per_s": {"best": shape.B / step_s["min"], "median": shape.B / step_s["median"]},
                "peak_memory_bytes": peak,
                "cache_bytes": held,
                "max_abs_diff": float((last[name].float() - last[reference].float()).abs().max()),
                "compared_with": reference,
            })
    bar.close()
    ratios = _ratios(results, cache_lens)
    environment = timing.environment(device) | {"wall_time_s": time.perf_counter() - started}
    config = {
        "shape": asdict(shape) | {"D": shape.D},
        "cache_lens": list(cache_lens), "steps": steps, "dtype": str(dtype).removeprefix("torch."),
        "warmup": warmup, "repeats": repeats,
        "variants": {n: DECODE_VARIANTS[n] for n in names},
        "timing": TIMING,
        "memory": timing.memory_method(device) + "; taken over the N decode steps, above the state "
                  "after the prefill. cache_bytes: storage held by the cache's keys and values at the end",
    }
    data = {"schema": 2, "kind": "decode", "environment": environment, "config": config, "results": results,
            "ratios": ratios}
    data["targets"] = decode_targets(ratios, "attnref[StaticKVCache]", "transformers[DynamicCache]")
    return data


def _ratios(results: list[dict], cache_lens: Sequence[int]) -> list[dict]:
    """Tokens/s of ``case`` over ``reference`` at each cache length, from the fastest trials."""
    best = {(r["variant"], r["cache_len"]): r["tokens_per_s"]["best"] for r in results if "tokens_per_s" in r}
    rows = []
    for case, reference in RATIOS:
        for S in cache_lens:
            if (case, S) in best and (reference, S) in best:
                rows.append({"case": case, "reference": reference, "cache_len": S,
                             "speedup": best[(case, S)] / best[(reference, S)]})
    return rows
