"""MkDocs hook: one search index per language, holding the words a reader of that language types.

What the installed packages do (mkdocs-material 9.8.2, mkdocs-static-i18n 1.3.1):

- Material's search plugin indexes each page's HTML as it is built (Chinese text segmented with
  jieba, the words joined by U+200B) and writes search/search_index.json. Every page fetches that
  file relative to `base` in its `#__config` and hands it to a web worker, where lunr builds the
  index with the file's `config`: `lang` loads lunr-languages support, `separator` splits words,
  `pipeline` keeps the listed ones of `trimmer`, `stopWordFilter` and `stemmer`, `fields` are the
  indexed fields and their boosts.
- mkdocs-static-i18n builds one language after the other, then writes the entries of every language
  into that one file with the default language's settings. Every page, Chinese or English, loads it
  all, and English words find Chinese pages.
- Material adds `*` to every word typed and lunr runs no pipeline on a word with a wildcard, so a
  stemmed index misses inflected words: `masks*` cannot match "masks" indexed as "mask". Without a
  stemmer (Material's English default) a typed word matches every indexed word it begins.

So after the last language is built, this hook writes one index per language at the root of that
language's tree (search/search_index.json, en/search/search_index.json, and the .js form of each for
the offline bundle) with lunr's support for the language and Material's pipeline for it, and tells
each page that root (`language_root`, which overrides/main.html makes the page's `base`).
Listings, printed output, tables, figures and formulas stay out of the index, and objects of the API
reference are indexed by name: the index is part of every page's first load. English entries get
one more field, `forms`: the other forms of their heading's words, so that "caching", "embeddings"
or "overflows" find the section whose heading says "cache", "embedding" or "overflow". Chinese is
cut with the glossary's terms in jieba's dictionary, so that 对半切分 is one word wherever it is
written.
"""

import json
from pathlib import Path
import re

import jieba
import snowballstemmer
from mkdocs.plugins import event_priority
from mkdocs.utils import write_file

# Words end at white space (U+200B: jieba's word boundaries), Chinese and ASCII punctuation, and a
# dot not followed by a digit, so "(mask)", "mask," and "attnref.core" index the words a reader
# types. PUNCTUATION goes inside [...] of a regular expression.
PUNCTUATION = r"\-\u3000、。，．？！；：（）“”,;:!?=()\[\]{}\"'/"
SEPARATOR = rf"[\s\u200b{PUNCTUATION}]+|\.(?!\d)|&[lg]t;|&amp;"
# A U+200B next to a separator or a tag separates nothing: a third of them, three bytes each.
IDLE_BREAK = re.compile(
    rf"\u200b(?=[\s{PUNCTUATION}<]|$)|(?<=[\s{PUNCTUATION}>])\u200b|^\u200b")

# jieba cuts a term differently from one sentence to the next (对半|切分, 对|半|切分), and
# a query matches one cut only: the glossary's Chinese terms go into jieba's dictionary, so
# that each is cut as one word everywhere.
GLOSSARY = Path("zh", "glossary.md")
HAN = re.compile(r"[\u4e00-\u9fff]{2,}")

# Material's search plugin leaves out elements with this attribute, and then removes the attribute.
LEFT_OUT = re.compile(r'<pre\b|<svg\b|<table\b|<(?:span|div) class="arithmatex"')

# The API reference: each page is found by its introduction, each object (a section of the page,
# written by mkdocstrings) by its name; the pages that explain them by everything they say.
API_REFERENCE = "api/"

STEM = snowballstemmer.stemmer("english").stemWord
WORD = re.compile(r"[a-z]{4,}")
VOWELS = "aeiou"


def regular_forms(word: str) -> set[str]:
    """Plural (or third person), past and -ing of an English word by the regular spelling rules:
    "cache" -> caches, cached, caching; "pad" -> pads, padded, padding."""
    y_to_i = word.endswith("y") and word[-2] not in VOWELS
    if word.endswith(("s", "x", "z", "ch", "sh")):
        plural = word + "es"
    else:
        plural = word[:-1] + "ies" if y_to_i else word + "s"
    if word.endswith("e"):
        past, ing = word + "d", word[:-1] + "ing"
    else:
        past, ing = (word[:-1] + "ied" if y_to_i else word + "ed"), word + "ing"
    forms = {plural, past, ing}
    if word[-1] not in VOWELS + "wxy" and word[-2] in VOWELS and word[-3] not in VOWELS:
        forms |= {word + word[-1] + "ed", word + word[-1] + "ing"}  # embed -> embedded, embedding
    return forms


def words(html: str) -> set[str]:
    return set(WORD.findall(re.sub(r"<[^>]+>", " ", html).lower()))


