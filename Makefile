# Two entry points: `make serve` (set up, build and serve the site) and `make test` (set up, run
# every test); `make site` builds the site for publishing. Everything is installed into .venv and
# node_modules; nothing global but Chromium.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel that these machines carry; an unpinned torch pulls several GB of CUDA packages.
# Where no local wheel is found, set TORCH_INDEX=https://download.pytorch.org/whl/cpu.
TORCH ?= torch==2.13.0
TORCH_INDEX ?=

.PHONY: setup test serve site bench

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install --quiet -e ".[test,docs,bench]"
	# Upstream packages used as test references; their own dependency lists pull torchvision.
	$(PY) -m pip install --quiet --no-deps esm==3.2.1.post1 llms-from-scratch==1.0.19
	touch $@

# KaTeX comes from npm at build time; nothing third-party is committed.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

test: setup
	$(PY) -m pytest --codeblocks

# The whole site in site/, to copy to any static host. Links between pages are relative; the sitemap
# and canonical links are absolute, from ATTNREF_SITE_URL (where the site will be served).
site: setup
	$(VENV)/bin/mkdocs build --strict --site-dir site

serve: setup
	$(VENV)/bin/mkdocs serve

bench: setup
	$(PY) -m attnref.bench
