# Set-up and everyday commands. Every target installs what it needs into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench soak lint clean browser
SOAK_SECONDS ?= 1800

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[train,dev,lab,opensim,ray,lsl,monitor]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/myoedge demo

# The monitor's browser test drives Debian's Chromium through Playwright (Playwright's own browser download
# needs its CDN): installed with apt-get when absent, through sudo when not root. If that cannot work the
# browser test fails and says how to install it; the other tests still run.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
	  { $$SUDO apt-get update && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } || \
	  echo "make: could not install chromium with apt-get: the monitor's browser test will fail"; }

test: $(STAMP) browser
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
