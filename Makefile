# Every target works on a fresh machine with only Python 3.11 and the package
# registries: the first one creates .venv and installs the project (editable).
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow bench lint clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m apps.classification --config=configs/classification.py --workdir=runs/classification

# Two workers (pytest-xdist): the suite fits in 10 minutes on 2 cores. Then the
# library's representative subset (`-m jax`: Keras twins, NumPy transcriptions,
# gradient checks, compiled steps; about a minute) again on Keras's JAX backend.
test: $(STAMP)
	$(PY) -m pytest -q -n 2
	KERAS_BACKEND=jax $(PY) -m pytest -q -n 2 -m jax tests/layers tests/optimizers

# Every app under SIGKILL, NaN, two workers and TFLite, and the tests of what
# those runs rely on (about 22 minutes on 2 cores).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf runs .pytest_cache
