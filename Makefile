# The few commands people type. `make run` and `make test` create the virtual environment
# (.venv) and install the project into it when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out
# Optional extras to install with the project: `make test EXTRAS=dev,peers` adds the peer tools.
EXTRAS ?= dev

.PHONY: run test test-slow lint bench clean
.PHONY: docs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mftg solve --scenario 2
	$(BIN)/mftg scenario 2 --out $(OUT)/scenario_2
	$(BIN)/mftg simulate --scenario 3 --paths 100000 --common 1 --steps 1000 --seed 0
	@echo "figures written under $(OUT)/"

# Compilation dominates the tests and is single-threaded: two workers, one test file each.
WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q -n $(WORKERS) --dist loadfile --no-loadscope-reorder --durations=20

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

lint: $(STAMP)
	$(BIN)/ruff check mftg_jax tests benchmarks
	$(BIN)/ruff format --check mftg_jax tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/riccati.py
	$(BIN)/python benchmarks/riccati_stiff.py --quick
	$(BIN)/python benchmarks/monte_carlo.py --quick
	$(BIN)/python benchmarks/memory.py --quick
	$(BIN)/python benchmarks/calibration.py

# The notebooks run first (small sizes; MFTG_FULL=1 for full ones), so the site shows their outputs.
docs: $(STAMP)
	$(BIN)/python docs/hooks/notebooks.py $(OUT)/notebooks
	$(BIN)/mkdocs build --strict --site-dir $(OUT)/site

clean:
	rm -rf $(VENV) $(OUT) .pytest_cache
