"""The built site in a real browser (Debian's chromium driven by playwright; no browser download):
every page of both languages loads with no console error and no request to another host, every
formula is rendered by the bundled KaTeX, figures are drawn, the language switch links to the
counterpart page and search finds Chinese and English words."""

import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from urllib.parse import urlparse

import pytest

from conftest import DOCS, LANGS, ROOT, drain, free_port, pages, url_path, visit

ALL = [(lang, p) for lang in LANGS for p in pages(lang)]


@pytest.mark.parametrize("lang,md", ALL, ids=lambda x: str(x))
def test_page_loads_offline_with_formulas_and_figures(shared_tab, server, lang, md):
    page = shared_tab
    visit(page, server + url_path(lang, md))
    assert page.title()
    errors, foreign = drain(page)
    assert errors == [], errors
    assert foreign == [], f"requests to other hosts: {foreign}"
    # Formulas are typeset at build time: the page loads no KaTeX script.
    assert page.eval_on_selector_all("script[src*=katex]", "els => els.length") == 0
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
    # The page is in its language, and the language switch lands on its counterpart (which this
    # test loads and checks under the other language's parameters, without a second load here).
    assert page.get_attribute("html", "lang").startswith(lang)
    other = "en" if lang == "zh" else "zh"
    href = page.get_attribute(f'.md-select a[hreflang="{other}"]', "href")
    assert urlparse(urllib.parse.urljoin(page.url, href)).path == url_path(other, md)


@pytest.mark.parametrize("lang,query", [("zh", "注意力"), ("en", "rotary")])
def test_search_finds_results_in_both_languages(page, server, lang, query):
    page.goto(server + ("/" if lang == "zh" else "/en/"), wait_until="load")
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
        deadline = time.time() + 600  # a cold strict build under load
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


# ---- How the site reads: contrast in both schemes, figures, layout -------------------------------

# WCAG relative luminance and contrast, and the effective background of an element: its own and its
# ancestors' backgrounds composed from the page down (an element's colour is composed over that too).
CONTRAST_JS = """
([selector, limit]) => {
  const parse = c => { const m = c.match(/[\\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
  const over = (top, bottom) => [0, 1, 2].map(i => top[i] * top[3] + bottom[i] * (1 - top[3])).concat([1]);
  const lum = c => { const f = v => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
                     return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
  const background = el => {
    const chain = [];
    for (let e = el; e; e = e.parentElement) chain.push(parse(getComputedStyle(e).backgroundColor));
    return chain.reverse().reduce((acc, c) => over(c, acc), [255, 255, 255, 1]);
  };
  const out = [];
  for (const el of document.querySelectorAll(selector)) {
    const r = el.getBoundingClientRect();
    const own = [...el.childNodes].some(n => n.nodeType === 3 && n.textContent.trim());
    if (!own || r.width === 0 || r.height === 0 || getComputedStyle(el).visibility === "hidden") continue;
    const bg = background(el);
    const fg = over(parse(getComputedStyle(el).color), bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    if (ratio < limit) out.push(`${ratio.toFixed(2)} ${el.tagName.toLowerCase()}.${el.className} ` +
                                `"${el.textContent.trim().slice(0, 30)}" fg=${getComputedStyle(el).color}`);
  }
  return out;
}
"""
PRIMARY = [  # body text, headings, tables, lists, links in text, formulas, code text: 7:1
    ".md-typeset p", ".md-typeset li", ".md-typeset td", ".md-typeset th", ".md-typeset h1",
    ".md-typeset h2", ".md-typeset h3", ".md-typeset h4", ".md-typeset p a", ".md-typeset .katex *",
    ".md-typeset p code", ".md-typeset li code", ".md-typeset pre code", ".md-typeset .highlight .n",
    ".md-typeset .highlight .p", ".md-typeset .highlight .o",
]
SECONDARY = [  # comments, captions, navigation, labels and other secondary text: 4.5:1
    ".md-typeset .highlight .c1", ".md-typeset .highlight .c", "figcaption", ".md-nav__link",
    ".md-nav__title", ".md-header__topic", ".md-tabs__link", ".md-footer *", ".md-typeset .filename",
    ".md-source-file", ".md-typeset .admonition-title", ".md-typeset details summary", ".md-copyright",
    ".md-typeset .highlight span",
]
SCHEMES = {"vscode-light": "Light+", "vscode-dark": "Dark+"}
CONTRAST_PAGES = ["index.md", "sdpa.md", "llama.md", "performance.md", "api/core.md"]


