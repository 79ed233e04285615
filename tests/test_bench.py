"""attnref.bench: both benchmarks write complete, self-consistent JSON and a plot; the help says what
each preset runs; bad input and missing optional packages get a clear message. Nothing here asserts
a speed: the benchmark measures, tests check."""

import importlib
import json
import math
import subprocess
import sys

import pytest
import torch

from attnref import bench
from attnref.bench import cli, report, targets, timing

CASES = ["fused_qkv", "fused_qkv[eager]", "llama[gqa]", "flux", "torch.sdpa[causal]", "torch.mha[nw=False]"]
SHAPE = (2, 16, 32, 4)  # B, L, E, H
DECODE = dict(B=1, E=32, H=4, G=2, cache_lens=(4, 8), steps=3)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    data = bench.main([
        "--shape", ",".join(map(str, SHAPE)), "--cases", ",".join(CASES), "--warmup", "0", "--repeats", "2",
        "--seq-lens", "8,16,32", "--batch-sizes", "1,2", "--sweep-len", "16",
        "--sweep-cases", "fused_qkv,fused_qkv[eager]", "--sweep-modes", "fwd", "--device", "cpu",
        "--out", str(out), "--no-progress",
    ])
    return data, out


@pytest.fixture(scope="module")
def decode_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("decode")
    d = DECODE
    data = bench.main([
        "--decode", "--decode-shape", f"{d['B']},{d['E']},{d['H']},{d['G']}",
        "--cache-lens", ",".join(map(str, d["cache_lens"])), "--steps", str(d["steps"]),
        "--warmup", "0", "--repeats", "2", "--device", "cpu", "--out", str(out), "--no-progress",
    ])
    return data, out


# -- forward ------------------------------------------------------------------------------------


def test_json_has_environment_and_config(run):
    data, out = run
    files = list(out.glob("bench-cpu-*.json"))
    assert [str(f) for f in files] == [data["json_path"]]
    saved = json.loads(files[0].read_text(encoding="utf-8"))
    assert saved["kind"] == "forward"
    env = saved["environment"]
    for key in ("device", "device_name", "cpu_model", "torch", "transformers", "python", "threads", "date"):
        assert key in env, key
    # The code is identified by its package version; never by a commit of this repository.
    assert env["attnref"] == importlib.import_module("attnref").__version__
    assert not any("git" in key or "commit" in key for key in env)
    assert env["device"] == "cpu" and env["threads"] >= 1
    config = saved["config"]
    assert config["shape"] == {"B": 2, "L": 16, "E": 32, "H": 4, "G": 2, "D": 8}
    assert config["dtypes"] == ["float32"] and config["preset"] == "full-cpu"
    assert "indicative" not in config
    for key in ("memory", "flops", "timing"):
        assert isinstance(config[key], str) and config[key]


def test_every_requested_case_and_mode_is_present_with_sane_values(run):
    data, _ = run
    results = data["results"]
    assert sorted((r["case"], r["mode"]) for r in results) == sorted(
        (c, m) for c in CASES for m in ("fwd", "fwd+bwd"))
    cases = bench.make_cases()
    B, L, E, H = SHAPE
    for r in results:
        t = r["time_s"]
        assert len(t["repeats"]) == 2
        assert 0 < t["min"] <= t["q25"] <= t["median"] <= t["q75"] <= t["max"]
        assert math.isclose(r["tokens_per_s"], B * L / t["median"], rel_tol=1e-9)
        shape = bench.Shape(B, L, E, H, r["G"])
        assert r["flops"] == bench.flops(cases[r["case"]], shape, r["mode"]) > 0
        assert math.isclose(r["tflops_per_s"], r["flops"] / t["median"] / 1e12, rel_tol=1e-9)
        assert r["peak_fraction"] is None  # no CPU peak is claimed
        assert isinstance(r["peak_memory_bytes"], int) and r["peak_memory_bytes"] >= 0


