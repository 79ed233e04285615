"""The site: it builds strictly, every page exists in both languages, every Python listing is
run (by pytest-codeblocks or by the build), the zh and en twins hold the same programs, headings
share anchors, and every public object has API documentation."""

import importlib
import io
import re
import tokenize
from html.parser import HTMLParser

import pytest
from pytest_codeblocks import extract_from_file

from conftest import DOCS, LANGS, pages

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^\n`]*)$", re.M)
PY_NAMES = {"py", "python", "python3", "pycon", "ipython", "py3"}
CONT = "<!--pytest-codeblocks:cont-->"
MODULES = ["core", "atlas", "esm", "flux", "llama", "happy_llm", "fused_qkv", "convert", "bench"]


def fences(text: str):
    """Yield (info, body, text_before) for each fenced block."""
    pos = 0
    while True:
        open_ = FENCE.search(text, pos)
        if not open_:
            return
        ticks = open_["ticks"]
        close = re.compile(rf"^{re.escape(open_['indent'])}{ticks[0]}{{{len(ticks)},}}[ \t]*$", re.M)
        end = close.search(text, open_.end())
        assert end, f"unclosed fence at {text[open_.start():open_.start() + 60]!r}"
        yield open_["info"].strip(), text[open_.end() + 1:end.start()], text[:open_.start()]
        pos = end.end()


def python_fences(path):
    for info, body, before in fences(path.read_text(encoding="utf-8")):
        lang = info.split()[0].strip("{.").lower() if info else ""
        if lang in PY_NAMES or lang.startswith("python"):
            yield info, body, before


def all_pages():
    return [(lang, page) for lang in LANGS for page in pages(lang)]


def test_every_page_exists_in_both_languages():
    assert set(pages("zh")) == set(pages("en"))
    assert len(pages("en")) >= 12


@pytest.mark.parametrize("lang,page", all_pages(), ids=lambda x: str(x))
def test_every_python_fence_is_executed(lang, page):
    """Only two kinds of Python fence may exist: ```python (run by pytest-codeblocks, which
    silently skips any other info string) and ```python exec="true" (run by markdown-exec during
    the strict build, which fails on an exception). Shell commands are written as ```console."""
    path = DOCS / lang / page
    plain = continued = 0
    for info, body, before in python_fences(path):
        if info == "python":
            plain += 1
            if before.rstrip().endswith(CONT):
                continued += 1
                first = body.lstrip().splitlines()[0]
                assert re.match(r"#\s*(continues|接上)", first), (
                    f"{path}: a continued listing must say so in its first line: {first!r}")
        else:
            assert re.fullmatch(r'python exec="(true|1)"( [a-z_]+="[^"]*")*', info), (
                f"{path}: fence ```{info} would be skipped in silence")
    for info, _, _ in fences(path.read_text(encoding="utf-8")):
        assert not info.startswith(("sh", "bash", "shell")), f"{path}: use ```console for commands"
    # pytest-codeblocks joins a continued listing to the one before it into one test.
    collected = [b for b in extract_from_file(path) if b.syntax == "python"]
    assert len(collected) == plain - continued, (
        f"{path}: pytest-codeblocks sees {len(collected)} tests for {plain} listings ({continued} continued)")


def _program(code: str) -> list[str]:
    """Tokens of a program without comments, and with string contents replaced: labels and
    alt texts may be translated, the code may not."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                        tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if tok.type == tokenize.STRING or tok.type in getattr(tokenize, "FSTRING_MIDDLE", ()):
            out.append("<str>")
        elif tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            out.append("<str>")
        else:
            out.append(tok.string)
    return out


@pytest.mark.parametrize("page", pages("en"), ids=str)
def test_zh_and_en_listings_are_the_same_program(page):
    zh = [_program(body) for _, body, _ in python_fences(DOCS / "zh" / page)]
    en = [_program(body) for _, body, _ in python_fences(DOCS / "en" / page)]
    assert len(zh) == len(en), f"{page}: {len(zh)} Python listings in zh, {len(en)} in en"
    for i, (a, b) in enumerate(zip(zh, en)):
        assert a == b, f"{page}: listing {i + 1} differs between zh and en"


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
            if tag in ("h2", "h3", "h4"):
                self.headings.append(attrs["id"])


def _html(site, lang, page):
    rel = page.with_suffix("")
    rel = rel.parent if rel.name == "index" else rel
    path = site / ("" if lang == "zh" else "en") / rel / "index.html"
    parser = _Ids()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.parametrize("page", pages("en"), ids=str)
def test_headings_share_readable_anchors(built_site, page):
    """A link to a section works in both languages: zh headings carry the English anchor."""
    zh, en = _html(built_site, "zh", page), _html(built_site, "en", page)
    assert zh.headings == en.headings
    # Prose headings get lowercase English slugs; API headings are qualified Python names.
    for anchor in zh.headings:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]+", anchor), f"{page}: unreadable anchor {anchor!r}"


@pytest.mark.parametrize("name", MODULES)
def test_every_public_object_is_exported_and_documented(built_site, name):
    module = importlib.import_module(f"attnref.{name}")
    assert module.__doc__, f"attnref.{name} has no module docstring"
    public = getattr(module, "__all__", None)
    assert public, f"attnref.{name} has no __all__"
    for lang in LANGS:
        ids = _html(built_site, lang, __import__("pathlib").Path(f"api/{name}.md")).ids
        for obj in public:
            assert getattr(module, obj).__doc__, f"attnref.{name}.{obj} has no docstring"
            assert f"attnref.{name}.{obj}" in ids, f"{lang} API page lacks attnref.{name}.{obj}"
