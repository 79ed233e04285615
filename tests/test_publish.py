"""A publishable build: `site_url` comes from ATTNREF_SITE_URL, so the sitemap and every page's
canonical link are absolute URLs of built pages; the head keeps MkDocs' and Material's own tags;
`make site` builds into site/, the folder the GitHub Pages workflow publishes."""

import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
import yaml
from mkdocs.config import load_config

from conftest import LANGS, ROOT, pages, url_path

SITEMAP = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
XHTML = "{http://www.w3.org/1999/xhtml}"
ALL = [(lang, p) for lang in LANGS for p in pages(lang)]


@pytest.fixture(scope="module")
def site_url() -> str:
    """The site_url the build used (ATTNREF_SITE_URL, or the default for a local build)."""
    return load_config(str(ROOT / "mkdocs.yml")).site_url


def test_site_url_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("ATTNREF_SITE_URL", "https://example.org/attnref/")
    assert load_config(str(ROOT / "mkdocs.yml")).site_url == "https://example.org/attnref/"
    monkeypatch.delenv("ATTNREF_SITE_URL")
    assert load_config(str(ROOT / "mkdocs.yml")).site_url == "http://127.0.0.1:8000/"


def test_sitemap_lists_every_page_by_absolute_url(built_site, site_url):
    sitemap = ET.parse(built_site / "sitemap.xml").getroot()
    locs = [loc.text for loc in sitemap.iter(f"{SITEMAP}loc")]
    alternates = [link.get("href") for link in sitemap.iter(f"{XHTML}link")]
    assert alternates, "sitemap.xml names no language alternates"
    for url in locs + alternates:
        assert url.startswith(site_url), url
        assert (built_site / url[len(site_url):] / "index.html").is_file(), f"{url} is not a built page"
    assert sorted(locs) == sorted(site_url + url_path(lang, md)[1:] for lang, md in ALL)


class Head(HTMLParser):
    """The <meta> and <link> tags of a page's <head>."""

    def __init__(self):
        super().__init__()
        self.tags, self._in_head = [], False

    def handle_starttag(self, tag, attrs):
        self._in_head = (self._in_head or tag == "head") and tag != "body"
        if self._in_head and tag in ("meta", "link"):
            self.tags.append((tag, dict(attrs)))


def _head(built_site, lang, md) -> list[tuple[str, dict]]:
    parser = Head()
    parser.feed((built_site / url_path(lang, md)[1:] / "index.html").read_text(encoding="utf-8"))
    return parser.tags


@pytest.mark.parametrize("lang,md", ALL, ids=lambda x: str(x))
def test_head_keeps_mkdocs_and_material_tags(built_site, site_url, lang, md):
    head = _head(built_site, lang, md)
    meta = {attrs.get("name"): attrs.get("content") for tag, attrs in head if tag == "meta"}
    links = [attrs for tag, attrs in head if tag == "link"]
    assert meta["generator"].startswith("mkdocs-") and "mkdocs-material-" in meta["generator"]
    assert meta["description"] and "viewport" in meta
    canonical = [link["href"] for link in links if link.get("rel") == "canonical"]
    assert canonical == [site_url + url_path(lang, md)[1:]]
    assert any(link.get("rel") == "icon" for link in links)
    if md.as_posix() != "index.md":
        assert any(link.get("rel") == "prev" for link in links)
    # Material's script would fetch a sitemap.xml next to each alternate link: there is none.
    assert not [link for link in links if link.get("rel") == "alternate"]


def test_make_site_builds_the_folder_the_pages_workflow_publishes():
    dry_run = subprocess.run(["make", "-n", "site"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "mkdocs build --strict --site-dir site" in dry_run.stdout
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "pages.yml").read_text(encoding="utf-8"))
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    build = next(step for step in steps if "make site" in step.get("run", ""))
    assert "ATTNREF_SITE_URL" in build["env"]
    upload = next(step for step in steps if step.get("uses", "").startswith("actions/upload-pages-artifact@"))
    assert upload["with"]["path"] == "site"
    assert any(step.get("uses", "").startswith("actions/deploy-pages@") for step in steps)