def switch_scheme(page, scheme: str) -> None:
    """Click the palette toggle, as a reader does, until the page shows `scheme`; return once the
    colour transitions have run (computed colours are final)."""
    for _ in range(len(SCHEMES)):
        shown = page.get_attribute("body", "data-md-color-scheme")
        if shown == scheme:
            break
        page.click("label.md-header__button[for^='__palette']:visible")
        page.wait_for_function("s => document.body.dataset.mdColorScheme !== s", arg=shown)
    assert page.get_attribute("body", "data-md-color-scheme") == scheme
    page.wait_for_function("() => document.getAnimations().every(a => a.playState !== 'running')")


@pytest.mark.parametrize("lang", LANGS)
def test_text_contrast_in_both_schemes(page, server, lang):
    from pathlib import Path

    failures = []
    for md in CONTRAST_PAGES:
        page.goto(server + url_path(lang, Path(md)), wait_until="load")
        shown = page.get_attribute("body", "data-md-color-scheme")
        for scheme in sorted(SCHEMES, key=lambda s: s == shown):  # each reached by clicking
            switch_scheme(page, scheme)
            for selectors, limit in ((PRIMARY, 7.0), (SECONDARY, 4.5)):
                for bad in page.evaluate(CONTRAST_JS, [", ".join(selectors), limit]):
                    failures.append(f"{SCHEMES[scheme]} {md} ({limit}:1) {bad}")
    unique = list(dict.fromkeys(failures))
    assert not unique, f"{len(unique)} elements below contrast:\n" + "\n".join(unique[:40])


# VS Code's default token colours (Light+, Dark+) and the Pygments classes that carry them.
VSCODE_TOKENS = {
    "keyword": ([".k", ".kd"], "#0000ff", "#569cd6"),
    "control (import)": ([".kn"], "#af00db", "#c586c0"),
    "string": ([".s1", ".s2", ".sd"], "#a31515", "#ce9178"),
    "number": ([".mi", ".mf"], "#098658", "#b5cea8"),
    "comment": ([".c1"], "#008000", "#6a9955"),
    "function": ([".nf", ".nb"], "#795e26", "#dcdcaa"),
    "class and module": ([".nc", ".nn"], "#267f99", "#4ec9b0"),
    "variable": ([".n"], "#001080", "#9cdcfe"),
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_syntax_colours_are_vscode_palettes(page, server, scheme):
    page.goto(server + "/en/llama/", wait_until="load")
    switch_scheme(page, "vscode-dark" if scheme == "vscode-light" else "vscode-light")
    switch_scheme(page, scheme)
    for token, (classes, light, dark) in VSCODE_TOKENS.items():
        want = light if scheme == "vscode-light" else dark
        rgb = "rgb({}, {}, {})".format(*(int(want[i:i + 2], 16) for i in (1, 3, 5)))
        selector = ", ".join(f".md-typeset .highlight {cls}" for cls in classes)
        colours = page.eval_on_selector_all(selector, "els => [...new Set(els.map(e => getComputedStyle(e).color))]")
        assert colours, f"no {token} token ({classes}) on the page to check"
        assert colours == [rgb], f"{token} ({classes}) in {SCHEMES[scheme]}: expected {rgb}, got {colours}"


PHONE = {"width": 390, "height": 844}


@pytest.mark.parametrize("lang", LANGS)
def test_no_page_scrolls_sideways_on_a_phone(browser, server, lang):
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True)
    page = context.new_page()
    wide = []
    for md in pages(lang):
        page.goto(server + url_path(lang, md), wait_until="load")
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            culprits = page.evaluate("""() => [...document.querySelectorAll('article *')]
                .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
                .filter(e => !e.closest('pre, .md-typeset__scrollwrap, .katex-display, .highlight'))
                .slice(0, 3).map(e => e.tagName + '.' + e.className)""")
            wide.append(f"{md}: {overflow}px too wide ({culprits})")
    context.close()
    assert not wide, "\n".join(wide)


