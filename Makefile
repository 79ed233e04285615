# Entry points: `make serve` (set up, build and serve the site), `make test` (set up, run every
# test), `make site` (the site in site/, for any static host), `make offline` (the site as one
# archive that works without a server or a network). Everything is installed into .venv and
# node_modules; nothing global but Chromium.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel that these machines carry; an unpinned torch pulls several GB of CUDA packages.
# Where no local wheel is found, set TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
# Where `make offline` writes dist/attnref-site/ and dist/attnref-site.zip.
DIST ?= dist
# npm ci reads package-lock.json v3 (npm 7 or newer) and iframe-worker declares Node.js >= 16.
# KaTeX ships prebuilt files and declares no Node.js version; only its command-line tool, which
# the build never runs, asks for Node.js >= 22.12 through commander (npm warns EBADENGINE).
NODE_MIN := 16
NODE_CHECK := if (+process.versions.node.split(".")[0] < $(NODE_MIN)) { console.error("make: Node.js \
  $(NODE_MIN) or newer is needed to install KaTeX; this is Node.js " + process.version); process.exit(1) }

.PHONY: setup test serve site offline bench

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test,docs,bench]"
	# Upstream packages used as test references; their own dependency lists pull torchvision.
	$(PY) -m pip install --quiet --no-deps esm==3.2.1.post1 llms-from-scratch==1.0.19
	touch $@

# KaTeX (and iframe-worker for the offline bundle) come from npm at build time; nothing
# third-party is committed.
node_modules/.installed: package.json package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || { \
	  echo "make: Node.js $(NODE_MIN) or newer, with npm, is needed to install KaTeX; see README.md" >&2; exit 1; }
	@node -e '$(NODE_CHECK)'
	npm ci --no-audit --no-fund
	touch $@

# -n logical: one pytest-xdist worker per CPU the system reports; they share one strict site build.
test: setup
	$(PY) -m pytest --codeblocks -n logical

# The whole site in site/, to copy to any static host. Links between pages are relative; the sitemap
# and canonical links are absolute, from ATTNREF_SITE_URL (where the site will be served).
site: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

serve: setup
	$(VENV)/bin/mkdocs serve

# ATTNREF_OFFLINE turns on Material's offline plugin (mkdocs.yml, docs/hooks/offline.py).
offline: setup
	rm -rf $(DIST)/attnref-site $(DIST)/attnref-site.zip
	ATTNREF_OFFLINE=true $(VENV)/bin/mkdocs build --strict --site-dir $(DIST)/attnref-site
	$(PY) -m zipfile -c $(DIST)/attnref-site.zip $(DIST)/attnref-site
	@echo "$(DIST)/attnref-site.zip: unzip it anywhere and open attnref-site/index.html"

bench: setup
	$(PY) -m attnref.bench
