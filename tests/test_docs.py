"""The site: it builds strictly, every page exists in both languages, every Python listing is
run (by pytest-codeblocks or by the build), the zh and en twins hold the same programs, headings
share anchors, and every public object has API documentation."""

import importlib
import io
import re
import textwrap
import tokenize
import unicodedata
from html.parser import HTMLParser

import pytest
from pytest_codeblocks import extract_from_file

from conftest import DOCS, LANGS, pages

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<ticks>`{3,}|~{3,})(?P<info>[^\n`]*)$", re.M)
PY_NAMES = {"py", "python", "python3", "pycon", "ipython", "py3"}
CONT = "<!--pytest-codeblocks:cont-->"
MODULES = ["core", "atlas", "esm", "flux", "llama", "happy_llm", "fused_qkv", "convert", "bench", "integrations.transformers"]


def api_page(name: str):
    """The API page of attnref.<name>; a subpackage's modules share its page (api/integrations.md)."""
    return __import__("pathlib").Path(f"api/{name.split('.')[0]}.md")


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
        ids = _html(built_site, lang, api_page(name)).ids
        for obj in public:
            assert getattr(module, obj).__doc__, f"attnref.{name}.{obj} has no docstring"
            assert f"attnref.{name}.{obj}" in ids, f"{lang} API page lacks attnref.{name}.{obj}"


# ---- What readers see, checked on the built HTML -------------------------------------------------

CJK = "[\u2e80-\u9fff\u3000-\u303f\uff00-\uffef\u2018\u2019\u201c\u201d]"
_OPAQUE = {"pre", "code", "svg", "math", "script", "style"}
_BLOCKS = {"p", "li", "td", "th", "h1", "h2", "h3", "h4", "figcaption", "dd", "dt", "div", "summary"}


class _ArticleText(HTMLParser):
    """The visible text of each block of the article; code, formulas and figures count as one
    character ("X"), so a space next to them is never mistaken for a space between two words."""

    def __init__(self):
        super().__init__()
        self.in_article = self.opaque = 0
        self.buffer, self.blocks = [], []

    def handle_starttag(self, tag, attrs):
        if tag == "article":
            self.in_article += 1
        if not self.in_article:
            return
        classes = (dict(attrs).get("class") or "").split()
        if self.opaque:
            self.opaque += tag in _OPAQUE or tag == "span"
        elif tag in _OPAQUE or (tag == "span" and "katex" in classes):
            self.opaque = 1
            self.buffer.append("X")
        elif tag in _BLOCKS or tag == "br":
            self._flush()

    def handle_endtag(self, tag):
        if self.opaque:
            self.opaque -= tag in _OPAQUE or tag == "span"
        elif tag in _BLOCKS or tag == "article":
            self._flush()
        if tag == "article":
            self.in_article -= 1

    def handle_data(self, data):
        if self.in_article and not self.opaque:
            self.buffer.append(data)

    def _flush(self):
        text = "".join(self.buffer)
        self.buffer = []
        if text.strip():
            self.blocks.append(text)


def _page_html(site, lang, page) -> str:
    rel = page.with_suffix("")
    rel = rel.parent if rel.name == "index" else rel
    return (site / ("" if lang == "zh" else "en") / rel / "index.html").read_text(encoding="utf-8")


@pytest.mark.parametrize("page", pages("zh"), ids=str)
def test_no_space_between_chinese_characters(built_site, page):
    """A soft line break (or a typed space) between two Chinese characters shows as a space."""
    parser = _ArticleText()
    parser.feed(_page_html(built_site, "zh", page))
    gaps = [block[max(0, m.start() - 12):m.end() + 12] for block in parser.blocks
            for m in re.finditer(rf"{CJK}\s+{CJK}", block)]
    assert not gaps, f"{page}: spaces between Chinese characters: {gaps[:5]}"


_FIGURE = re.compile(r'<figure class="attnref-figure">(.*?)</figure>', re.S)
_SVG_TEXT = re.compile(r"<text\b[^>]*>(.*?)</text>", re.S)


