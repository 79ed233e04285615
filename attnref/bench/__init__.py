"""Benchmarks of attnref against the PyTorch and transformers code that computes the same function.

Two benchmarks share one command, ``python -m attnref.bench`` (``--help`` lists every option and
what each preset runs):

- **forward** (the default): forward and forward + backward of every attnref module and of the
  torch-native paths computing the same function, at one shape and over sweeps of the sequence
  length L and the batch size B; time, tokens/s, FLOP/s and peak memory per call
  ([`run_benchmark()`][attnref.bench.run_benchmark]).
- **decode** (``--decode``): LLaMA attention prefilling S tokens, then decoding one token per
  step, with attnref's growing [`KVCache`][attnref.llama.KVCache] and preallocated
  [`StaticKVCache`][attnref.llama.StaticKVCache] against transformers' ``DynamicCache`` and
  ``StaticCache``; tokens/s and memory per cache length ([`run_decode()`][attnref.bench.run_decode]).

Both judge their results against [`TARGETS`][attnref.bench.TARGETS] with ratios taken within one
run, and write one JSON file (machine, package versions, settings, every measurement, verdicts)
plus a plot.

The subpackage is read one part at a time:

| module | what it holds |
|---|---|
| ``cases`` | what the forward benchmark measures: [`Shape`][attnref.bench.Shape], [`Case`][attnref.bench.Case], [`make_cases()`][attnref.bench.make_cases], the FLOP count [`flops()`][attnref.bench.flops] |
| ``decode`` | the decode benchmark: its variants, one trial (prefill, then N steps), [`run_decode()`][attnref.bench.run_decode] |
| ``timing`` | how a call is timed (interleaved repeats) and its memory measured; the machine's description |
| ``forward`` | running the forward cases and sweeps: [`run_benchmark()`][attnref.bench.run_benchmark] |
| ``targets`` | [`TARGETS`][attnref.bench.TARGETS] and the verdicts on a result |
| ``report`` | the JSON file, the printed summary, the plots ([`plot()`][attnref.bench.plot], [`plot_decode()`][attnref.bench.plot_decode]) |
| ``cli`` | the command line and its presets: [`main()`][attnref.bench.main] |

The optional dependencies (tqdm for progress bars, psutil for CPU memory budgets, matplotlib for
plots) come with the ``bench`` extra: ``pip install 'attnref[bench]'``. Each is imported only
when used; a missing one stops the command with a message that says so.
"""

from attnref.bench.cases import Case, Shape, flops, make_cases
from attnref.bench.cli import main
from attnref.bench.decode import DECODE_VARIANTS, DecodeShape, run_decode
from attnref.bench.forward import run_benchmark
from attnref.bench.report import plot, plot_decode
from attnref.bench.targets import TARGETS
from attnref.bench.timing import PEAK_TFLOPS

__all__ = [
    "Shape",
    "Case",
    "PEAK_TFLOPS",
    "TARGETS",
    "make_cases",
    "flops",
    "run_benchmark",
    "plot",
    "DecodeShape",
    "DECODE_VARIANTS",
    "run_decode",
    "plot_decode",
    "main",
]
