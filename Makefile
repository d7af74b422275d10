# Two commands matter: `make demo` and `make test`. Each installs what it needs into .venv.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
MPY     := $(BIN)/micropython

.PHONY: all venv test test-fast demo sim panel bench docs clean

all: test

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

## test: the whole suite, CPython and MicroPython unix port
test: $(STAMP)
	$(BIN)/python -m pytest

## test-fast: skip the slow end-to-end tests
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m 'not slow'

## demo: a full treatment on the virtual unit, with a summary, a plot and display frames in out/demo
demo: $(STAMP)
	$(BIN)/python -m ionto.demo --out out/demo

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
