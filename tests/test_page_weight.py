"""A light first visit: everything the home page of each language fetches on first load (the
document, styles, scripts, fonts, the search worker and its index) adds up to at most 600 KB, and no
single response is above 300 KB. Bytes are counted as the test server sends them, uncompressed:
a host that compresses sends fewer."""

from urllib.parse import urlparse

import pytest

KB = 1000
TOTAL_BUDGET = 600 * KB
ASSET_BUDGET = 300 * KB


def first_load(page, url: str) -> dict[str, tuple[int, int]]:
    """URL path -> (HTTP status, bytes received: headers and body) of every response of a first
    visit, including the search worker's own requests."""
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
        # The body's length, not sizes()["responseBodySize"], which is 0 for the worker's script.
        loads[urlparse(request.url).path] = (
            response.status, request.sizes()["responseHeadersSize"] + len(response.body()))
    return loads


@pytest.mark.parametrize("path", ["/", "/en/"])
def test_home_page_first_load_is_light(page, server, path):
    loads = first_load(page, server + path)
    report = "\n".join(f"{size:>9,} {status} {url}" for url, (status, size) in
                       sorted(loads.items(), key=lambda item: -item[1][1]))
    assert all(status < 400 for status, _ in loads.values()), report
    assert not [url for url in loads if "katex" in url and url.endswith(".js")], report
    total = sum(size for _, size in loads.values())
    assert total <= TOTAL_BUDGET, f"{path} loads {total:,} bytes:\n{report}"
    assert max(size for _, size in loads.values()) <= ASSET_BUDGET, report
