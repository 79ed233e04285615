"""The offline bundle (`make offline`): one zip of the site that works opened from disk, with no
server and no network: pages, formulas, figures, the language switch and search."""

import subprocess
import sys
import zipfile
from urllib.parse import urlparse

import pytest

from conftest import ROOT

LOCAL = ("file", "data", "blob", "about")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """The README's `make offline`, run in the environment the tests run in, unpacked."""
    out = tmp_path_factory.mktemp("offline")
    result = subprocess.run(
        ["make", "-o", "setup", "offline", f"VENV={sys.prefix}", f"DIST={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-6000:]
    (archive,) = out.glob("*.zip")
    unpacked = out / "unpacked"
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(unpacked)
    (root,) = unpacked.iterdir()
    return root


@pytest.fixture
def tab(browser):
    """A browser tab that records console errors and every request that is not to a local file."""
    context = browser.new_context()
    pg = context.new_page()
    pg.errors, pg.foreign = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: urlparse(r.url).scheme not in LOCAL and pg.foreign.append(r.url))
    yield pg
    context.close()


@pytest.mark.parametrize("lang,path,query", [("en", "en/rope.html", "rotary"), ("zh", "rope.html", "注意力")])
def test_bundle_works_from_disk(bundle, tab, lang, path, query):
    tab.goto((bundle / path).as_uri(), wait_until="networkidle")
    assert tab.get_attribute("html", "lang").startswith(lang)
    assert len(tab.inner_text("article")) > 2000
    rendered = tab.eval_on_selector_all(".arithmatex", "els => els.map(e => !!e.querySelector('.katex'))")
    assert rendered and all(rendered), "formulas left as TeX"
    assert tab.locator("figure.attnref-figure svg").count() >= 1
    # Links are to files, not to folders a file:// page cannot open.
    other = "zh" if lang == "en" else "en"
    href = tab.get_attribute(f'.md-select a[hreflang="{other}"]', "href")
    assert href.endswith("rope.html")
    # Search runs from file:// too: the inlined index and the bundled worker shim.
    tab.click(".md-search__input")
    tab.fill("input.md-search__input", query)
    tab.keyboard.press("End")
    tab.wait_for_selector(".md-search-result__item", timeout=15000)
    assert tab.errors == [], tab.errors
    assert tab.foreign == [], f"requests off the disk: {tab.foreign}"