def test_sweeps_and_targets(run):
    data, _ = run
    sweep = data["sweep"]
    by_axis = {(r["axis"], r["case"], r["L"], r["B"]) for r in sweep}
    for case in ("fused_qkv", "fused_qkv[eager]"):
        assert {("L", case, L, 1) for L in (8, 16, 32)} <= by_axis
        assert {("B", case, 16, B) for B in (1, 2)} <= by_axis
    found = data["targets"]
    native = {(t["case"], t["mode"]): t for t in found["vs_native"]}
    assert native[("fused_qkv", "fwd")]["reference"] in ("torch.mha[nw=False]", "torch.sdpa[causal]")
    assert native[("flux", "fwd")]["holds"] is None and native[("flux", "fwd")]["why"]
    by = {(r["case"], r["mode"]): r["time_s"]["min"] for r in data["results"]}
    t = native[("fused_qkv", "fwd")]
    assert math.isclose(t["ratio"], by[("fused_qkv", "fwd")] / by[(t["reference"], "fwd")], rel_tol=1e-12)
    assert t["holds"] == (t["ratio"] <= bench.TARGETS["vs_native"])
    overhead = {(t["case"], t["mode"]): t for t in found["overhead"]}
    o = overhead[("fused_qkv", "fwd")]
    assert o["bare"] == "torch.sdpa[causal]"
    assert math.isclose(o["share"], 1 - by[("torch.sdpa[causal]", "fwd")] / by[("fused_qkv", "fwd")], rel_tol=1e-12)
    # At this tiny shape a call may touch no new page (0 bytes), so a fit may lack points.
    for t in found["memory_linear"]:
        assert t["case"] in ("fused_qkv", "fused_qkv[eager]") and math.isfinite(t["exponent"])
    assert all(r["peak_memory_bytes"] >= 0 for r in sweep)
    for t in found["vs_native"] + found["overhead"] + found["memory_linear"]:
        assert t["holds"] in (True, False, None)


