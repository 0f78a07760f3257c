# The two commands of the README: `make demo` (main job on the bundled sample) and `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
ARCHC   := $(BIN)/archc
STAMP   := $(VENV)/.installed

.PHONY: setup demo test test-slow bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@command -v dot >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && apt-get install -y -qq graphviz >/dev/null) || echo "note: install Graphviz (apt-get install graphviz) for --render"; }
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(ARCHC) check densenet121
	$(ARCHC) summary densenet121 --depth 1
	$(ARCHC) compile densenet121.arch --render -o out/densenet121.png
	$(ARCHC) train resnet_uva --data sample --out out/demo-run --epochs 2 --batch-size 128 --force
	$(ARCHC) eval resnet_uva --checkpoint out/demo-run/best.pt --data sample

test: $(STAMP)
	$(BIN)/python -m pytest

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow

bench: $(STAMP)
	$(BIN)/python bench/check_speed.py
	$(BIN)/python bench/codegen_speed.py
	$(BIN)/python bench/train_cpu.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
