# Two commands do all the set-up on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# Offline by design: no weights or datasets are fetched at run time.
export HF_HUB_OFFLINE := 1
export YOLO_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: install demo test test-fast test-all bench bench-deps clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/vitfeat demo artifacts/demo

# `make test` runs every test (about 10 minutes on 2 cores, what CI runs); `make test-fast` skips the
# tests marked slow for a quicker loop while editing; `make test-all` is kept as an alias of `make test`.
test: $(STAMP)
	$(BIN)/ruff check vitfeat tests benchmarks
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/ruff check vitfeat tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow"

test-all: test

bench: $(STAMP)
	for script in benchmarks/bench_*.py; do $(BIN)/python $$script || exit 1; done

# pyradiomics (reference for bench_extract) builds only without build isolation, so it is no extra.
bench-deps: $(STAMP)
	$(BIN)/python -m pip install --quiet versioneer wheel
	$(BIN)/python -m pip install --quiet --no-build-isolation pyradiomics

clean:
	rm -rf artifacts .pytest_cache
