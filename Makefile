# Two commands matter: `make demo` and `make test`. Each installs what it needs into .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPY     := $(BIN)/micropython
EMU     := hw/rp2/emu
EMU_STAMP := $(EMU)/node_modules/.installed

.PHONY: all venv lock test test-fast test-installed test-interrupts demo demo-course sim panel pico rp2-image bench docs clean system-deps

all: test

venv: $(STAMP) $(EMU_STAMP)

# pyproject.toml says which versions ionto accepts; constraints.txt fixes the exact set installed
# here, so every checkout and CI test the same thing.
$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## lock: re-resolve pyproject.toml's ranges in a scratch venv and write constraints.txt
lock:
	rm -rf build/lock-venv && $(PY) -m venv build/lock-venv
	build/lock-venv/bin/pip install -q --upgrade pip
	build/lock-venv/bin/pip install -q '.[dev]'
	{ echo "# Exact versions \`make venv\` installs (pyproject.toml gives the ranges ionto accepts)."; \
	  echo "# Refresh with \`make lock\`, then run \`make test\`."; \
	  build/lock-venv/bin/pip freeze --all | grep -v '^pip==\|^ionto'; } > constraints.txt
	rm -rf build/lock-venv build/lib build/bdist.*  # the scratch venv and the in-tree build of ionto

## system-deps: Debian packages the tests use (headless Chromium for pages, poppler for PDFs),
## installed with apt-get when missing and the machine allows it; the tests skip with a clear
## message where they could not be installed
system-deps:
	@if [ ! -x /usr/bin/chromium ] || ! command -v pdftoppm >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium poppler-utils \
	      || echo "note: could not install chromium/poppler-utils: the page and PDF tests will skip"; \
	  else echo "note: chromium/poppler-utils missing and apt-get unavailable: the page and PDF tests will skip"; fi; \
	fi

# The emulated Pico's node packages (rp2040js, pinned by package-lock.json); node and npm from
# the system's packages when missing.
$(EMU_STAMP): $(EMU)/package.json $(EMU)/package-lock.json
	@command -v node >/dev/null && command -v npm >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; }
	cd $(EMU) && npm ci --no-audit --no-fund --loglevel=error
	touch $(EMU_STAMP)

## test: the whole suite, CPython and MicroPython unix port, and the emulated Pico
## Tests run in a random order (pytest-randomly) so none can lean on another; the seed is printed
## and `make test SEED=N` repeats an order (or: pytest -p randomly --randomly-seed=N).
TEST_ORDER = seed=$${SEED:-$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')}; \
	echo "test order: random, seed $$seed (repeat it with: make test SEED=$$seed)"; \
	$(BIN)/python -m pytest -p randomly --randomly-seed=$$seed

test: $(STAMP) $(EMU_STAMP) system-deps
	@$(TEST_ORDER)

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP) $(EMU_STAMP)
	@$(TEST_ORDER) -m 'not slow'

## test-installed: ionto from a wheel installed into a fresh environment outside the checkout (also in `make test`)
test-installed: $(STAMP)
	$(BIN)/python -m pytest -m installed

## test-interrupts: every device command interrupted at N moments of each kind (long; N=6 by default)
test-interrupts: $(STAMP)
	IONTO_INTERRUPT_TRIALS=$${N:-6} $(BIN)/python -m pytest tests/test_interrupt.py

## demo: a full treatment on the virtual unit, with a summary, a plot and display frames in
## out/demo; then the clinic course (demo-course): about a minute in all
demo: $(STAMP)
	$(BIN)/python -m ionto.demo --out out/demo
	$(BIN)/python -m ionto.coursesim --out out/demo

## demo-course: the clinic course alone: two simulated courses (12 short sessions on a virtual
## unit, visits recorded) and their reports (HTML, PDF, JSON) in out/demo
demo-course: $(STAMP)
	$(BIN)/python -m ionto.coursesim --out out/demo

## sim: start the virtual unit and print its serial port (Ctrl-C to stop)
sim: $(STAMP)
	$(BIN)/ionto sim

## panel: a virtual unit with its front panel in the browser (prints the address; Ctrl-C to stop)
panel: $(STAMP)
	$(BIN)/ionto sim --panel

## pico: start the emulated Pico (our rp2 image on an emulated RP2040) and print its port
pico: $(STAMP) $(EMU_STAMP)
	$(BIN)/ionto pico

## rp2-image: rebuild hw/rp2/image/ from pinned sources (IONTO_MIRRORS: directory of git mirrors)
rp2-image:
	hw/rp2/build.sh

## bench: figures printed as `name: value unit`, all written to bench/results.json
bench: $(STAMP) $(EMU_STAMP)
	$(BIN)/python -m bench.run

## docs: render the hardware diagrams (hw/diagrams) and the architecture picture (docs/architecture.png)
docs: $(STAMP)
	$(BIN)/python -m hw.docs
	$(BIN)/python docs/architecture_diagram.py

clean:
	rm -rf $(VENV) .sim .pico out .pytest_cache .hypothesis bench/results.json $(EMU)/node_modules
