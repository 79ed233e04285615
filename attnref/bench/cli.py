"""The command line, ``python -m attnref.bench``: presets, options, and what each preset runs.

The help text is written from ``PRESETS`` and ``DECODE_PRESETS`` themselves, so it cannot drift
from what a preset runs.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
import textwrap
from collections.abc import Sequence

import torch

from attnref.bench._deps import MissingExtra, require
from attnref.bench.cases import Shape, make_cases
from attnref.bench.decode import DECODE_VARIANTS, DecodeShape, run_decode
from attnref.bench.forward import run_benchmark
from attnref.bench.report import INDICATIVE, plot, plot_decode, print_summary, write_json

__all__ = ["PRESETS", "DECODE_PRESETS", "DEFAULT_SWEEP_CASES", "main"]

PRESETS = {
    "full-cpu": dict(shape="8,1024,768,12", warmup=1, repeats=5, seq_lens="128,256,512,1024,2048,4096",
                     batch_sizes="1,2,4,8", sweep_batch=1, sweep_len=1024, modes="fwd,fwd+bwd", sweep_modes="fwd",
                     dtype="float32", duration="about 17 minutes on 2 CPU cores"),
    "full-cuda": dict(shape="8,1024,768,12", warmup=3, repeats=20, seq_lens="128,256,512,1024,2048,4096,8192",
                      batch_sizes="1,2,4,8,16,32", sweep_batch=1, sweep_len=1024, modes="fwd,fwd+bwd",
                      sweep_modes="fwd,fwd+bwd", dtype="bfloat16,float16",
                      duration="duration not yet measured: no GPU run has been made"),
    "quick": dict(shape="2,512,768,12", warmup=1, repeats=3, seq_lens="128,256,512,1024", batch_sizes="",
                  sweep_batch=1, sweep_len=512, modes="fwd,fwd+bwd", sweep_modes="fwd", dtype=None,
                  duration="about 3 minutes on 2 CPU cores"),
}
"""Forward presets: ``full-cpu`` and ``full-cuda`` (chosen by the device) and ``quick``. ``dtype`` None
means the device's default. ``duration`` is measured, on the machine it names."""

DECODE_PRESETS = {
    "full-cpu": dict(shape="1,1024,16,4", cache_lens="128,256,512,1024,2048,4096", steps=32, warmup=1,
                     repeats=5, dtype="float32", duration="about 6 minutes on 2 CPU cores"),
    "full-cuda": dict(shape="1,4096,32,8", cache_lens="128,256,512,1024,2048,4096,8192,16384", steps=64,
                      warmup=2, repeats=10, dtype="bfloat16",
                      duration="duration not yet measured: no GPU run has been made"),
    "quick": dict(shape="1,1024,16,4", cache_lens="128,256,512,1024", steps=16, warmup=1, repeats=3,
                  dtype=None, duration="about 1 minute on 2 CPU cores"),
}
"""Decode presets (``--decode``), chosen as the forward ones are."""

DEFAULT_SWEEP_CASES = (
    "fused_qkv", "fused_qkv[eager]", "llama[mha]", "llama[mha][eager]", "esm", "esm[eager]",
    "torch.sdpa[causal]", "torch.mha[nw=False]", "torch.mha[nw=True]",
)
"""Cases of the forward sweeps unless ``--sweep-cases`` says otherwise."""

FORWARD_ONLY = ("shape", "kv_heads", "cases", "modes", "seq_lens", "batch_sizes", "sweep_batch", "sweep_len",
                "sweep_cases", "sweep_modes", "max_memory_gb")
DECODE_ONLY = ("decode_shape", "cache_lens", "steps", "variants")


def _span(text: str) -> str:
    values = [v for v in text.split(",") if v]
    return "none" if not values else values[0] if len(values) == 1 else f"{values[0]}..{values[-1]}"


