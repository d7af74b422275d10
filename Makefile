# Two commands matter: `make demo` and `make test`. Each installs what it needs into .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPY     := $(BIN)/micropython

.PHONY: all venv test test-fast test-interrupts demo demo-course sim panel bench docs clean system-deps

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

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

## test: the whole suite, CPython and MicroPython unix port
test: $(STAMP) system-deps
	$(BIN)/python -m pytest

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

## test-interrupts: every device command interrupted at N moments of each kind (long; N=6 by default)
test-interrupts: $(STAMP)
	IONTO_INTERRUPT_TRIALS=$${N:-6} $(BIN)/python -m pytest tests/test_interrupt.py

## demo: a full treatment on the virtual unit, with a summary, a plot and display frames in out/demo
demo: $(STAMP)
	$(BIN)/python -m ionto.demo --out out/demo

## demo-course: a short simulated course (12 sessions on the virtual unit, visits recorded) and
## its reports (HTML, PDF, JSON) in out/demo. Not in `make demo` yet: the virtual unit runs
## only ~7x real time, so even these 20-40 s sessions take about a minute in all.
demo-course: $(STAMP)
	$(BIN)/python -m ionto.coursesim --out out/demo

## sim: start the virtual unit and print its serial port (Ctrl-C to stop)
sim: $(STAMP)
	$(BIN)/ionto sim

## panel: a virtual unit with its front panel in the browser (prints the address; Ctrl-C to stop)
panel: $(STAMP)
	$(BIN)/ionto sim --panel

## bench: figures printed as `name: value unit`, all written to bench/results.json
bench: $(STAMP)
	$(BIN)/python -m bench.run

docs: $(STAMP)
	$(BIN)/python -m hw.docs

clean:
	rm -rf $(VENV) .sim out .pytest_cache .hypothesis bench/results.json
