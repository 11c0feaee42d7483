"""Dataset loaders on small fixtures in each source's real format; bad input; splits."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from perfrepro.datasets import (  # noqa: E402
    DatasetError,
    effibench,
    enamel,
    hpc_instruct,
    leetcodedataset,
    load_corpus_source,
    load_opt_tasks,
    load_pie_pairs,
    load_task_source,
    pie,
    select_subset,
    split_by_problem,
)
from perfrepro.datasets.base import is_hub_reference, strip_code_fence  # noqa: E402
from perfrepro.records import CorpusPair, OptTask, Task, read_jsonl, write_jsonl  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[1]
LCD_V020 = FIXTURES / "leetcodedataset-v0.2.0.jsonl.gz"
LCD_V031 = FIXTURES / "leetcodedataset-v0.3.1.jsonl"
EFFIBENCH = FIXTURES / "effibench.json"
ENAMEL_DIR = REPO / "data" / "raw" / "enamel"


def run_task(task: Task, solution: str | None = None) -> None:
    """The harness convention every task source follows: imports + solution + tests, check(entry)."""
    program = "\n".join([task.imports, solution or task.canonical_solution, task.test_code, f"check({task.entry_point})"])
    exec(compile(program, task.id, "exec"), {"__name__": "__main__"})


def fixture_rows(path: Path) -> list[dict]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# --- LeetCodeDataset -------------------------------------------------------------------------


def test_leetcodedataset_v020_corpus_and_tasks():
    pairs = leetcodedataset.load_corpus(LCD_V020, "python")
    assert [p.id for p in pairs] == ["two-sum", "reverse-integer", "roman-to-integer"]
    first = pairs[0]
    assert first.problem.startswith("Given an array of integers nums")
    assert "class Solution" in first.solution and first.slow_solution is None
    assert (first.language, first.source) == ("python", "leetcodedataset")

    tasks = leetcodedataset.load_tasks(LCD_V020)
    two_sum = tasks[0]
    assert two_sum.entry_point == "Solution().twoSum"
    assert two_sum.starter_code.startswith("class Solution:\n    def twoSum(")
    assert two_sum.imports.startswith("from typing import *")
    assert two_sum.examples.splitlines() == [
        "assert Solution().twoSum(nums = [2,7,11,15], target = 9) == [0,1]",
        "assert Solution().twoSum(nums = [3,2,4], target = 6) == [1,2]",
        "assert Solution().twoSum(nums = [3,3], target = 6) == [0,1]",
    ]
    for task in tasks:
        run_task(task)


def test_leetcodedataset_v031_tasks_run_and_examples_come_from_the_statement():
    tasks = leetcodedataset.load_tasks(LCD_V031)
    rows = fixture_rows(LCD_V031)
    assert [t.id for t in tasks] == [r["task_id"] for r in rows]
    for task, row in zip(tasks, rows):
        assert task.statement == row["problem_description"]
        assert task.starter_code == row["starter_code"]
        assert task.test_code == row["test"] and task.canonical_solution == row["completion"]
        assert task.examples and all(line.startswith(f"assert {task.entry_point}(") for line in task.examples.splitlines())
        run_task(task)  # the canonical solution passes
        with pytest.raises(AssertionError):
            run_task(task, "class Solution:\n    def __getattr__(self, name):\n        return lambda *a, **k: None\n")


def test_leetcodedataset_recorded_responses_and_tasks_round_trip(tmp_path):
    responses = leetcodedataset.load_recorded_responses(LCD_V020)
    assert set(responses) == {"two-sum", "reverse-integer", "roman-to-integer"}
    assert "```python" in responses["two-sum"]
    tasks = leetcodedataset.load_tasks(LCD_V020)
    write_jsonl(tmp_path / "tasks.jsonl", tasks)
    assert read_jsonl(tmp_path / "tasks.jsonl", Task) == tasks


def test_leetcodedataset_is_python_only():
    with pytest.raises(DatasetError, match="Python solutions only"):
        leetcodedataset.load_corpus(LCD_V020, "cpp")


# --- EffiBench -------------------------------------------------------------------------------


def test_effibench_json_maps_to_runnable_tasks():
    tasks = effibench.load_tasks(EFFIBENCH)
    assert [t.id for t in tasks] == ["2294", "1386"]
    task = tasks[0]
    assert task.entry_point == "Solution().partitionArray"
    assert task.test_code.startswith("def check(candidate):\n    solution = Solution()\n    assert candidate(")
    assert task.test_code.count("assert candidate(") == 100
    assert task.examples.splitlines()[0] == "assert Solution().partitionArray([3,6,1,2,5], 2) == 2"
    assert task.starter_code == "class Solution:\n    def partitionArray(self, nums: List[int], k: int) -> int:\n        "
    assert task.source == "effibench" and "TreeNode" in task.imports
    for task in tasks:
        run_task(task)
        exec(task.imports + task.canonical_solution + "\n" + task.examples, {})  # examples hold
    with pytest.raises(AssertionError):  # a wrong solution fails the same harness
        run_task(tasks[0], "class Solution:\n    def partitionArray(self, nums, k):\n        return 1\n")


def test_effibench_jsonl_equals_json(tmp_path):
    records = json.loads(EFFIBENCH.read_text())
    path = write_rows(tmp_path / "effibench.jsonl", records)
    assert effibench.load_tasks(path) == effibench.load_tasks(EFFIBENCH)
    assert load_task_source("effibench", path) == effibench.load_tasks(EFFIBENCH)


def test_effibench_missing_field_names_file_row_and_field(tmp_path):
    records = json.loads(EFFIBENCH.read_text())
    del records[1]["test_case"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(records))
    with pytest.raises(DatasetError) as info:
        effibench.load_tasks(path)
    assert str(info.value) == f"EffiBench file {path}, row 2: field 'test_case' is missing"


def test_effibench_broken_test_code_is_rejected(tmp_path):
    records = json.loads(EFFIBENCH.read_text())
    records[0]["test_case"] += "\nassert solution.partitionArray([1, 2], 3) == ("
    path = write_rows(tmp_path / "bad.jsonl", records)
    with pytest.raises(DatasetError, match=r"bad.jsonl, line 1: field 'test_case' is not valid Python"):
        effibench.load_tasks(path)


@pytest.mark.slow
def test_effibench_hub_offline_says_how_to_pass_a_local_file(monkeypatch):
    import datasets
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    start = time.monotonic()
    with pytest.raises(DatasetError) as info:
        effibench.load_tasks("hf://DONG19/EffiBench")
    message = str(info.value)
    assert "cannot load 'DONG19/EffiBench'" in message
    assert "Pass a local file instead" in message and "data.tasks_source: effibench" in message
    with pytest.raises(DatasetError, match="Pass a local file instead"):
        hpc_instruct.load_corpus("hpcgroup/hpc-instruct", "python")
    assert time.monotonic() - start < 20  # offline fails at once, no network wait


def test_hub_references_are_told_from_local_paths(tmp_path):
    assert is_hub_reference("hf://DONG19/EffiBench")
    assert is_hub_reference("hpcgroup/hpc-instruct@train")
    assert not is_hub_reference("data/missing.json")
    assert not is_hub_reference(EFFIBENCH)


# --- hpc-instruct ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["hpc-instruct.parquet", "hpc-instruct.json"])
def test_hpc_instruct_hub_columns_language_filter_and_fences(name):
    pairs = hpc_instruct.load_corpus(FIXTURES / name, "python")
    assert [p.id for p in pairs] == ["hpc-000001", "hpc-000003"]  # "Python" matches too
    assert pairs[0].problem == "Sum a list of numbers in parallel with multiprocessing."
    assert pairs[0].solution == "from multiprocessing import Pool\n\ndef total(xs):\n    return sum(xs)"
    assert pairs[1].solution.startswith("import numpy as np")
    assert all(p.language == "python" and p.source == "hpc_instruct" and p.slow_solution is None for p in pairs)
    (cpp,) = load_corpus_source("hpc_instruct", FIXTURES / name, "cpp")
    assert cpp.id == "hpc-000002" and cpp.solution.startswith("#include <vector>") and "```" not in cpp.solution


def test_hpc_instruct_parquet_equals_json():
    assert hpc_instruct.load_corpus(FIXTURES / "hpc-instruct.parquet") == hpc_instruct.load_corpus(
        FIXTURES / "hpc-instruct.json"
    )


def test_hpc_instruct_corpus_data_shape_keeps_slow_solution():
    pairs = hpc_instruct.load_corpus(FIXTURES / "hpc-corpus_data.json", "cpp")
    assert [p.id for p in pairs] == ["0", "1"]
    assert pairs[0].slow_solution.startswith("long sum(long* a, int n)")
    assert pairs[1].solution.startswith("void scale") and "```" not in pairs[1].solution
    assert all(p.language == "cpp" for p in pairs)


def test_hpc_instruct_no_rows_in_language_is_an_error():
    with pytest.raises(DatasetError, match="no rows in language 'fortran'"):
        hpc_instruct.load_corpus(FIXTURES / "hpc-instruct.parquet", "fortran")


def test_hpc_instruct_bad_parquet_row_names_row_and_field(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(FIXTURES / "hpc-instruct.parquet").to_pylist()
    rows[2]["solution"] = "   "
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    with pytest.raises(DatasetError, match=r"bad.parquet, row 3: field 'solution' is empty"):
        hpc_instruct.load_corpus(path, "python")


def test_strip_code_fence():
    assert strip_code_fence("text\n```cpp\nint x;\n```\nmore") == "int x;"
    assert strip_code_fence("```\na = 1\n") == "a = 1"
    assert strip_code_fence("\nplain = 2\n") == "plain = 2"


# --- ENAMEL ----------------------------------------------------------------------------------


def test_enamel_loads_the_142_scored_tasks():
    tasks = load_opt_tasks(ENAMEL_DIR)
    assert len(tasks) == 142
    ids = {t.id for t in tasks}
    assert "HumanEval/2" not in ids and "HumanEval/160" not in ids and "HumanEval/0" in ids
    assert len(enamel.load_opt_tasks(ENAMEL_DIR, include_excluded=True)) == 164
    first = tasks[0]
    assert isinstance(first, OptTask)
    assert first.levels == (20, 100, 10000, 15000)
    assert first.entry_point == "has_close_elements"
    assert first.statement.startswith("from typing import List") and first.source == "enamel"
    assert "def generate_input(" in first.input_generator and "def __check(" in first.checker
    namespace: dict = {}
    exec(first.slow_program, namespace)
    assert namespace["has_close_elements"]([1.0, 2.8, 3.0, 4.0, 5.0, 2.0], 0.3) is True
    exec(first.reference_program, namespace)
    assert namespace["has_close_elements"]([1.0, 2.0, 3.0], 0.5) is False


def enamel_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(ENAMEL_DIR, tmp_path / "enamel"))


def test_enamel_bad_levels_name_row_and_field(tmp_path):
    root = enamel_copy(tmp_path)
    text = (root / "enamel.csv").read_text(encoding="utf-8")
    (root / "enamel.csv").write_text(text.replace("20 100 10000 15000", "20 100 big 15000", 1), encoding="utf-8")
    with pytest.raises(DatasetError, match=r"enamel.csv, row 1: field 'input_levels' should be 4 positive sizes"):
        load_opt_tasks(root)


def test_enamel_sample_file_of_wrong_length_is_rejected(tmp_path):
    root = enamel_copy(tmp_path)
    programs = json.loads((root / enamel.REFERENCE_FILE).read_text())
    (root / enamel.REFERENCE_FILE).write_text(json.dumps(programs[:-1]))
    with pytest.raises(DatasetError, match=r"enamel-references.json: expected a list of 164 program lists, got 163"):
        load_opt_tasks(root)


# --- PIE -------------------------------------------------------------------------------------


def test_pie_pairs_and_runtimes():
    pairs = load_pie_pairs(FIXTURES / "pie.jsonl")
    rows = fixture_rows(FIXTURES / "pie.jsonl")
    assert len(pairs) == 3
    first = pairs[0]
    assert first.id == "p03371_s504204235_s825991485" and first.problem == "p03371"
    assert first.slow_solution == rows[0]["input"] and first.solution == rows[0]["target"]
    assert (first.language, first.source) == ("python", "pie")
    runtimes = pie.load_runtimes(FIXTURES / "pie.jsonl")
    assert runtimes[first.id] == (rows[0]["measured_runtime_v0"], rows[0]["measured_runtime_v1"])
    assert all(slow > fast for slow, fast in runtimes.values())


# --- bad input common to every loader --------------------------------------------------------


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = tmp_path / "broken.jsonl"
    lines = LCD_V031.read_text().splitlines()
    path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"LeetCodeDataset file .*broken.jsonl, line 2: not valid JSON"):
        leetcodedataset.load_tasks(path)


def test_missing_field_names_file_line_and_field(tmp_path):
    rows = fixture_rows(LCD_V031)
    del rows[1]["entry_point"]
    path = write_rows(tmp_path / "lcd.jsonl", rows)
    with pytest.raises(DatasetError) as info:
        leetcodedataset.load_tasks(path)
    assert str(info.value) == f"LeetCodeDataset file {path}, line 2: field 'entry_point' is missing"


def test_nested_meta_field_is_named(tmp_path):
    rows = fixture_rows(LCD_V020)
    rows[2]["meta"]["question_title"] = 7
    path = write_rows(tmp_path / "lcd.jsonl", rows)
    with pytest.raises(DatasetError, match=r"line 3: field 'meta.question_title' should be str, got int"):
        leetcodedataset.load_corpus(path)


def test_unknown_schema_is_named(tmp_path):
    rows = fixture_rows(LCD_V020)
    del rows[0]["meta"]
    path = write_rows(tmp_path / "lcd.jsonl", rows)
    with pytest.raises(DatasetError, match=r"line 1: field 'meta' \(v0.2.0\) or 'problem_description' \(v0.3.1\) is missing"):
        leetcodedataset.load_corpus(path)


@pytest.mark.parametrize(
    "loader, rows_of, key",
    [
        (leetcodedataset.load_tasks, lambda: fixture_rows(LCD_V020), "task_id"),
        (leetcodedataset.load_corpus, lambda: fixture_rows(LCD_V031), "task_id"),
        (effibench.load_tasks, lambda: json.loads(EFFIBENCH.read_text()), "problem_idx"),
        (pie.load_pairs, lambda: fixture_rows(FIXTURES / "pie.jsonl"), None),
        (lambda p: hpc_instruct.load_corpus(p, "cpp"), lambda: json.loads((FIXTURES / "hpc-corpus_data.json").read_text()), "id"),
    ],
)
def test_duplicate_ids_are_rejected_naming_both_lines(tmp_path, loader, rows_of, key):
    rows = rows_of()
    if key is None:  # PIE: the same submission pair twice
        rows.append(dict(rows[0]))
    else:
        rows.append(dict(rows[-1]))
    path = write_rows(tmp_path / "dup.jsonl", rows)
    with pytest.raises(DatasetError, match=rf"dup.jsonl, line {len(rows)}: duplicate id .* \(first at line \d\)"):
        loader(path)


@pytest.mark.parametrize(
    "loader",
    [leetcodedataset.load_tasks, leetcodedataset.load_corpus, effibench.load_tasks, pie.load_pairs, hpc_instruct.load_corpus],
)
def test_empty_source_is_an_error(tmp_path, loader):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n")
    with pytest.raises(DatasetError, match=r"empty.jsonl: no rows \(an empty source is an error\)"):
        loader(path)


def test_empty_json_list_and_missing_file_are_errors(tmp_path):
    (tmp_path / "empty.json").write_text("[]")
    with pytest.raises(DatasetError, match="no rows"):
        effibench.load_tasks(tmp_path / "empty.json")
    with pytest.raises(DatasetError, match=r"missing.jsonl: not found"):
        pie.load_pairs(tmp_path / "missing.jsonl")


def test_factories_reject_unknown_sources():
    with pytest.raises(DatasetError, match="data.corpus_source: unknown source 'nope'"):
        load_corpus_source("nope", LCD_V020)
    with pytest.raises(DatasetError, match="data.tasks_source: unknown source 'nope'"):
        load_task_source("nope", LCD_V020)
    assert load_corpus_source("leetcodedataset", LCD_V020, "python") == leetcodedataset.load_corpus(LCD_V020)


# --- splits ----------------------------------------------------------------------------------


def pairs_of(n: int, per_problem: int = 1) -> list[CorpusPair]:
    return [
        CorpusPair(f"p{i:03d}-{j}", f"problem {i:03d}", "pass", None, "python", "test")
        for i in range(n)
        for j in range(per_problem)
    ]


def test_split_is_deterministic_disjoint_and_order_free():
    pairs = pairs_of(50)
    train, test = split_by_problem(pairs, 0.2, seed=42)
    assert len(test) == 10 and len(train) == 40
    assert {p.id for p in train}.isdisjoint({p.id for p in test})
    assert split_by_problem(pairs, 0.2, seed=42) == (train, test)
    shuffled = list(reversed(pairs))
    train_r, test_r = split_by_problem(shuffled, 0.2, seed=42)
    assert {p.id for p in test_r} == {p.id for p in test}  # the input order does not matter
    assert split_by_problem(pairs, 0.2, seed=7)[1] != test  # the seed does


def test_split_keeps_a_problem_on_one_side():
    pairs = pairs_of(10, per_problem=3)
    train, test = split_by_problem(pairs, 0.3, seed=1, key=lambda pair: pair.problem)
    assert len({p.problem for p in test}) == 3 and len(test) == 9
    assert {p.problem for p in train}.isdisjoint({p.problem for p in test})


def test_split_rejects_what_cannot_be_split():
    with pytest.raises(DatasetError, match="test_fraction"):
        split_by_problem(pairs_of(5), 1.0, seed=0)
    with pytest.raises(DatasetError, match="cannot split 1 problem"):
        split_by_problem(pairs_of(1), 0.5, seed=0)


def test_select_subset_is_deterministic_and_keeps_order():
    items = pairs_of(30)
    chosen = select_subset(items, 5, seed=42)
    assert len(chosen) == 5 and chosen == select_subset(items, 5, seed=42)
    assert chosen == [item for item in items if item in chosen]
    assert {c.id for c in select_subset(list(reversed(items)), 5, seed=42)} == {c.id for c in chosen}
    assert select_subset(items, None, seed=42) == items and select_subset(items, 99, seed=42) == items
