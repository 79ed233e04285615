"""attnref.bench: the command line writes complete, self-consistent JSON and a plot, and rejects bad
input with a clear message. Nothing here asserts a speed: the benchmark measures, tests check."""

import json
import math

import pytest

from attnref import bench

CASES = ["fused_qkv", "fused_qkv[eager]", "llama[gqa]", "flux", "torch.sdpa[causal]", "torch.mha[nw=False]"]
SHAPE = (2, 16, 32, 4)  # B, L, E, H


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


def test_json_has_environment_and_config(run):
    data, out = run
    files = list(out.glob("bench-cpu-*.json"))
    assert [str(f) for f in files] == [data["json_path"]]
    saved = json.loads(files[0].read_text(encoding="utf-8"))
    env = saved["environment"]
    for key in ("device", "device_name", "cpu_model", "torch", "python", "threads", "date", "git_commit"):
        assert key in env, key
    assert env["device"] == "cpu" and env["threads"] >= 1
    config = saved["config"]
    assert config["shape"] == {"B": 2, "L": 16, "E": 32, "H": 4, "G": 2, "D": 8}
    assert config["dtypes"] == ["float32"]
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
    targets = data["targets"]
    native = {(t["case"], t["mode"]): t for t in targets["vs_native"]}
    assert native[("fused_qkv", "fwd")]["reference"] in ("torch.mha[nw=False]", "torch.sdpa[causal]")
    assert native[("flux", "fwd")]["holds"] is None and native[("flux", "fwd")]["why"]
    overhead = {(t["case"], t["mode"]): t for t in targets["overhead"]}
    assert overhead[("fused_qkv", "fwd")]["bare"] == "torch.sdpa[causal]"
    # At this tiny shape a call may touch no new page (0 bytes), so a fit may lack points.
    for t in targets["memory_linear"]:
        assert t["case"] in ("fused_qkv", "fused_qkv[eager]") and math.isfinite(t["exponent"])
    assert all(r["peak_memory_bytes"] >= 0 for r in sweep)
    for t in targets["vs_native"] + targets["overhead"] + targets["memory_linear"]:
        assert t["holds"] in (True, False, None)


def test_plot_is_written(run):
    data, out = run
    png = out / data["json_path"].rsplit("/", 1)[-1].replace(".json", ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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


def test_every_case_is_named_in_help(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--shape", "--cases", "--device", "--dtype", "--seq-lens", "--batch-sizes", "--out"):
        assert option in text
    for name in bench.make_cases():
        assert name in text


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
])
def test_bad_input_is_rejected_clearly(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        bench.main(argv + ["--device", "cpu", "--no-progress"])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
