# neuromem: two commands on a fresh clone.
#   make demo  - set up .venv, write the embedded default data, run the main ablation
#   make test  - set up .venv (and the Lava environment), run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAVA_VENV := .venv-lava
DATA := datasets/embedded
DEMO_OUT := runs/demo

.PHONY: install lava demo test bench clean data

install: $(VENV)/.installed

# torch first: the CPU wheel pinned here lies on this machine's disk; an
# unpinned torch would pull a CUDA build of several GB. pyproject only states
# a range, which 2.13.0 satisfies. norse goes in with --no-deps because its
# metadata asks for torchvision, which does not import beside this torch.
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	$(BIN)/pip install -q --no-deps norse==1.1.0
	touch $@

# The Lava backend needs Python 3.10 (lava-nc 0.10.0); hardware/find-python310
# looks the interpreter up at run time.
lava: $(LAVA_VENV)/.installed

$(LAVA_VENV)/.installed: hardware/requirements.txt
	test -x $(LAVA_VENV)/bin/python || "$$(sh hardware/find-python310)" -m venv $(LAVA_VENV)
	$(LAVA_VENV)/bin/pip install -q -r hardware/requirements.txt
	$(LAVA_VENV)/bin/pip install -q -e hardware
	touch $@

data: install
	$(BIN)/neuromem data synth --root $(DATA)

demo: install data
	$(BIN)/neuromem ablate --modality shd,nmnist --memory hopfield --data-root $(DATA) --out $(DEMO_OUT)
	@echo "Report: $(DEMO_OUT)/report.md"

test: install lava
	$(BIN)/python -m pytest tests

bench: install
	$(BIN)/python -m benchmarks.core_speed

clean:
	rm -rf $(VENV) $(LAVA_VENV) $(DEMO_OUT) $(DATA)