def _figure_texts(svg: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", t).strip() for t in _SVG_TEXT.findall(svg)]


def _english_prose(texts: list[str]) -> list[str]:
    """Labels with two English words in a row that are not code (no '(', '_', '=' or '.')."""
    return [t for t in texts if re.search(r"\b[A-Za-z]{3,} [A-Za-z]{3,}\b", t) and not re.search(r"[(_=.]", t)]


@pytest.mark.parametrize("lang,page", all_pages(), ids=lambda x: str(x))
def test_figures_take_their_colours_from_the_page(built_site, lang, page):
    for svg in _FIGURE.findall(_page_html(built_site, lang, page)):
        assert "<image" not in svg, f"{lang}/{page}: a figure embeds a raster image"
        fixed = re.findall(r"#[0-9a-fA-F]{6}\b|rgba?\(", re.sub(r"var\(--fig-[a-z0-9]+, #[0-9a-f]{6}\)", "", svg))
        assert not fixed, f"{lang}/{page}: colours that ignore the scheme: {sorted(set(fixed))}"
        assert "font-family" not in svg, f"{lang}/{page}: figure text does not use the page's font"


@pytest.mark.parametrize("page", pages("en"), ids=str)
def test_figure_labels_are_in_the_page_language(built_site, page):
    en = [_figure_texts(svg) for svg in _FIGURE.findall(_page_html(built_site, "en", page))]
    zh = [_figure_texts(svg) for svg in _FIGURE.findall(_page_html(built_site, "zh", page))]
    assert len(en) == len(zh)
    for i, (en_texts, zh_texts) in enumerate(zip(en, zh)):
        assert not [t for t in en_texts if re.search(CJK, t)], f"{page} figure {i}: Chinese on the English page"
        assert not _english_prose(zh_texts), f"{page} figure {i}: English labels on the Chinese page: {_english_prose(zh_texts)}"
        if _english_prose(en_texts):
            assert any(re.search(CJK, t) for t in zh_texts), f"{page} figure {i}: no Chinese labels on the Chinese page"


@pytest.mark.parametrize("lang,page", all_pages(), ids=lambda x: str(x))
def test_printed_output_is_labelled_as_output(built_site, lang, page):
    source = (DOCS / lang / page).read_text(encoding="utf-8")
    html = _page_html(built_site, lang, page)
    expected = source.count("<!--pytest-codeblocks:expected-output-->")
    title = {"zh": "输出", "en": "Output"}[lang]
    labelled = re.findall(r'<div class="attnref-output highlight"><span class="filename">([^<]*)</span>', html)
    assert labelled == [title] * expected


API_LABELS = {"en": ("Parameters:", "Returns:"), "zh": ("参数：", "返回：")}


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", MODULES)
def test_api_pages_speak_the_page_language(built_site, lang, name):
    html = _page_html(built_site, lang, api_page(name))
    titles = re.findall(r'<span class="doc-section-title">([^<]*)</span>', html)
    assert titles, f"{lang} api/{name}: no docstring sections rendered"
    other = "zh" if lang == "en" else "en"
    assert set(titles) <= set(API_LABELS[lang]) | {t for t in titles if bool(re.search(CJK, t)) == (lang == "zh")}
    assert not set(titles) & set(API_LABELS[other]), f"{lang} api/{name}: labels of the other language {titles}"
    # Docstring cross-references are links, never reStructuredText roles left as text.
    assert not re.search(r":(func|class|mod|meth|attr):`", html)
    # The hand-written introduction links to the page that explains the module, in this language.
    intro = html[html.index("<h1"):html.index('class="doc doc-object doc-module"')]
    links = re.findall(r'<a href="([^"]+)"', intro)
    assert any(not link.startswith(("http", "#")) and "api/" not in link for link in links), (
        f"{lang} api/{name}: the introduction links to no explanation page")


def test_docstring_tables_and_signatures_render(built_site):
    core_html = _page_html(built_site, "en", __import__("pathlib").Path("api/core.md"))
    module_doc = core_html[core_html.index('class="doc doc-object doc-module"'):]
    assert re.search(r"<table>.*?<td>B</td>\s*<td>batch</td>", module_doc, re.S), "shape-letter table not rendered"
    assert "autorefs-internal" in core_html
    llama_html = _page_html(built_site, "en", __import__("pathlib").Path("api/llama.md"))
    start = llama_html.index('id="attnref.llama.LlamaAttention"')
    signature = llama_html[llama_html.index("doc-signature", start):]
    signature = signature[:signature.index("</pre>")]
    # Formatted (black): one parameter per line when the signature is long.
    assert len(re.findall(r'class="n">hidden_size<|class="n">num_heads<', signature)) == 2
    assert signature.count("\n") >= 8, "signature printed on one line: install the formatter (black)"


def _glossary_rows(lang: str) -> list[list[str]]:
    rows = [line.strip("|").split("|") for line in (DOCS / lang / "glossary.md").read_text().splitlines()
            if line.startswith("|") and not line.startswith("| ---")]
    return [[cell.strip() for cell in row] for row in rows[1:]]


def test_glossary_has_the_same_terms_in_both_languages():
    zh, en = _glossary_rows("zh"), _glossary_rows("en")
    assert [(row[0], row[1]) for row in zh] == [(row[1], row[0]) for row in en]


@pytest.mark.parametrize("page", [p for p in pages("zh") if p.name != "glossary.md"], ids=str)
def test_chinese_pages_use_the_glossary_terms(page):
    """The last column of the Chinese glossary lists the names the pages do not use."""
    avoided = [term for row in _glossary_rows("zh") for term in row[4].split("、") if term]
    assert avoided
    text = (DOCS / "zh" / page).read_text(encoding="utf-8")
    used = [term for term in avoided if term in text]
    assert not used, f"zh/{page} uses {used}; see the glossary for the term to use"


def _columns(line: str) -> int:
    """Display width: wide and full-width characters (Chinese) take two columns."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


@pytest.mark.parametrize("lang,page", all_pages(), ids=lambda x: str(x))
def test_listings_fit_an_88_column_code_box(lang, page):
    """The code box holds 88 columns on a 1280-px screen (test_site); a longer line of a listing
    makes the reader scroll sideways. Build-time blocks (exec="true") are not shown."""
    wide = []
    for i, (info, body, _) in enumerate(python_fences(DOCS / lang / page), start=1):
        if 'exec="true"' in info:
            continue
        for line in textwrap.dedent(body).splitlines():
            if _columns(line) > 88:
                wide.append(f"listing {i}, {_columns(line)} columns: {line.strip()[:60]}")
    assert not wide, f"{lang}/{page}: {len(wide)} lines wider than 88 columns:\n" + "\n".join(wide[:10])