def test_plot_is_written(run):
    data, out = run
    assert data["plot_path"] == data["json_path"].replace(".json", ".png")
    assert (out / data["plot_path"].rsplit("/", 1)[-1]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_flops_formula():
    cases = bench.make_cases()
    s = bench.Shape(B=2, L=4, E=8, H=2, G=1)  # D = 4
    proj_mha = 2 * 2 * 4 * 8 * 4 * (2 * 2 + 2 * 2)
    assert bench.flops(cases["torch.sdpa[full]"], s, "fwd") == proj_mha + 4 * 2 * 2 * 4 * 16
    assert bench.flops(cases["torch.sdpa[causal]"], s, "fwd") == proj_mha + 4 * 2 * 2 * 4 * 10
    proj_gqa = 2 * 2 * 4 * 8 * 4 * (2 * 2 + 2 * 1)
    assert bench.flops(cases["llama[gqa]"], s, "fwd") == proj_gqa + 4 * 2 * 2 * 4 * 10
    assert bench.flops(cases["flux"], s, "fwd") == 4 * 2 * 2 * 4 * 16
    extra = 2 * 2 * 4 * 8 * 8
    assert bench.flops(cases["mha_pytorch_class[nw=False]"], s, "fwd") == proj_mha + extra + 4 * 2 * 2 * 4 * 10
    assert bench.flops(cases["esm"], s, "fwd+bwd") == 3 * bench.flops(cases["esm"], s, "fwd")


# -- decode -------------------------------------------------------------------------------------


def test_decode_json_has_every_variant_and_length(decode_run):
    data, out = decode_run
    assert [str(f) for f in out.glob("decode-cpu-*.json")] == [data["json_path"]]
    saved = json.loads(open(data["json_path"], encoding="utf-8").read())
    assert saved["kind"] == "decode" and saved["environment"]["attnref"]
    config = saved["config"]
    assert config["shape"] == {"B": 1, "E": 32, "H": 4, "G": 2, "D": 8}
    assert config["cache_lens"] == [4, 8] and config["steps"] == 3 and config["dtype"] == "float32"
    assert set(config["variants"]) == set(bench.DECODE_VARIANTS)
    rows = {(r["variant"], r["cache_len"]): r for r in saved["results"]}
    assert set(rows) == {(v, S) for v in bench.DECODE_VARIANTS for S in (4, 8)}
    for (variant, S), r in rows.items():
        d = r["step_s"]  # per trial, the median of its 3 steps
        assert len(d["repeats"]) == 2 and 0 < d["min"] <= d["median"] <= d["max"]
        assert math.isclose(r["tokens_per_s"]["best"], 1 / d["min"], rel_tol=1e-12)  # B = 1
        assert math.isclose(r["tokens_per_s"]["median"], 1 / d["median"], rel_tol=1e-12)
        assert r["prefill_s"]["min"] > 0 and r["peak_memory_bytes"] >= 0
        # Every variant computes the same function as attnref's growing cache.
        assert r["compared_with"] == "attnref[KVCache]" and r["max_abs_diff"] < 1e-5
        # Keys and values of S + N tokens, G heads of D float32 channels: preallocated or grown.
        assert r["cache_bytes"] == 2 * 1 * 2 * (S + 3) * 8 * 4, variant


def test_decode_ratios_and_target_come_from_the_same_run(decode_run):
    data, _ = decode_run
    best = {(r["variant"], r["cache_len"]): r["tokens_per_s"]["best"] for r in data["results"]}
    pairs = {(r["case"], r["reference"], r["cache_len"]): r["speedup"] for r in data["ratios"]}
    assert len(pairs) == 4 * 2
    for (case, reference, S), speedup in pairs.items():
        assert math.isclose(speedup, best[(case, S)] / best[(reference, S)], rel_tol=1e-12)
    (target,) = data["targets"]["decode_speedup"]
    assert (target["case"], target["reference"], target["cache_len"]) == (
        "attnref[StaticKVCache]", "transformers[DynamicCache]", 8)
    assert target["speedup"] == pairs[("attnref[StaticKVCache]", "transformers[DynamicCache]", 8)]
    assert target["holds"] == (target["speedup"] >= bench.TARGETS["decode_speedup"])


def test_decode_plot_is_written(decode_run):
    data, _ = decode_run
    assert open(data["plot_path"], "rb").read()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decode_target_without_data_does_not_apply():
    (row,) = targets.decode_targets([], "attnref[StaticKVCache]", "transformers[DynamicCache]")["decode_speedup"]
    assert row["holds"] is None and "no result" in row["why"]


def test_run_decode_can_skip_transformers_variants():
    data = bench.run_decode(bench.DecodeShape(1, 16, 2, 1), [3], steps=2, device=torch.device("cpu"),
                            warmup=0, repeats=1, variants=["attnref[KVCache]", "attnref[StaticKVCache]"],
                            progress=False)
    assert [r["variant"] for r in data["results"]] == ["attnref[KVCache]", "attnref[StaticKVCache]"]
    assert [(r["case"], r["reference"]) for r in data["ratios"]] == [("attnref[StaticKVCache]", "attnref[KVCache]")]
    assert data["targets"]["decode_speedup"][0]["holds"] is None


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_both_benchmarks_run_on_cuda(tmp_path):
    forward = bench.main(["--device", "cuda", "--shape", "2,16,32,4", "--cases", "llama[gqa],transformers.llama[gqa]",
                          "--seq-lens", "8,16", "--sweep-cases", "llama[gqa]", "--warmup", "0", "--repeats", "2",
                          "--out", str(tmp_path), "--no-plot", "--no-progress"])
    assert forward["environment"]["device"] == "cuda" and forward["environment"]["cuda"]
    assert forward["config"]["dtypes"] == ["bfloat16", "float16"]
    assert all(r["peak_memory_bytes"] >= 0 and r["time_s"]["min"] > 0 for r in forward["results"])
    decode = bench.main(["--decode", "--device", "cuda", "--decode-shape", "1,32,4,2", "--cache-lens", "4,8",
                         "--steps", "3", "--warmup", "0", "--repeats", "2", "--out", str(tmp_path), "--no-plot",
                         "--no-progress"])
    assert decode["config"]["dtype"] == "bfloat16"
    assert {r["variant"] for r in decode["results"] if "tokens_per_s" in r} == set(bench.DECODE_VARIANTS)
    assert all(r["max_abs_diff"] < 0.1 for r in decode["results"])  # bfloat16: 8 mantissa bits


# -- timing ------------------------------------------------------------------------------------


def test_interleaved_rounds_rotate_and_drop_a_call_that_runs_out_of_memory():
    order = []

    def make(name):
        def call():
            order.append(name)
            if name == "c" and order.count("c") == 2:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1 GiB")
            return len(order)
        return call

    ticks = []
    got = timing.time_interleaved({n: make(n) for n in "abc"}, warmup=1, repeats=2, device=torch.device("cpu"),
                                  on_call=lambda: ticks.append(1))
    assert order == ["a", "b", "c", "b", "c", "a", "a", "b"]  # round 3 skips c, which ran out of memory
    assert got == {"a": [6, 7], "b": [4, 8], "c": "out of memory: CUDA out of memory. Tried to allocate 1 GiB"}
    assert len(ticks) == len(order)


def test_spread():
    s = timing.spread([3.0, 1.0, 2.0, 4.0])
    assert (s["min"], s["q25"], s["median"], s["q75"], s["max"]) == (1.0, 1.75, 2.5, 3.25, 4.0)
    assert s["repeats"] == [3.0, 1.0, 2.0, 4.0]
    assert timing.spread([5.0])["q25"] == 5.0


# -- command line ------------------------------------------------------------------------------


def help_text(capsys) -> str:
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # undo argparse's line wrapping


def test_help_names_every_option_case_and_variant(capsys):
    text = help_text(capsys)
    for option in ("--quick", "--decode", "--shape", "--cases", "--device", "--dtype", "--seq-lens",
                   "--batch-sizes", "--out", "--cache-lens", "--steps", "--variants", "--decode-shape"):
        assert option in text
    for name in list(bench.make_cases()) + list(bench.DECODE_VARIANTS):
        assert name in text


def test_help_says_what_each_preset_runs_and_how_long_it_takes(capsys):
    text = help_text(capsys)
    for p in cli.PRESETS.values():
        B, L, E, H = p["shape"].split(",")
        assert (f"B,L,E,H={B},{L},{E},{H}" in text and f"{p['warmup']} warm-up + {p['repeats']} timed calls" in text
                and p["duration"] in text)
        assert f"L sweep {p['seq_lens'].split(',')[0]}..{p['seq_lens'].split(',')[-1]}" in text
    for p in cli.DECODE_PRESETS.values():
        assert f"B,E,H,G={p['shape']}" in text and f"then {p['steps']} decode steps" in text
        assert p["cache_lens"].replace(",", ", ") in text and p["duration"] in text
    # --quick says plainly why a target can read FAILS.
    quick = text[text.index("--quick "):text.index("--decode ")]
    assert "indicative" in quick and "FAILS without a defect" in quick


def test_quick_run_says_its_figures_are_indicative(tmp_path, capsys):
    data = bench.main(["--quick", "--shape", "1,8,16,2", "--cases", "fused_qkv,torch.sdpa[causal]", "--modes", "fwd",
                       "--seq-lens", "", "--warmup", "0", "--repeats", "1", "--device", "cpu", "--out", str(tmp_path),
                       "--no-plot", "--no-progress"])
    out = capsys.readouterr().out
    assert report.INDICATIVE in out and "can read FAILS without a defect" in report.INDICATIVE
    assert data["config"]["preset"] == "quick" and data["config"]["indicative"] == report.INDICATIVE


@pytest.mark.parametrize("module,argv", [
    ("tqdm", []),
    ("matplotlib", ["--no-progress"]),
    ("psutil", ["--no-progress", "--no-plot"]),
])
def test_missing_optional_dependency_names_the_bench_extra(monkeypatch, capsys, module, argv):
    monkeypatch.setitem(sys.modules, module, None)  # what a missing package looks like to import
    with pytest.raises(SystemExit) as exc:
        bench.main(argv + ["--device", "cpu", "--out", "/nonexistent"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {module}: expected the package installed" in err
    assert "pip install 'attnref[bench]'" in err


def test_module_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "attnref.bench", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "usage: python -m attnref.bench" in result.stdout
    assert "RuntimeWarning" not in result.stderr


@pytest.mark.parametrize("argv,message", [
    (["--shape", "2,16,30,4"], "--shape: expected E divisible by H (head dim D = E / H), got E=30, H=4"),
    (["--shape", "2,16,36,4"], "--shape: expected an even head dim E / H"),
    (["--shape", "2,16,32"], "--shape: expected four comma-separated integers B,L,E,H, got '2,16,32'"),
    (["--shape", "0,16,32,4"], "--shape: expected B > 0, got B=0"),
    (["--kv-heads", "5"], "--kv-heads: expected a positive divisor of H=12, got 5"),
    (["--cases", "no_such_case"], "--cases: no case matches 'no_such_case'"),
    (["--modes", "bwd"], "--modes: expected a comma-separated subset of fwd,fwd+bwd"),
    (["--dtype", "int8"], "--dtype: expected floating dtypes"),
    (["--seq-lens", "128,x"], "expected comma-separated positive integers"),
    (["--repeats", "0"], "--repeats: expected an integer >= 1, got 0"),
    (["--decode", "--seq-lens", "8"], "--seq-lens: applies to the forward benchmark, not --decode"),
    (["--cache-lens", "8"], "--cache-lens: applies to the decode benchmark: add --decode"),
    (["--decode", "--decode-shape", "1,30,4,2"], "--decode-shape: expected E divisible by H"),
    (["--decode", "--decode-shape", "1,32,4,3"], "--decode-shape: expected G dividing H, got H=4, G=3"),
    (["--decode", "--decode-shape", "1,32,4"], "--decode-shape: expected four comma-separated integers B,E,H,G"),
    (["--decode", "--dtype", "float32,float64"], "--dtype: expected one dtype with --decode"),
    (["--decode", "--steps", "0"], "--steps: expected a positive integer, got 0"),
    (["--decode", "--cache-lens", ""], "--cache-lens: expected at least one cache length"),
    (["--decode", "--variants", "vllm"], "--variants: no variant matches 'vllm'"),
])
def test_bad_input_is_rejected_clearly(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv + ["--device", "cpu", "--no-progress", "--no-plot", "--out", "/nonexistent"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_every_part_of_the_subpackage_explains_itself():
    for part in ("cases", "decode", "timing", "forward", "targets", "report", "cli", "_deps", "__main__"):
        module = importlib.import_module(f"attnref.bench.{part}")
        assert module.__doc__ and len(module.__doc__.split()) >= 5, part
    for name in bench.__all__:
        assert getattr(bench, name).__doc__, name
