import functools
import http.server
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from filelock import FileLock

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
LANGS = ("zh", "en")


def pages(lang: str) -> list[Path]:
    """Markdown pages of one language, relative to that language's folder."""
    base = DOCS / lang
    return sorted(p.relative_to(base) for p in base.rglob("*.md"))


def build_site(site: Path, *extra: str) -> None:
    """``mkdocs build --strict`` into ``site``; fails on any warning. ``extra``: more arguments."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site), *extra],
        cwd=ROOT, capture_output=True, text=True, env=env, timeout=600,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if line.startswith(("WARNING", "ERROR"))]
    assert not warnings, "\n".join(warnings)


def pytest_collection_modifyitems(items):
    """One test that needs the built site first, the other tests that need it last.

    Under xdist the first worker starts the shared build with the first test while the others run
    the tests that need no site; by the time they reach the site's tests it is built, so no
    worker sits waiting for it. The order within each group is kept.
    """
    needs_site = [item for item in items if "built_site" in getattr(item, "fixturenames", ())]
    if needs_site:
        site = set(needs_site)
        rest = [item for item in items if item not in site]
        items[:] = needs_site[:1] + rest + needs_site[1:]


@pytest.fixture(scope="session")
def built_site(tmp_path_factory) -> Path:
    """The site, built strictly once per test run: xdist workers share one build (the first to
    take the lock builds it, the others wait and reuse it)."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    site, done = shared / "site", shared / "site.built"
    with FileLock(shared / "site.lock"):
        if not done.exists():
            shutil.rmtree(site, ignore_errors=True)
            build_site(site)
            done.touch()
    return site


# ---- The built site in a real browser: Debian's chromium driven by playwright (no download). ----

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def url_path(lang: str, page: Path) -> str:
    """URL path of a Markdown page of one language on the built site."""
    rel = page.with_suffix("")
    rel = rel.parent if rel.name == "index" else rel
    prefix = "/" if lang == "zh" else "/en/"
    return prefix + (f"{rel.as_posix()}/" if str(rel) != "." else "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(built_site):
    """The strict build served on localhost."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(built_site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    handler.log_message = lambda *a: None
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium: install it with `sudo apt-get install -y chromium` "
                    "(.ci/run does this) to run the browser tests")
    import playwright.sync_api as playwright  # a test dependency (the test extra)

    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def watch(pg, host: str):
    """Record in `pg.errors` the console errors and in `pg.foreign` the requests to hosts other
    than `host` (data: and blob: URLs are the page's own)."""
    pg.errors, pg.foreign = [], []
    pg.on("console", lambda m: m.type == "error" and pg.errors.append(m.text))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    pg.on("request", lambda r: urlparse(r.url).netloc not in (host, "") and
          not r.url.startswith(("data:", "blob:")) and pg.foreign.append(r.url))
    return pg


@pytest.fixture
def page(browser, server):
    """A fresh browser tab (its own context: no cache, no stored colour scheme) that records
    console errors and requests to other hosts."""
    context = browser.new_context()
    yield watch(context.new_page(), urlparse(server).netloc)
    context.close()


def drain(pg) -> tuple[list[str], list[str]]:
    """What `pg` recorded since the last call: (console errors, requests to other hosts)."""
    pg.evaluate("() => 0")  # a round trip: playwright hands over the events that arrived meanwhile
    recorded = (pg.errors[:], pg.foreign[:])
    pg.errors.clear()
    pg.foreign.clear()
    return recorded


def nothing_late(pg) -> None:
    """At the start of a test in the shared tab: anything the tab recorded after the previous test's
    checks (a late error or request of the page it showed) fails this test, naming it."""
    late = drain(pg)
    assert late == ([], []), f"recorded after the previous test's checks (errors, requests): {late}"


def visit(pg, url: str) -> None:
    """Load `url` in the shared tab, after `nothing_late`."""
    nothing_late(pg)
    pg.goto(url, wait_until="load")


@pytest.fixture(scope="session")
def shared_tab(browser, server):
    """One tab kept open for the whole run, loading page after page as a reader's browser does:
    stylesheets, scripts and fonts come from its cache, so a page loads about four times faster
    than in a fresh context. Tests navigate it with `visit` and read what it recorded with `drain`;
    what arrives after the last test fails the run."""
    context = browser.new_context()
    pg = watch(context.new_page(), urlparse(server).netloc)
    yield pg
    late = drain(pg)
    context.close()
    assert late == ([], []), f"console errors, requests to other hosts after the last test: {late}"
