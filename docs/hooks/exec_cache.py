"""MkDocs hook: remember what each build-time Python block printed, so that a rebuild with nothing
changed does not draw every figure again.

markdown-exec runs each ```python exec="true"``` block of a page (figures and tables drawn from the
package) and renders what it prints. Drawing them is most of a build's time, and the test suite
builds the site three times (the site, the offline bundle, `mkdocs serve`). This hook wraps the
function that runs a block: the printed text is stored under `.cache/exec/`, keyed by everything
that can change it:

- the block's code, as markdown-exec runs it (the drawing helpers of docs/snippets are pasted into
  it by the snippets extension, and the page's language is written in it);
- every file of the package (`attnref/`), of `docs/snippets/` and of `docs/data/` (the benchmark
  results the Performance page draws from);
- the versions of Python, torch, numpy, einops and matplotlib.

A block that raises is not stored, so a failing figure fails every build. Blocks in a markdown-exec
session share state with the blocks before them and always run. Delete `.cache/exec/` to draw
everything again.
"""

from __future__ import annotations

import hashlib
import os
import platform
from functools import cache
from importlib.metadata import version
from pathlib import Path

from markdown_exec._internal.formatters import python as exec_python
from markdown_exec._internal.formatters.base import base_format
from markdown_exec._internal.main import formatters

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "exec"
INPUTS = ("attnref", "docs/snippets", "docs/data")


@cache
def fingerprint() -> str:
    """A digest of every input a block's output can depend on besides its own code (one per build
    process: the inputs do not change while the site builds)."""
    digest = hashlib.sha256()
    for name in ("python", "torch", "numpy", "einops", "matplotlib"):
        digest.update(f"{name}={platform.python_version() if name == 'python' else version(name)}\n".encode())
    for folder in INPUTS:
        for path in sorted((ROOT / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_cached(code: str, returncode: int | None = None, session: str | None = None,
               id: str | None = None, **extra: str) -> str:  # noqa: A002 (markdown-exec's name)
    """markdown-exec's runner, answering from the cache when the block and its inputs are unchanged."""
    if session:
        return exec_python._run_python(code, returncode=returncode, session=session, id=id, **extra)
    key = hashlib.sha256(f"{fingerprint()}\0{code}".encode()).hexdigest()
    stored = CACHE / key[:2] / key
    if stored.is_file():
        return stored.read_text(encoding="utf-8")
    output = exec_python._run_python(code, returncode=returncode, session=session, id=id, **extra)
    stored.parent.mkdir(parents=True, exist_ok=True)
    partial = stored.with_suffix(f".{os.getpid()}.tmp")
    partial.write_text(output, encoding="utf-8")
    partial.replace(stored)  # atomic: parallel builds never read half a file
    return output


def format_python(**kwargs) -> str:
    return base_format(language="python", run=run_cached, **kwargs)


def on_config(config):
    formatters["python"] = format_python
    return config
