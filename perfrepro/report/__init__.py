"""Markdown / console tables in the study's style (tabulate), one module per track.

- `efficiency`: the EffiBench table, the report stage's page and files, the efficiency rows across
  experiments;
- `optimization`: the PIE table, report_pie's page and per-task file, the PIE rows across experiments;
- `enamel`: the same under `pie.protocol: enamel` (eff@k, pass@k);
- `retrieval_tables`: the retrieval table across experiments;
- `paired`: the paired comparison of two rows on the tasks both have;
- `experiments`, `study`: `perfrepro table`'s parsed experiments and its page of every track;
- `formatting`: the cells and row names they share.

Row labels say where a row's code came from: the live model's name (`llm.model`), or for
`llm.backend: recorded` the dataset field it replays (`leetcodedataset-response`), never the
name of a model that did not write it.
"""

from perfrepro.report.efficiency import (efficiency_experiment_rows, efficiency_markdown, efficiency_paired_rows,
                                         efficiency_table, experiment_name, reference_name)
from perfrepro.report.enamel import enamel_report
from perfrepro.report.experiments import ExperimentResult, experiments_from_exp_show
from perfrepro.report.formatting import TABLE_FORMATS
from perfrepro.report.optimization import (optimization_experiment_rows, optimization_markdown,
                                           optimization_paired_rows, optimization_table, per_task_speedups,
                                           pie_generated_source)
from perfrepro.report.retrieval_tables import retrieval_display_names, retrieval_rows
from perfrepro.report.study import study_tables

__all__ = [
    "ExperimentResult", "TABLE_FORMATS", "efficiency_experiment_rows", "efficiency_markdown", "efficiency_paired_rows",
    "efficiency_table", "enamel_report", "experiment_name", "experiments_from_exp_show",
    "optimization_experiment_rows", "optimization_markdown", "optimization_paired_rows", "optimization_table",
    "per_task_speedups", "pie_generated_source", "reference_name", "retrieval_display_names", "retrieval_rows",
    "study_tables",
]
