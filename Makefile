# Set-up and everyday commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench soak lint clean
SOAK_SECONDS ?= 1800

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[train,dev,lab,opensim,ray,lsl]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/myoedge demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -q

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q

bench: $(STAMP)
	mkdir -p bench/results
	$(BIN)/myoedge bench --json --out bench/results

soak: $(STAMP)
	mkdir -p docs/results
	$(BIN)/python -m myoedge.edge.sim.soak --seconds $(SOAK_SECONDS) --out docs/results/soak.json --overwrite

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) build *.egg-info
