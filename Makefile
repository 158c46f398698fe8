# neuromem: two commands on a fresh clone.
#   make demo  - set up .venv, write the embedded default data, run the main ablation
#   make test  - set up .venv (and the Lava environment), run the whole test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
LAVA_VENV := .venv-lava
DEMO_OUT := runs/demo

.PHONY: install lava browser espeak demo test bench clean

install: $(VENV)/.installed

# torch first: the CPU wheel pinned here lies on this machine's disk; an
# unpinned torch would pull a CUDA build of several GB. pyproject only states
# a range, which 2.13.0 satisfies. norse goes in with --no-deps because its
# metadata asks for torchvision, which does not import beside this torch;
# sinabs too, because it asks for nir<=1.0.4 (it imports NIR 1.0.8 graphs).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	$(BIN)/pip install -q --no-deps norse==1.1.0
	$(BIN)/pip install -q --no-deps sinabs==3.1.3
	touch $@

# The Lava backend needs Python 3.10 (lava-nc 0.10.0); hardware/find-python310
# looks the interpreter up at run time.
lava: $(LAVA_VENV)/.installed

$(LAVA_VENV)/.installed: hardware/requirements.txt
	test -x $(LAVA_VENV)/bin/python || "$$(sh hardware/find-python310)" -m venv $(LAVA_VENV)
	$(LAVA_VENV)/bin/pip install -q -r hardware/requirements.txt
	$(LAVA_VENV)/bin/pip install -q -e hardware
	touch $@

# Debian's chromium renders the engram report in a real browser for its test; the test
# skips (and says so) where chromium cannot be installed (not root, no apt).
browser:
	@command -v chromium >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)) || \
		echo "chromium not installed: the browser test will be skipped"

# Debian's espeak-ng and flite speak the digits of the speech stand-in (`neuromem data synth --kind speech`);
# its tests skip (and say so) where they cannot be installed (not root, no apt): without flite, the tests
# of the flite speakers only.
espeak:
	@command -v espeak-ng >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null)) || \
		echo "espeak-ng not installed (needs apt and root): the speech stand-in cannot be built and its test will be skipped"
	@command -v flite >/dev/null 2>&1 || (command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq flite >/dev/null)) || \
		echo "flite not installed (needs apt and root): the speech stand-in's flite speakers cannot be built and their tests will be skipped"

# With no --data-root and no real data in $$NEUROMEM_DATA, ablate writes the embedded
# default ($$NEUROMEM_HOME/embedded, default ~/.cache/neuromem/embedded) on first use.
demo: install
	$(BIN)/neuromem ablate --modality shd,nmnist --memory hopfield --threads 2 --out $(DEMO_OUT)
	@echo "Report: $(DEMO_OUT)/report.md"

test: install lava browser espeak
	$(BIN)/python -m pytest tests

bench: install
	$(BIN)/python -m benchmarks.core_speed --threads 1 --tiers tuned,portable

clean:
	rm -rf $(VENV) $(LAVA_VENV) $(DEMO_OUT)
