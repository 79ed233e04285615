# Two entry points: `make serve` (set up, build and serve the site) and `make test` (set up, run
# every test). Everything is installed into .venv and node_modules; nothing global but Chromium.
VENV ?= .venv
PY := $(VENV)/bin/python
# The CPU wheel that these machines carry; an unpinned torch pulls several GB of CUDA packages.
TORCH ?= torch==2.13.0

.PHONY: setup test serve build bench

setup: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
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

build: setup
	$(VENV)/bin/mkdocs build --strict

serve: setup
	$(VENV)/bin/mkdocs serve

bench: setup
	$(PY) -m attnref.bench
