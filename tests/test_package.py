"""The package as a user installs it: licence, py.typed and project URLs in the wheel, submodules
listed and imported lazily, and a quiet import with nothing but the runtime dependencies."""

import pkgutil
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from importlib import metadata

from packaging.requirements import Requirement

import attnref
from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
# Packages that only an extra (test, docs, bench) installs; `import attnref` must not pull them in.
EXTRAS_ONLY = ("transformers", "matplotlib", "tqdm")


def python(code: str, cwd, *flags: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this checkout's attnref."""
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, *flags, "-c", code], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_license_file_is_the_declared_apache_2():
    assert PYPROJECT["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert re.search(r"Apache License\s+Version 2\.0, January 2004", text)
    assert "END OF TERMS AND CONDITIONS" in text


def test_wheel_ships_py_typed_license_and_project_urls(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src)
    shutil.copytree(ROOT / "attnref", src / "attnref", ignore=shutil.ignore_patterns("__pycache__"))
    # The venv's setuptools (test extra) builds it: no download, no build isolation.
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                             "--quiet", "-w", str(tmp_path / "dist"), str(src)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = (tmp_path / "dist").glob("attnref-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        info = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(info).decode()
        assert "attnref/py.typed" in names
        license_path = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert zf.read(license_path) == (ROOT / "LICENSE").read_bytes()
    assert "License-Expression: Apache-2.0" in meta
    assert "Project-URL: Documentation, https://attnref.github.io/attnref/" in meta
    assert "Project-URL: Source, https://github.com/attnref/attnref" in meta


def test_every_public_submodule_is_listed():
    found = {m.name for m in pkgutil.iter_modules(attnref.__path__) if not m.name.startswith("_")}
    assert set(attnref.__all__) == found
    assert set(attnref.__all__) <= set(dir(attnref))


def test_import_attnref_imports_nothing_else(tmp_path):
    code = (
        "import sys, attnref\n"
        # Not even torch: the submodules, and what they import, load on first use (checked with
        # attnref.llama below, where torch may be imported).
        f"print([m for m in sys.modules if m.startswith(('attnref.', 'torch', *{EXTRAS_ONLY!r}))])\n"
        "print('llama' in dir(attnref))\n"
        "try:\n"
        "    attnref.nope\n"
        "except AttributeError as e:\n"
        "    print(e)\n"
    )
    result = python(code, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[]", "True", "module 'attnref' has no attribute 'nope'"]


def _key(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _runtime_closure() -> set[str]:
    """Distributions that `pip install attnref` installs: its dependencies and theirs, no extras."""
    todo = [Requirement(r) for r in PYPROJECT["project"]["dependencies"]]
    seen = {"attnref"}
    while todo:
        req = todo.pop()
        if _key(req.name) in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
            continue
        seen.add(_key(req.name))
        todo += [Requirement(r) for r in metadata.requires(req.name) or []]
    return seen


def test_import_with_only_the_runtime_dependencies_warns_nothing(tmp_path):
    """Every other installed distribution is hidden, as in a venv with only `pip install attnref`;
    any warning (torch's "Failed to initialize NumPy" among them) is an error."""
    runtime = _runtime_closure()
    hidden = sorted(module for module, dists in metadata.packages_distributions().items()
                    if not any(_key(d) in runtime for d in dists))
    assert "transformers" in hidden
    code = (
        "import sys\n"
        f"HIDDEN = set({hidden!r})\n"
        "class Hide:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] in HIDDEN:\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Hide())\n"
        "import attnref\n"
        "print('attnref.llama' in sys.modules)\n"
        "layer = attnref.llama.LlamaAttention(16, 2)  # no import attnref.llama needed\n"
        "print('attnref.llama' in sys.modules)\n"
        "for name in attnref.__all__:\n"
        "    getattr(attnref, name)\n"
        "import torch\n"
        "print(layer(torch.randn(1, 3, 16)).shape)\n"
    )
    result = python(code, tmp_path, "-W", "error")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.splitlines() == ["False", "True", "torch.Size([1, 3, 16])"]
