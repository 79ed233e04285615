"""The built site in a real browser (Debian's chromium driven by playwright; no browser download):
every page of both languages loads with no console error and no request to another host, every
formula is rendered by the bundled KaTeX, figures are drawn, the language switch lands on the
counterpart page and search finds Chinese and English words."""

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from urllib.parse import urlparse

import pytest

from conftest import DOCS, LANGS, ROOT, free_port, pages, url_path

ALL = [(lang, p) for lang in LANGS for p in pages(lang)]


@pytest.mark.parametrize("lang,md", ALL, ids=lambda x: str(x))
def test_page_loads_offline_with_formulas_and_figures(page, server, lang, md):
    page.goto(server + url_path(lang, md), wait_until="networkidle")
    assert page.title()
    assert page.errors == [], page.errors
    assert page.foreign == [], f"requests to other hosts: {page.foreign}"
    # Every arithmatex element was replaced by KaTeX output; no raw TeX delimiters remain.
    unrendered = page.eval_on_selector_all(
        ".arithmatex", "els => els.filter(e => !e.querySelector('.katex')).map(e => e.textContent)")
    assert unrendered == [], f"formulas left as TeX: {unrendered[:3]}"
    text = page.inner_text("article")
    assert "\\(" not in text and "\\[" not in text and "$$" not in text
    # Every figure the page's source draws is on the page, drawn, and has alt text.
    source = (DOCS / lang / md).read_text(encoding="utf-8")
    expected = source.count("show(fig")
    figures = page.eval_on_selector_all(
        "figure.attnref-figure svg",
        "els => els.map(e => [e.getAttribute('aria-label'), e.getBoundingClientRect().width])")
    assert len(figures) == expected
    for alt, width in figures:
        assert alt and width > 50


@pytest.mark.parametrize("lang,md", ALL, ids=lambda x: str(x))
def test_language_switch_lands_on_the_counterpart(page, server, lang, md):
    other = "en" if lang == "zh" else "zh"
    page.goto(server + url_path(lang, md))
    href = page.get_attribute(f'.md-select a[hreflang="{other}"]', "href")
    page.goto(urllib.parse.urljoin(page.url, href))
    assert urlparse(page.url).path == url_path(other, md)
    assert page.get_attribute("html", "lang").startswith(other)


@pytest.mark.parametrize("lang,query", [("zh", "注意力"), ("en", "rotary")])
def test_search_finds_results_in_both_languages(page, server, lang, query):
    page.goto(server + ("/" if lang == "zh" else "/en/"), wait_until="networkidle")
    page.click(".md-search__input")
    page.fill("input.md-search__input", query)
    page.keyboard.press("End")  # the search box reacts to key events, as when a reader types
    page.wait_for_selector(".md-search-result__item", timeout=15000)
    assert page.locator(".md-search-result__item").count() > 0
    assert page.foreign == []


def test_readme_serve_command_serves_the_site():
    """`make serve` ends in `mkdocs serve`; it must bring both languages up."""
    port = free_port()
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.Popen([sys.executable, "-m", "mkdocs", "serve", "--no-livereload",
                             "-a", f"127.0.0.1:{port}"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/en/", timeout=5) as r:
                    assert r.status == 200 and b"attnref" in r.read()
                break
            except OSError:
                assert proc.poll() is None, "mkdocs serve exited"
                assert time.time() < deadline, "mkdocs serve did not come up"
                time.sleep(1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert "注意力".encode() in r.read()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
