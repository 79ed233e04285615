"""A light first visit: everything the home page of each language fetches on first load (the
document, styles, scripts, fonts, the search worker and its index) transfers at most 600 KB, and no
single file is above 300 KB even uncompressed. The site is served here as static hosts such as
GitHub Pages serve it, text compressed with gzip."""

import functools
import gzip
import http.server
import mimetypes
import re
import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from conftest import DOCS, free_port

KB = 1000
TRANSFER_BUDGET = 600 * KB
FILE_BUDGET = 300 * KB


class CompressingHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, text gzip-compressed for a browser that accepts it."""

    TEXT = (".html", ".css", ".js", ".json", ".xml", ".svg")

    def do_GET(self):
        path = Path(self.translate_path(unquote(urlparse(self.path).path)))
        if path.is_dir():
            path = path / "index.html"
        if not (path.suffix in self.TEXT and path.is_file()
                and "gzip" in self.headers.get("Accept-Encoding", "")):
            return super().do_GET()
        body = gzip.compress(path.read_bytes(), compresslevel=6)
        self.send_response(200)
        self.send_header("Content-Type", mimetypes.guess_type(path.name)[0] or "text/plain")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def host(built_site):
    handler = functools.partial(CompressingHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def first_load(page, url: str) -> dict[str, tuple[int, int, int]]:
    """URL path -> (HTTP status, bytes transferred: headers and encoded body, file size) of every
    response of a first visit, the search worker's own requests included."""
    requests = []
    page.on("requestfinished", lambda request: requests.append(request))
    # Material requests the search index once its script has run, which can be after the network
    # has been idle for a while; the worker then loads lunr's language support.
    with page.expect_response(lambda response: response.url.endswith("/search_index.json")):
        page.goto(url)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    loads = {}
    for request in requests:
        response = request.response()
        size = len(response.body())  # decoded
        encoded = int(response.headers.get("content-length", size))
        loads[urlparse(request.url).path] = (
            response.status, request.sizes()["responseHeadersSize"] + encoded, size)
    return loads


@pytest.mark.parametrize("path", ["/", "/en/"])
def test_home_page_first_load_is_light(page, host, path):
    loads = first_load(page, host + path)
    report = "\n".join(f"{sent:>9,} {size:>9,} {status} {url}" for url, (status, sent, size)
                       in sorted(loads.items(), key=lambda item: -item[1][2]))
    assert all(status < 400 for status, _, _ in loads.values()), report
    assert not [url for url in loads if "katex" in url and url.endswith(".js")], report
    transferred = sum(sent for _, sent, _ in loads.values())
    assert transferred <= TRANSFER_BUDGET, f"{path} transfers {transferred:,} bytes:\n{report}"
    assert max(size for _, _, size in loads.values()) <= FILE_BUDGET, report


def stated_totals(lang: str) -> list[tuple[int, int]]:
    """The Performance page's total row: (transferred KB, uncompressed KB) for zh, then en."""
    text = (DOCS / lang / "performance.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith(("| **Total**", "| **合计**")))
    return [(int(a), int(b)) for a, b in re.findall(r"(\d+) KB ?[（(](\d+) KB[)）]", row)]


@pytest.mark.parametrize("column,path", [(0, "/"), (1, "/en/")])
def test_performance_page_states_the_measured_weight(page, host, column, path):
    """The page weight table of the Performance page, in both languages, is what this test
    measures, to within 3 %: it has to be updated when the site grows."""
    loads = first_load(page, host + path)
    sent = sum(sent for _, sent, _ in loads.values()) / KB
    size = sum(size for _, _, size in loads.values()) / KB
    for lang in ("zh", "en"):
        stated_sent, stated_size = stated_totals(lang)[column]
        assert abs(stated_sent - sent) <= 0.03 * sent and abs(stated_size - size) <= 0.03 * size, (
            f"{lang}/performance.md states {stated_sent} KB ({stated_size} KB) for {path}; measured "
            f"{sent:.0f} KB ({size:.0f} KB)")
