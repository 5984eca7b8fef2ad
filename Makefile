# make train: set up .venv, train the default model, label the example pairs with it.
# make test : set up .venv, run the test suite (what CI runs).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_DIR ?= outputs/quickstart
PYTEST_ARGS ?=

.PHONY: setup train test test-all clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

train: setup
	$(PY) train.py hydra.run.dir=$(RUN_DIR)
	$(PY) predict.py ckpt=$(RUN_DIR)/model.pt input=examples/pairs.csv output=$(RUN_DIR)/pairs.pred.csv overwrite=true

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

clean:
	rm -rf outputs multirun .pytest_cache
