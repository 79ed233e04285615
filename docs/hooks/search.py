"""MkDocs hook: one search index per language, each holding the words a reader of that language types.

What the installed packages do (mkdocs-material 9.8.2, mkdocs-static-i18n 1.3.1):

- Material's search plugin indexes each page's HTML as it is built (Chinese text segmented with
  jieba, the words joined by U+200B) and writes search/search_index.json. Every page fetches that
  file relative to `base` in its `#__config` and hands it to a web worker, where lunr builds the
  index with the file's `config`: `lang` loads lunr-languages support, `separator` splits words,
  `pipeline` keeps the listed ones of `trimmer`, `stopWordFilter` and `stemmer`.
- mkdocs-static-i18n builds one language after the other, then writes the entries of every language
  into that one file with the default language's settings. Every page, Chinese or English, loads it
  all, and English words find Chinese pages.
- Material adds `*` to every word typed and lunr runs no pipeline on a word with a wildcard, so
  stemming the index breaks inflected words: `masks*` cannot match "masks" indexed as "mask". With
  Material's English defaults (no stemmer) a typed word matches every indexed word it begins.

So this hook, after the last language is built, writes one index per language at the root of that
language's tree (search/search_index.json, en/search/search_index.json) with lunr's support for
that language and Material's pipeline for it, and gives each page that root as `language_root`
(overrides/main.html makes it the page's `base`). Listings, printed output, figures and formulas
stay out of the index: they hold few words a reader types, and would double the size of every
page's first load.
"""

import json
from pathlib import Path
import re

from mkdocs.plugins import event_priority
from mkdocs.utils import write_file

# Words end at white space (U+200B: jieba's word boundaries), Chinese and ASCII punctuation, and a
# dot not followed by a digit, so "(mask)", "mask," and "attnref.core" index the words a reader types.
SEPARATOR = r"[\s\u200b\u3000\-、。，．？！；：（）“”,;:!?=()\[\]{}\"'/]+|\.(?!\d)|&[lg]t;|&amp;"

# Material's search plugin leaves out elements with this attribute, and then removes the attribute.
LEFT_OUT = re.compile(r'<pre\b|<svg\b|<(?:span|div) class="arithmatex"')


def _languages(config) -> list[tuple[str, str]]:
    """(locale, path prefix of its tree) for each language built, the default one last ("")."""
    i18n = config.plugins["i18n"].config
    built = [lang for lang in i18n.languages if lang.build]
    return sorted(((lang.locale, "" if lang.default else lang.link.strip("/") + "/") for lang in built),
                  key=lambda pair: -len(pair[1]))


def _pipeline(config, locale: str) -> list[str]:
    """Material's default search pipeline for a language (its partials/languages/<locale>.html)."""
    env = config.theme.get_env()
    for name in (locale, "en"):
        value = str(env.get_template(f"partials/languages/{name}.html").module.t("search.config.pipeline"))
        if value:
            return [step.strip() for step in value.split(",") if step.strip()]
    return []


def on_page_content(html, page, config, files):
    return LEFT_OUT.sub(lambda m: m.group(0) + ' data-search-exclude="listing, figure or formula"', html)


def on_page_context(context, page, config, nav):
    prefix = next(prefix for _, prefix in _languages(config) if page.url.startswith(prefix))
    context["language_root"] = f"{context['base_url']}/{prefix}"
    return context


@event_priority(-200)  # after mkdocs-static-i18n's on_post_build (-100), which writes one index for all
def on_post_build(config):
    search = config.plugins["material/search"]
    entries = search.search_index.entries
    for locale, prefix in _languages(config):
        docs = [dict(entry, location=entry["location"][len(prefix):]) for entry in entries
                if entry["location"].startswith(prefix)]
        entries = [entry for entry in entries if not entry["location"].startswith(prefix)]
        if not docs:  # mkdocs-static-i18n builds the other languages inside the default one's build
            continue
        settings = {"lang": [locale], "separator": SEPARATOR, "pipeline": _pipeline(config, locale),
                    "fields": search.config.fields}
        index = json.dumps({"config": settings, "docs": docs}, ensure_ascii=False, separators=(",", ":"))
        write_file(index.encode("utf-8"), str(Path(config.site_dir, prefix, "search", "search_index.json")))
