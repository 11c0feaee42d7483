# Two entry points (see README): `make repro` runs the pipeline, `make test` runs the tests.
# Both create .venv when it is missing and install only what is not there yet.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.perfrepro-installed

export DVC_NO_ANALYTICS := 1
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: install repro test benchmarks clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch first, pinned to the local CPU build, so nothing pulls a CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[local,dev]'
	touch $(STAMP)

install: $(STAMP)

# dvc needs a git repo and its own init; a tarball or fresh copy gets both here.
repro: install
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	@test -d .dvc || $(BIN)/dvc init -q
	$(BIN)/dvc config core.analytics false
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q $(PYTEST_ARGS)

# The calibration benchmarks read the stored tasks and ENAMEL inputs (prepare, pie_tasks: no LLM).
benchmarks: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/retrieval.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/timing_noise.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro pie_tasks
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/calibration.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pie_self_speedup.py --backend deterministic
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pie_self_speedup.py --backend wall

clean-venv:
	rm -rf $(VENV)