PROBE_88 = """() => {
  const box = document.createElement('div');
  box.className = 'highlight';
  box.innerHTML = '<pre><code>' + 'x'.repeat(88) + '</code></pre>';
  document.querySelector('article').appendChild(box);
  const code = box.querySelector('code');
  const sizes = [code.scrollWidth, code.clientWidth];
  box.remove();
  return sizes;
}"""


WIDE = [1280, 1440, 1920, 2560]


@pytest.mark.parametrize("path", ["/en/llama/", "/en/equivalence/", "/en/performance/", "/llama/"])
def test_wide_screens_hold_an_88_character_code_line(browser, server, path):
    context = browser.new_context(viewport={"width": WIDE[0], "height": 900})
    page = context.new_page()
    page.goto(server + path, wait_until="load")
    for width in WIDE:  # the window widened, as a reader does, rather than the page reloaded
        page.set_viewport_size({"width": width, "height": 900})
        scroll, client = page.evaluate(PROBE_88)
        assert scroll <= client, (f"{path} at {width}px: an 88-character line needs {scroll}px, "
                                  f"the code box has {client}px")
        # Identifiers in tables stay on one line: an inline element broken across lines has several boxes.
        broken = page.eval_on_selector_all(
            "article td code", "els => els.filter(e => e.getClientRects().length > 1).map(e => e.textContent)")
        assert not broken, f"{path} at {width}px: identifiers broken across lines: {broken[:5]}"
    context.close()


@pytest.mark.parametrize("scheme", SCHEMES)
def test_output_blocks_look_different_from_code(page, server, scheme):
    page.goto(server + "/sdpa/", wait_until="load")
    switch_scheme(page, "vscode-dark" if scheme == "vscode-light" else "vscode-light")
    switch_scheme(page, scheme)
    style = """sel => { const pre = document.querySelector(sel + ' pre'), code = pre.querySelector('code');
                        const s = getComputedStyle(pre), c = getComputedStyle(code);
                        return [s.boxShadow, c.backgroundColor]; }"""
    code = page.evaluate(style, ".highlight:not(.attnref-output)")
    output = page.evaluate(style, ".attnref-output")
    assert code[0] != output[0] and code[1] != output[1], f"output styled as code: {code} vs {output}"
    label = page.locator(".attnref-output .filename").first
    assert label.is_visible() and label.inner_text().strip() == "输出"


@pytest.mark.parametrize("path", ["/sdpa/", "/en/rope/", "/llama/", "/en/performance/"])
def test_figures_are_dark_in_dark_plus(page, server, path):
    """No white boxes: in Dark+ a figure is mostly the page's own dark background."""
    import io

    from PIL import Image

    page.goto(server + path, wait_until="load")
    switch_scheme(page, "vscode-dark")
    figures = page.locator("figure.attnref-figure svg")
    assert figures.count() > 0
    for i in range(figures.count()):
        shot = Image.open(io.BytesIO(figures.nth(i).screenshot())).convert("L")
        histogram = shot.histogram()  # 256 bins of grey levels
        light = sum(histogram[201:]) / (shot.width * shot.height)
        assert light < 0.1, f"{path} figure {i}: {light:.0%} of its pixels are near white in Dark+"