def heading_forms(title: str, vocabulary: dict[str, set[str]]) -> str:
    """The forms of a heading's words that a reader may type and the heading does not begin: words
    of the same stem anywhere in the language's index, and the regular forms with that stem."""
    heading = words(title)
    forms = set()
    for word in heading:
        stem = STEM(word)
        forms |= vocabulary.get(stem, set())
        forms |= {form for form in regular_forms(word) if STEM(form) == stem}
    typed = (form for form in forms if not any(word.startswith(form) for word in heading))
    return " ".join(sorted(typed))


def glossary_terms(markdown: str) -> list[str]:
    """The Chinese terms in the first column of the glossary's table, below its header row:
    "查询头、键/值头" gives 查询头 (jieba keeps no "/" in a word),
    "旋转位置编码（RoPE）" gives 旋转位置编码."""
    rows = [line for line in markdown.splitlines() if line.startswith("|")][2:]
    terms = []
    for row in rows:
        names = re.sub(r"（[^）]*）", "", row.split("|")[1])
        terms += [name.strip() for name in re.split(r"、|，| / ", names)]
    return [term for term in terms if HAN.fullmatch(term)]


def _languages(config) -> list[tuple[str, str]]:
    """(locale, path prefix of its tree) for each language built, the default one ("") last."""
    i18n = config.plugins["i18n"].config
    built = [lang for lang in i18n.languages if lang.build]
    prefixes = [(lang.locale, "" if lang.default else lang.link.strip("/") + "/") for lang in built]
    return sorted(prefixes, key=lambda pair: -len(pair[1]))


def _pipeline(config, locale: str) -> list[str]:
    """Material's default search pipeline for a language (its partials/languages/<locale>.html)."""
    env = config.theme.get_env()
    for name in (locale, "en"):
        translations = env.get_template(f"partials/languages/{name}.html").module
        value = str(translations.t("search.config.pipeline"))
        if value:
            return [step.strip() for step in value.split(",") if step.strip()]
    return []


def _entry(entry: dict, prefix: str) -> dict:
    """An entry of one language's index, its location relative to the language's root."""
    location = entry["location"][len(prefix):]
    text = "" if location.startswith(API_REFERENCE) and "#" in location else entry["text"]
    return dict(entry, location=location, title=IDLE_BREAK.sub("", entry["title"]),
                text=IDLE_BREAK.sub("", text))


def _index(config, locale: str, docs: list[dict]) -> dict:
    search = config.plugins["material/search"]
    fields = dict(search.config.fields)
    if locale == "en":
        vocabulary: dict[str, set[str]] = {}
        for doc in docs:
            for word in words(doc["title"] + " " + doc["text"]):
                vocabulary.setdefault(STEM(word), set()).add(word)
        for doc in docs:
            if not doc["location"].startswith(API_REFERENCE):
                doc["forms"] = heading_forms(doc["title"], vocabulary)
        fields["forms"] = fields["title"]  # another form of a heading word counts as the heading
    settings = {"lang": [locale], "separator": SEPARATOR, "pipeline": _pipeline(config, locale),
                "fields": fields}
    return {"config": settings, "docs": docs}


def on_config(config):
    for term in glossary_terms(Path(config.docs_dir, GLOSSARY).read_text(encoding="utf-8")):
        jieba.add_word(term)


def on_page_content(html, page, config, files):
    return LEFT_OUT.sub(lambda m: f'{m.group(0)} data-search-exclude="not words one types"', html)


def on_page_context(context, page, config, nav):
    prefix = next(prefix for _, prefix in _languages(config) if page.url.startswith(prefix))
    context["language_root"] = f"{context['base_url']}/{prefix}"
    return context


# After mkdocs-static-i18n's on_post_build (-100), which writes all languages into one index.
@event_priority(-200)
def on_post_build(config):
    entries = config.plugins["material/search"].search_index.entries
    for locale, prefix in _languages(config):
        docs = [_entry(entry, prefix) for entry in entries if entry["location"].startswith(prefix)]
        entries = [entry for entry in entries if not entry["location"].startswith(prefix)]
        if not docs:  # mkdocs-static-i18n builds the other languages inside the default one's build
            continue
        index = json.dumps(_index(config, locale, docs), ensure_ascii=False, separators=(",", ":"))
        path = Path(config.site_dir, prefix, "search", "search_index.json")
        write_file(index.encode("utf-8"), str(path))
        # Material's offline plugin (`make offline`) inlines the index into a script, which a page
        # opened from disk loads instead, relative to the same `base`.
        offline = config.plugins.get("material/offline")
        if offline and offline.config.enabled:
            write_file(f"var __index = {index}".encode("utf-8"), str(path.with_suffix(".js")))