def _default_kv_heads(H: int) -> int:
    return next(g for g in (H // 3 if H % 3 == 0 else 0, H // 2 if H % 2 == 0 else 0, 1) if g)


def _describe_forward(p: dict) -> str:
    B, L, E, H = p["shape"].split(",")
    sweeps = [f"L sweep {_span(p['seq_lens'])} at B={p['sweep_batch']}"]
    if p["batch_sizes"]:
        sweeps.append(f"B sweep {_span(p['batch_sizes'])} at L={p['sweep_len']}")
    dtype = p["dtype"] or "float32 on CPU, bfloat16,float16 on CUDA"
    return (f"every case at B,L,E,H={B},{L},{E},{H} (G={_default_kv_heads(int(H))} for the GQA cases), "
            f"{p['modes']}, {dtype}, "
            f"{p['warmup']} warm-up + {p['repeats']} timed calls per case; {' and '.join(sweeps)} "
            f"({p['sweep_modes']}) over the {len(DEFAULT_SWEEP_CASES)} sweep cases; {p['duration']}")


def _describe_decode(p: dict) -> str:
    B, E, H, G = p["shape"].split(",")
    dtype = p["dtype"] or "float32 on CPU, bfloat16 on CUDA"
    return (f"B,E,H,G={B},{E},{H},{G}, {dtype}; at each cache length {p['cache_lens'].replace(',', ', ')}: "
            f"prefill, then {p['steps']} decode steps of one token; {p['warmup']} warm-up + {p['repeats']} timed "
            f"trials per variant; {p['duration']}")


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
    def entry(label: str, text: str) -> str:
        return textwrap.fill(text, width=100, initial_indent=f"  {label:18s}", subsequent_indent=" " * 20)

    presets = "\n".join([
        "presets (explicit options override them; the device picks CPU or CUDA):",
        entry("forward, CPU:", _describe_forward(PRESETS["full-cpu"]) + "."),
        entry("forward, CUDA:", _describe_forward(PRESETS["full-cuda"]) + "."),
        entry("forward, --quick:", _describe_forward(PRESETS["quick"]) + "."),
        entry("decode, CPU:", _describe_decode(DECODE_PRESETS["full-cpu"]) + "."),
        entry("decode, CUDA:", _describe_decode(DECODE_PRESETS["full-cuda"]) + "."),
        entry("decode, --quick:", _describe_decode(DECODE_PRESETS["quick"]) + "."),
        "",
        textwrap.fill("forward cases: " + ", ".join(make_cases()) + ".", width=100),
        textwrap.fill("decode variants: " + ", ".join(DECODE_VARIANTS) + ".", width=100),
        textwrap.fill("FLOPs, memory and timing methods are described in each JSON's config and in the "
                      "module docstrings (python -m pydoc attnref.bench).", width=100),
    ])
    p = argparse.ArgumentParser(
        prog="python -m attnref.bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Two benchmarks; each writes a JSON file and a PNG plot to --out and prints a summary "
                    "with the targets.\n"
                    "  forward (default): time forward and forward+backward of every attnref module and of "
                    "the torch-native\n"
                    "    paths computing the same function, at one shape and over sweeps of L and B.\n"
                    "  decode (--decode): LLaMA attention prefilling S tokens, then decoding one token per "
                    "step, with attnref's\n"
                    "    KVCache and StaticKVCache against transformers' DynamicCache and StaticCache.",
        epilog=presets,
    )
    p.add_argument("--quick", action="store_true",
                   help="the small presets below, for a first look. Its figures are indicative: with few "
                        "repeats at a small shape, noise of a few per cent can put a ratio on either side of "
                        "its limit, so a target line can read FAILS without a defect (or holds without proof).")
    p.add_argument("--decode", action="store_true", help="run the decode benchmark instead of the forward one")
    p.add_argument("--device", help="torch device (default cuda when available, else cpu)")
    p.add_argument("--dtype", metavar="DTYPES", help="comma-separated dtypes, one with --decode (default float32 "
                   "on CPU; on CUDA bfloat16,float16, and bfloat16 with --decode)")
    p.add_argument("--warmup", type=int, metavar="N", help="untimed calls (forward) or trials (decode) first")
    p.add_argument("--repeats", type=int, metavar="N", help="timed calls (forward) or trials (decode), "
                   "interleaved across cases")
    p.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N) (default: torch's)")
    p.add_argument("--out", default="bench-results", metavar="DIR",
                   help="directory for bench-<device>-<name>.json (decode-... with --decode) and its .png "
                        "(default: bench-results)")
    p.add_argument("--no-plot", action="store_true", help="write the JSON only (no matplotlib needed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (no tqdm needed)")
    forward = p.add_argument_group("forward benchmark")
    forward.add_argument("--shape", metavar="B,L,E,H", help="default shape (E a multiple of H, E/H even)")
    forward.add_argument("--kv-heads", type=int, metavar="G", help="key/value heads of the GQA cases "
                         "(default: H/3 if it divides H, else H/2, else 1)")
    forward.add_argument("--cases", metavar="NAMES", help="comma-separated case names or fnmatch patterns "
                         "(e.g. 'llama*,torch.*'); default all")
    forward.add_argument("--modes", metavar="MODES", help="comma-separated subset of fwd,fwd+bwd")
    forward.add_argument("--seq-lens", type=_int_list, metavar="LIST", help="L sweep, comma-separated ('' for none)")
    forward.add_argument("--batch-sizes", type=_int_list, metavar="LIST", help="B sweep, comma-separated "
                         "('' for none)")
    forward.add_argument("--sweep-batch", type=int, metavar="B", help="batch size of the L sweep")
    forward.add_argument("--sweep-len", type=int, metavar="L", help="sequence length of the B sweep")
    forward.add_argument("--sweep-cases", metavar="NAMES", help="cases of the sweeps, names or patterns "
                         "(default: " + ", ".join(DEFAULT_SWEEP_CASES) + ")")
    forward.add_argument("--sweep-modes", metavar="MODES", help="modes of the sweeps")
    forward.add_argument("--max-memory-gb", type=float, metavar="GB", help="skip calls whose estimated memory "
                         "exceeds this (default: 60%% of available RAM on CPU, which needs psutil; of free "
                         "memory on CUDA)")
    decode = p.add_argument_group("decode benchmark (--decode)")
    decode.add_argument("--decode-shape", metavar="B,E,H,G", help="batch, model dim, query heads, key/value heads")
    decode.add_argument("--cache-lens", type=_int_list, metavar="LIST", help="tokens cached before decoding "
                        "starts, comma-separated")
    decode.add_argument("--steps", type=int, metavar="N", help="tokens decoded per trial, one per forward")
    decode.add_argument("--variants", metavar="NAMES", help="comma-separated variant names or patterns; "
                        "default all")
    return p


def _select(p: argparse.ArgumentParser, text: str | None, known: Sequence[str], option: str,
            noun: str = "case") -> list[str]:
    if text is None:
        return list(known)
    chosen = []
    for pattern in (t.strip() for t in text.split(",") if t.strip()):
        # Names contain brackets ("llama[gqa]"): an exact name wins over its reading as a pattern.
        hits = [pattern] if pattern in known else [n for n in known if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            p.error(f"{option}: no {noun} matches {pattern!r}; known {noun}s: {', '.join(known)}")
        chosen += [h for h in hits if h not in chosen]
    if not chosen:
        p.error(f"{option}: no {noun} given")
    return chosen


def _ints(p: argparse.ArgumentParser, text: str, option: str, letters: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
        if len(values) != len(letters):
            raise ValueError
    except ValueError:
        count = {3: "three", 4: "four"}.get(len(letters), str(len(letters)))
        p.error(f"{option}: expected {count} comma-separated integers {','.join(letters)}, got {text!r}")
    for letter, value in zip(letters, values):
        if value <= 0:
            p.error(f"{option}: expected {letter} > 0, got {letter}={value}")
    return values


def _check_heads(p: argparse.ArgumentParser, option: str, E: int, H: int) -> None:
    if E % H:
        p.error(f"{option}: expected E divisible by H (head dim D = E / H), got E={E}, H={H}")
    if (E // H) % 2:
        p.error(f"{option}: expected an even head dim E / H (RoPE rotates channel pairs), got E/H={E // H}")


def _modes(p: argparse.ArgumentParser, text: str, option: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    bad = [m for m in modes if m not in ("fwd", "fwd+bwd")]
    if bad or not modes:
        p.error(f"{option}: expected a comma-separated subset of fwd,fwd+bwd, got {text!r}")
    return modes


def _dtypes(p: argparse.ArgumentParser, text: str) -> list[torch.dtype]:
    dtypes = []
    for name in (n.strip() for n in text.split(",") if n.strip()):
        dtype = getattr(torch, name, None)
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            p.error(f"--dtype: expected floating dtypes such as float32,bfloat16,float16, got {name!r}")
        dtypes.append(dtype)
    return dtypes


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def main(argv: Sequence[str] | None = None) -> dict:
    """Command-line entry point: parse ``argv``, run, write the JSON and the plot, print a summary.

    Args:
        argv: arguments without the program name; ``None`` reads ``sys.argv``.

    Returns:
        The result written to the JSON file, with ``"json_path"`` (and ``"plot_path"``) added.
    """
    p = _parser()
    args = p.parse_args(argv)
    for names, wrong, which in ((FORWARD_ONLY, args.decode, "the forward benchmark, not --decode"),
                                (DECODE_ONLY, not args.decode, "the decode benchmark: add --decode")):
        for name in names:
            if wrong and getattr(args, name) is not None:
                p.error(f"{_option(name)}: applies to {which}")
    try:
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError as err:
        p.error(f"--device: {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device: expected an available device, got cuda (torch.cuda.is_available() is False)")
    for option, value in (("--warmup", args.warmup), ("--repeats", args.repeats)):
        if value is not None and value < (0 if option == "--warmup" else 1):
            p.error(f"{option}: expected an integer >= {0 if option == '--warmup' else 1}, got {value}")
    if args.threads is not None:
        if args.threads <= 0:
            p.error(f"--threads: expected a positive integer, got {args.threads}")
        torch.set_num_threads(args.threads)
    preset_name = "quick" if args.quick else ("full-cuda" if device.type == "cuda" else "full-cpu")
    try:
        # Optional dependencies first, so a missing one stops the run before it starts.
        if not args.no_progress:
            require("tqdm", "the progress bar; --no-progress runs without it")
        if not args.no_plot:
            require("matplotlib", "the plot; --no-plot writes the JSON only")
        run = _decode if args.decode else _forward
        data, fig = run(p, args, device, preset_name)
    except MissingExtra as err:
        p.error(str(err))
    data["config"]["preset"] = preset_name
    data["config"]["argv"] = list(sys.argv[1:] if argv is None else argv)
    if args.quick:
        data["config"]["indicative"] = INDICATIVE
    json_path = write_json(data, args.out)
    data["json_path"] = str(json_path)
    if fig is not None:
        plot_path = json_path.with_suffix(".png")
        fig.savefig(plot_path, dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
        data["plot_path"] = str(plot_path)
    print_summary(data)
    print(f"wrote {data['json_path']}" + (f" and {data['plot_path']}" if "plot_path" in data else ""))
    return data


def _forward(p: argparse.ArgumentParser, args, device: torch.device, preset_name: str):
    preset = PRESETS[preset_name]

    def pick(value, key):
        return preset[key] if value is None else value

    B, L, E, H = _ints(p, pick(args.shape, "shape"), "--shape", "BLEH")
    _check_heads(p, "--shape", E, H)
    if args.kv_heads is None:
        G = _default_kv_heads(H)
    else:
        G = args.kv_heads
        if G <= 0 or H % G:
            p.error(f"--kv-heads: expected a positive divisor of H={H}, got {G}")
    shape = Shape(B, L, E, H, G)
    dtypes = _dtypes(p, args.dtype or preset["dtype"] or ("bfloat16,float16" if device.type == "cuda"
                                                           else "float32"))
    known = list(make_cases())
    cases = _select(p, args.cases, known, "--cases")
    sweep_cases = _select(p, args.sweep_cases, known, "--sweep-cases") if args.sweep_cases else \
        [n for n in DEFAULT_SWEEP_CASES if n in known]
    seq_lens, batch_sizes = pick(args.seq_lens, "seq_lens"), pick(args.batch_sizes, "batch_sizes")
    seq_lens = _int_list(seq_lens) if isinstance(seq_lens, str) else seq_lens
    batch_sizes = _int_list(batch_sizes) if isinstance(batch_sizes, str) else batch_sizes
    if args.max_memory_gb is not None:
        budget = args.max_memory_gb * 2**30
    elif device.type == "cuda":
        budget = 0.6 * torch.cuda.mem_get_info(device)[0]
    else:
        psutil = require("psutil", "the default --max-memory-gb on CPU (60% of available RAM); pass "
                                   "--max-memory-gb to run without it")
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
    return data, (None if args.no_plot else plot(data))


def _decode(p: argparse.ArgumentParser, args, device: torch.device, preset_name: str):
    preset = DECODE_PRESETS[preset_name]
    B, E, H, G = _ints(p, args.decode_shape or preset["shape"], "--decode-shape", "BEHG")
    _check_heads(p, "--decode-shape", E, H)
    if H % G:
        p.error(f"--decode-shape: expected G dividing H, got H={H}, G={G}")
    dtypes = _dtypes(p, args.dtype or preset["dtype"] or ("bfloat16" if device.type == "cuda" else "float32"))
    if len(dtypes) != 1:
        p.error(f"--dtype: expected one dtype with --decode, got {args.dtype!r}")
    cache_lens = args.cache_lens if args.cache_lens is not None else _int_list(preset["cache_lens"])
    if not cache_lens:
        p.error("--cache-lens: expected at least one cache length")
    steps = preset["steps"] if args.steps is None else args.steps
    if steps <= 0:
        p.error(f"--steps: expected a positive integer, got {steps}")
    data = run_decode(
        DecodeShape(B, E, H, G), cache_lens, steps=steps, device=device, dtype=dtypes[0],
        warmup=preset["warmup"] if args.warmup is None else args.warmup,
        repeats=preset["repeats"] if args.repeats is None else args.repeats,
        variants=_select(p, args.variants, list(DECODE_VARIANTS), "--variants", "variant"),
        progress=not args.no_progress,
    )
    return data, (None if args.no_plot else plot_decode(data))
