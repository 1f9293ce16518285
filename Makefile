# Two entry points, each doing its own set-up: `make run` (the main job) and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: setup run test bench clean

$(STAMP): pyproject.toml scripts/setup
	bash scripts/setup
	@touch $@

setup: $(STAMP)

# The daemon on the bundled sample (no microphone needed), captions echoed to stdout.
run: $(STAMP)
	$(VENV)/bin/npustream run --source sample --echo

test: $(STAMP)
	$(PY) -m ruff format --check --quiet .
	$(PY) -m ruff check --quiet .
	$(PY) -m pytest -q -n auto --dist loadfile  # one worker a core; a test file stays on one worker

bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	PYTHONPATH=tests $(PY) bench/run_all.py  # the checking tools (WER, accuracy) live in tests/tools

clean:
	rm -rf $(VENV) build *.egg-info
