import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LANGS = ("zh", "en")


def pages(lang: str) -> list[Path]:
    """Markdown pages of one language, relative to that language's folder."""
    base = DOCS / lang
    return sorted(p.relative_to(base) for p in base.rglob("*.md"))


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site built once per session with `mkdocs build --strict`; fails on any warning."""
    site = tmp_path_factory.mktemp("site")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)
    return site
