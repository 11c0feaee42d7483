#!/usr/bin/env bash
# Mutation testing of the modules where a silent bug corrupts results (issue #15), with mutmut 3.
#
#   scripts/mutation.sh [REF]        (make mutation; REF defaults to HEAD)
#
# mutmut rewrites source files, so this never runs in the working tree: it clones the committed
# REF into a temp dir, writes the mutmut config there (setup.cfg) and runs only the fast test files
# that exercise these modules. Output: a per-module score table on stdout and in
# $MUTATION_DIR/scores.md, the surviving mutants in $MUTATION_DIR/survivors.txt (with diffs).
# About 15-30 min on 2 cores; runs under `nice -n 10`.
set -euo pipefail

REPO=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
REF=${1:-HEAD}
VENV=${VENV:-$REPO/.venv}
MUTATION_DIR=${MUTATION_DIR:-$(mktemp -d /tmp/perfrepro-mutation.XXXXXX)}
CHILDREN=${MUTATION_CHILDREN:-2}
export PATH="$VENV/bin:$PATH" DVC_NO_ANALYTICS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 ANONYMIZED_TELEMETRY=False

"$VENV/bin/python" -c "import mutmut" 2>/dev/null || {
  echo "mutmut is not installed in $VENV: run '$VENV/bin/pip install \"mutmut>=3.0\"' (or make install)" >&2; exit 2; }

CLONE="$MUTATION_DIR/repo"
git clone -q "$REPO" "$CLONE"
git -C "$CLONE" checkout -q "$(git -C "$REPO" rev-parse "$REF")"
cd "$CLONE"
# Subprocesses started by tests import the mutated copy, not the editable install in $REPO.
mkdir -p mutants  # must exist before Python starts, or the import system caches it as missing
export PYTHONPATH="$CLONE/mutants${PYTHONPATH:+:$PYTHONPATH}"

# The modules (and, for the harness, the one function: the verdict) and the fast tests that cover them.
MODULES=(
  "perfrepro.retrieval.metrics.*"
  "perfrepro.metrics.efficiency.*"
  "perfrepro.metrics.optimization.*"
  "perfrepro.execution.harness.*read_record*"
  "perfrepro.datasets.split.*"
  # config -> library: parsing and type conversion of params.yaml (the range checks' ~300 message
  # mutants are left out to keep the run under 30 min; test_config.py covers them by name)
  "perfrepro.config.x__convert*" "perfrepro.config.x_build*" "perfrepro.config.x_load_params*"
  "perfrepro.config.x_params_errors*" "perfrepro.config.x_unknown_key_message*" "perfrepro.config.x__type_name*"
)
TESTS=()
for t in tests/test_retrieval_metrics.py tests/test_efficiency_metrics.py tests/test_optimization_metrics.py \
         tests/test_config.py tests/test_datasets.py tests/test_metrics_boundaries.py; do
  [ -f "$t" ] && TESTS+=("$t")
done
{
  echo "[mutmut]"
  echo "source_paths = perfrepro"
  echo "only_mutate ="
  for m in retrieval/metrics.py metrics/efficiency.py metrics/optimization.py execution/harness.py \
           datasets/split.py config.py; do echo "    *perfrepro/$m"; done
  echo "pytest_add_cli_args_test_selection ="
  for t in "${TESTS[@]}"; do echo "    $t"; done
  echo "also_copy ="  # files the tests read from the repo root
  for f in params.yaml dvc.yaml stages data Makefile README.md; do [ -e "$f" ] && echo "    $f"; done
  echo "pytest_add_cli_args ="
  echo "    -p"
  echo "    no:cacheprovider"
} > setup.cfg
# A [tool.mutmut] table in pyproject.toml would take precedence over setup.cfg.
if grep -q '^\[tool\.mutmut\]' pyproject.toml; then echo "pyproject.toml has [tool.mutmut]; this script configures mutmut in setup.cfg" >&2; exit 2; fi

echo "mutation testing $(git rev-parse --short HEAD) in $CLONE with: ${TESTS[*]}" >&2
start=$(date +%s)
nice -n 10 mutmut run --max-children "$CHILDREN" "${MODULES[@]}" </dev/null || true
echo "mutmut took $(( $(date +%s) - start )) s" >&2

python - "$MUTATION_DIR" "$(git rev-parse --short HEAD)" "${MODULES[@]}" <<'PY'
import fnmatch, json, re, subprocess, sys
from collections import Counter
from pathlib import Path
from mutmut.stats import status_by_exit_code

out_dir, commit, patterns = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
statuses = {}
for meta in Path("mutants").rglob("*.meta"):
    for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
        if any(fnmatch.fnmatch(key, p) for p in patterns):
            statuses[key] = status_by_exit_code[code]
lines = [f"mutation score at {commit} (killed + timeout) / (mutants with tests):", "",
         "| module | mutants | killed | timeout | survived | no tests | score |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
survivors = []
module = lambda key: re.split(r"\.x(?:_|ǁ)", key)[0] + (" (read_record)" if ".harness." in key else "")
for p in dict.fromkeys(module(k) for k in sorted(statuses)):
    counts = Counter(s for k, s in statuses.items() if module(k) == p)
    n = sum(counts.values())
    tested = n - counts["no tests"] - counts["skipped"] - counts["not checked"]
    caught = counts["killed"] + counts["timeout"] + counts["caught by type check"]
    score = f"{100 * caught / tested:.1f}%" if tested else "-"
    lines.append(f"| {p} | {n} | {counts['killed']} | {counts['timeout']} | {counts['survived']} "
                 f"| {counts['no tests']} | {score} |")
    survivors += sorted(k for k, s in statuses.items() if module(k) == p and s in ("survived", "no tests", "suspicious"))
table = "\n".join(lines)
print(table)
if not any(s in ("killed", "survived", "timeout") for s in statuses.values()):
    sys.exit("mutmut checked no mutant (see its output above: the clean test run or the stats collection failed)")
(out_dir / "scores.md").write_text(table + "\n")
with open(out_dir / "survivors.txt", "w") as f:
    for key in survivors:
        f.write(f"### {key} ({statuses[key]})\n")
        f.write(subprocess.run(["mutmut", "show", key], capture_output=True, text=True).stdout + "\n")
print(f"\n{len(survivors)} surviving / untested mutants: {out_dir / 'survivors.txt'}")
PY
