# Two entry points (see README): `make repro` runs the pipeline, `make test` runs the tests.
# Both create .venv when it is missing and install only what is not there yet.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
STAMP := $(VENV)/.perfrepro-installed

export DVC_NO_ANALYTICS := 1
export ANONYMIZED_TELEMETRY := False
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

# One portable build of llama.cpp on every x86-64 machine (README, "One llama.cpp build
# everywhere"): a build tuned to the machine segfaults on its first completion on a CPU with AMX
# (llama.cpp issue 20824), and does different float arithmetic on different CPUs. The same list is
# perfrepro.environment.PORTABLE_CMAKE_ARGS. LLAVA_BUILD=OFF leaves out the multimodal library
# (mtmd), which the project never loads: a shorter build, and the same libllama and libggml.
export CMAKE_ARGS := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF -DLLAVA_BUILD=OFF

.PHONY: install lock sandbox-python repro test test-fast benchmarks clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The sandbox runs generated programs as an unprivileged user under a system Python of the same
# version (perfrepro.execution.sandbox.sandbox_python); a pyenv build under /root is out of its reach.
sandbox-python:
	@PYVER=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
	for p in /usr/bin/python$$PYVER /usr/local/bin/python$$PYVER; do test -x $$p && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing the sandbox interpreter: apt-get install python$$PYVER"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python$$PYVER >/dev/null; \
	else \
		echo "error: the sandbox needs /usr/bin/python$$PYVER (run as root: apt-get install python$$PYVER)" >&2; exit 1; \
	fi

# Everything from the lock file, with hashes; then the project itself. Then the check that
# llama-cpp-python is the portable build: pip reuses a wheel it built earlier (its cache key is
# the source, not CMAKE_ARGS), so a wheel built natively before is removed from the cache and
# rebuilt with the flags above. The stamp depends on the lock: a second run installs nothing.
$(STAMP): $(LOCK) pyproject.toml | $(BIN)/python sandbox-python
	$(BIN)/pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/pip install --quiet --no-deps -e .
	@$(BIN)/python -m perfrepro.environment check-llama || { \
		echo "rebuilding llama-cpp-python with the portable flags (removing pip's cached wheel)"; \
		$(BIN)/pip cache remove llama_cpp_python || true; \
		$(BIN)/pip uninstall --quiet -y llama-cpp-python && \
		$(BIN)/pip install --quiet --no-deps --require-hashes -r $(LOCK) && \
		$(BIN)/python -m perfrepro.environment check-llama; }
	touch $(STAMP)

# Re-resolve requirements.lock after a change to pyproject.toml's dependencies (keeps the other
# pins; `make lock LOCK_ARGS=--upgrade` moves everything). pip-tools lives in its own venv.
LOCK_TOOLS := $(VENV)/lock-tools
lock: | $(BIN)/python
	test -x $(LOCK_TOOLS)/bin/pip-compile || { $(PYTHON) -m venv $(LOCK_TOOLS) && $(LOCK_TOOLS)/bin/pip install --quiet pip-tools==7.6.2; }
	$(LOCK_TOOLS)/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras \
		--extra local --extra dev --extra finetune --upgrade-package 'torch==2.13.0+cpu' \
		--no-emit-index-url --no-emit-find-links $(LOCK_ARGS) --output-file $(LOCK) pyproject.toml

install: $(STAMP)

# dvc needs a git repo and its own init; a tarball or fresh copy gets both here.
repro: install
	@git rev-parse --git-dir >/dev/null 2>&1 || git init -q
	@test -d .dvc || $(BIN)/dvc init -q
	$(BIN)/dvc config core.analytics false
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro

# Tests run on every core (pytest-xdist); --dist loadscope keeps a module's tests on one worker,
# so a module-scoped fixture (the end-to-end pipeline, a Dask cluster) is built once.
# `make test` runs every tier (CI); `make test-fast` leaves out the `slow` one (README, "Testing").
PYTEST_WORKERS ?= auto
PYTEST := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadscope
test: install
	$(PYTEST) --durations=25 $(PYTEST_ARGS)

test-fast: install
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

# The calibration benchmarks read the stored tasks and ENAMEL inputs (prepare, pie_tasks: no LLM).
benchmarks: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/retrieval.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/timing_noise.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/wall_contrast.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro pie_tasks
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/calibration.py
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pie_self_speedup.py --backend deterministic
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pie_self_speedup.py --backend wall

# Agreement with published results (README): ENAMEL's eff@1 of the canonical solutions and EvalPerf's
# clusters, reproduced; about 30 min on 2 cores, never in CI. ENAM_PYTHON=<a venv's python with
# enam==0.2.0> adds ENAMEL's own evaluator beside ours (its own venv: enam is never imported here).
.PHONY: agreement
agreement: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/published_agreement.py \
		$(if $(ENAM_PYTHON),--enam-python $(ENAM_PYTHON)) $(AGREEMENT_ARGS)

clean-venv:
	rm -rf $(VENV)

# Mutation testing (issue #15): mutmut over the metrics, the harness verdict, the split and the
# config wiring, on a clone of HEAD (never the working tree); prints the score per module.
.PHONY: mutation
mutation: install
	VENV=$(CURDIR)/$(VENV) scripts/mutation.sh
