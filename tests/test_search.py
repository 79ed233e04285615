"""Search as a reader uses it: words typed into the real search box of the built site find the page
that explains them, in each language, inflected English words included; each language has its own
index, and results never cross into the other language's tree."""

import importlib.util
import json
import time
from urllib.parse import urlparse

import pytest

from conftest import DOCS, drain, nothing_late, visit

# (what a reader types, the page expected among the first three results)
QUERIES = {
    "en": [
        ("embeddings", "/en/rope/"),
        ("masks", "/en/sdpa/"),
        ("cached", "/en/llama/"),
        ("caching", "/en/llama/"),
        ("permutations", "/en/rope/"),
        ("conventions", "/en/rope/"),
        ("grouped", "/en/llama/"),
        ("padded", "/en/sdpa/"),
        ("rotations", "/en/rope/"),
        ("overflows", "/en/pitfalls/"),
        ("tolerances", "/en/numerics/"),
        ("packed sequences", "/en/masks/"),
        ("contiguous", "/en/multi-head/"),
        ("repeat_kv", "/en/api/core/"),
    ],
    "zh": [
        ("注意力掩码", "/sdpa/"),
        ("旋转位置编码", "/rope/"),
        ("分组查询", "/llama/"),
        ("KV 缓存", "/llama/"),
        ("对半切分", "/rope/"),
        ("因果掩码", "/sdpa/"),
        ("填充掩码", "/sdpa/"),
        ("打包序列", "/masks/"),
        ("相邻配对", "/rope/"),
        ("数值误差", "/numerics/"),
        ("容差", "/numerics/"),
        ("溢出", "/pitfalls/"),
    ],
}
HOME = {"zh": "/", "en": "/en/"}
INDEX = {"zh": "/search/search_index.json", "en": "/en/search/search_index.json"}


def _search(page, server, lang: str, query: str) -> list[list[str]]:
    """Type `query` into the search box of the language's home page; the URL paths of each result
    (a page and its sections), best first."""
    home = server + HOME[lang]
    if page.url != home:
        visit(page, home)
    else:  # still on the home page after the previous query: empty the box, as a reader does
        nothing_late(page)
        page.fill("input.md-search__input", "")
        page.keyboard.press("End")
        page.wait_for_selector(".md-search-result__item", state="detached")
    page.click(".md-search__input")
    page.fill("input.md-search__input", query)
    page.keyboard.press("End")  # the search box reacts to key events, as when a reader types
    page.wait_for_selector(".md-search-result__item", timeout=15000)
    read = ("items => items.map(item => [...item.querySelectorAll('a[href]')]"
            ".map(a => new URL(a.href).pathname))")
    results, deadline = None, time.time() + 5
    while time.time() < deadline:  # results render as the worker answers; read them once settled
        latest = page.eval_on_selector_all(".md-search-result__item", read)
        if latest == results:
            break
        results = latest
        page.wait_for_timeout(200)
    return results


@pytest.mark.parametrize("lang,query,expected",
                         [(lang, q, e) for lang, pairs in QUERIES.items() for q, e in pairs])
def test_search_finds_the_page_that_explains(shared_tab, server, lang, query, expected):
    page = shared_tab
    results = _search(page, server, lang, query)
    pages = [paths[0] for paths in results]
    assert expected in pages[:3], f"{query!r}: {expected} not in the first three results {pages[:5]}"
    # Results stay in the reader's language: English under /en/, Chinese everywhere else.
    links = [path for paths in results for path in paths]
    crossing = [p for p in links if p.startswith("/en/") != (lang == "en")]
    assert crossing == [], f"{query!r} lists pages of the other language: {crossing[:5]}"
    assert drain(page) == ([], [])


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_each_page_loads_only_its_own_languages_index(page, server, lang):
    fetched = []
    page.on("request", lambda r: r.url.endswith("search_index.json") and fetched.append(urlparse(r.url).path))
    with page.expect_response(lambda response: response.url.endswith("search_index.json")):
        page.goto(server + HOME[lang] + "sdpa/")
    page.wait_for_load_state("networkidle")
    assert fetched == [INDEX[lang]]


def test_one_index_per_language(built_site):
    """Each index holds its language's pages only, with locations relative to the language's root,
    and lunr's support for that language. English has no stemmer: Material adds `*` to every typed
    word and lunr does not stem words with a wildcard, so a stemmed index would miss "masks"."""
    for lang, root in (("zh", built_site), ("en", built_site / "en")):
        index = json.loads((root / "search" / "search_index.json").read_text(encoding="utf-8"))
        assert index["config"]["lang"] == [lang]
        if lang == "en":
            assert "stemmer" not in index["config"]["pipeline"]
        pages = {doc["location"].split("#")[0] for doc in index["docs"]}
        assert not any(p.startswith("en/") for p in pages)
        for p in pages:
            assert (root / p / "index.html").is_file(), f"{lang} index: {p} is not a page of {root}"
        sources = {p.relative_to(DOCS / lang).with_suffix("").as_posix() for p in (DOCS / lang).rglob("*.md")}
        built = {p.rstrip("/") or "index" for p in pages}
        assert built == sources, f"{lang} index misses {sorted(sources - built)}"


def _search_hook():
    spec = importlib.util.spec_from_file_location("search_hook", DOCS / "hooks" / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("word,forms", [
    ("cache", {"caches", "cached", "caching"}),
    ("pad", {"pads", "padded", "padding"}),
    ("embed", {"embeds", "embedded", "embedding"}),
    ("query", {"queries", "queried", "querying"}),
    ("mask", {"masks", "masked", "masking"}),
])
def test_regular_english_forms(word, forms):
    assert forms <= _search_hook().regular_forms(word)


def test_glossary_terms_become_jieba_words():
    markdown = (DOCS / "zh" / "glossary.md").read_text(encoding="utf-8")
    terms = _search_hook().glossary_terms(markdown)
    assert {"对半切分", "相邻配对", "因果掩码", "打包序列", "查询头", "旋转位置编码"} <= set(terms)
    assert "中文" not in terms  # the header row


def test_heading_forms_add_what_a_reader_types_and_the_heading_does_not_begin():
    hook = _search_hook()
    vocabulary = {hook.STEM(w): {w} for w in ("embeddings", "rotation")}
    forms = hook.heading_forms("Rotary position embedding (RoPE)", vocabulary).split()
    assert "embeddings" in forms  # another form used on the site
    assert "embed" not in forms  # "embed" already begins "embedding"
    assert "caching" in hook.heading_forms("Step 4: the KV cache", {}).split()  # a regular form
