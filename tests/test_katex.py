"""Formulas are typeset at build time (docs/hooks/katex.py): one node process renders every formula of
a build with the KaTeX npm package, a formula KaTeX rejects fails the build naming the page and the
TeX, and the site ships KaTeX's stylesheet and the woff2 fonts it names, no script."""

import importlib.util
import re
from types import SimpleNamespace

import pytest
from mkdocs.exceptions import PluginError

from conftest import DOCS, ROOT


def _katex_hook():
    spec = importlib.util.spec_from_file_location("katex_hook", DOCS / "hooks" / "katex.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _build(hook, pages: dict[str, str]) -> dict[str, str]:
    """Run the hook's events over pages (source path -> arithmatex HTML) as a build would."""
    config = SimpleNamespace(config_file_path=str(ROOT / "mkdocs.yml"))
    hook.on_config(config)
    for src, html in pages.items():
        hook.on_page_content(html, page=SimpleNamespace(file=SimpleNamespace(src_uri=src)),
                             config=config, files=None)
    hook.on_env(None, config=config, files=None)
    return {src: hook.on_post_page(html, page=None, config=config) for src, html in pages.items()}


def test_formulas_become_katex_html():
    out = _build(_katex_hook(), {
        "en/sdpa.md": '<p>scale <span class="arithmatex">\\(\\sqrt{d_k} &lt; 1\\)</span></p>'
                      '<div class="arithmatex">\\[\nQK^\\top\n\\]</div>',
    })["en/sdpa.md"]
    assert out.count('class="katex"') == 2 and out.count('class="katex-display"') == 1
    assert "<msqrt>" in out and "<mo>&lt;</mo>" in out  # the TeX was unescaped, then typeset
    assert "\\(" not in out and "\\[" not in out and "&amp;lt;" not in out


def test_a_broken_formula_fails_the_build_naming_page_and_tex():
    with pytest.raises(PluginError) as error:
        _build(_katex_hook(), {
            "zh/rope.md": '<span class="arithmatex">\\(x^2\\)</span>',
            "en/rope.md": '<span class="arithmatex">\\(\\frac{1}{\\)</span>',
        })
    message = str(error.value)
    assert "en/rope.md" in message and "\\frac{1}{" in message
    assert "zh/rope.md" not in message


def test_the_site_ships_katex_css_and_woff2_fonts_only(built_site):
    katex = built_site / "assets" / "katex"
    shipped = {p.relative_to(katex).as_posix() for p in katex.rglob("*") if p.is_file()}
    css = (katex / "katex.min.css").read_text(encoding="utf-8")
    named = set(re.findall(r"url\((fonts/[^)]+)\)", css))
    assert named and all(name.endswith(".woff2") for name in named)
    assert named <= shipped  # no font request can 404
    assert shipped == named | {"katex.min.css"}
    assert not list(built_site.rglob("*katex*.js"))
