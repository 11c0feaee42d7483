"""report_pie's one row per model: another run's generated rows, labelled by role and model, with
hand-computed Speedup / %Opt / %Correct, their metric keys and table names."""

from __future__ import annotations

from perfrepro.metrics.optimization import model_rows, optimization_metrics, summarize, task_outcomes
from perfrepro.records import Measurement
from perfrepro.report import optimization_table


def m(task, level, role, time, status="ok", sample=0):
    return Measurement(task_id=f"{task}@L{level}", role=role, backend="wall", status=status,
                       execution_time=time if status == "ok" else None, time_unit="ms",
                       peak_memory_mb=None, memory_usage=None, sample=sample)


def run(generated_time, generated_status="ok"):
    """Two tasks: T1's generated program at `generated_time` per level (slow 4 ms), T2's fails."""
    rows = []
    for level in (1, 2, 3):
        rows += [m("T1", level, "slow", 4.0), m("T1", level, "reference", 2.0),
                 m("T1", level, "generated", generated_time, generated_status),
                 m("T2", level, "slow", 4.0), m("T2", level, "reference", 4.0),
                 m("T2", level, "generated", None, "wrong_answer")]
    return rows


def test_model_rows_label_and_score_another_runs_generated_programs():
    outcomes, _ = task_outcomes(run(1.0), samples=1)
    (row,) = model_rows(outcomes, 1, "finetuned", "smollm2-135m-instruct+lora-pie-plain")
    # T1: 12 / 3 = 4.0 (correct, >= 1.10); T2: wrong -> 1.0; mean 2.5; %Opt 50, %Correct 50
    assert row.label == "finetuned (smollm2-135m-instruct+lora-pie-plain)"
    assert (row.tasks, row.speedup, row.pct_opt, row.pct_correct) == (2, 2.5, 50.0, 50.0)
    base_outcomes, _ = task_outcomes(run(4.0), samples=1)
    rows = summarize(base_outcomes, 1)
    rows = rows[:-2] + [row] + rows[-2:]
    metrics = optimization_metrics(rows, 0)
    assert metrics["optimization.finetuned.speedup"] == 2.5 and metrics["optimization.generated.speedup"] == 1.0
    assert metrics["optimization.finetuned.pct_correct"] == 50.0
    table = optimization_table(rows, "smollm2-135m-instruct")
    assert "fine-tuned model (smollm2-135m-instruct+lora-pie-plain)" in table
    assert table.index("fine-tuned model") < table.index("human reference")


def test_best_at_k_rows_keep_their_k():
    rows = run(2.0) + [m("T1", level, "generated", 1.0, sample=1) for level in (1, 2, 3)] + \
        [m("T2", level, "generated", None, "wrong_answer", sample=1) for level in (1, 2, 3)]
    outcomes, _ = task_outcomes(rows, samples=2)
    first, best = model_rows(outcomes, 2, "base_plain", "smollm2")
    assert first.label == "base_plain (smollm2)" and best.label == "base_plain (smollm2) Best@2" and best.k == 2
    assert first.speedup == 1.5 and best.speedup == 2.5  # T1: 4/2 = 2 at @1, 4/1 = 4 at best; T2: 1
