"""Stage `check`: validate the whole params.yaml and the machine before any other stage runs.

Depends on all of params.yaml, so every change to it (a typo at the top level such as `shotz: 2`
included) runs this stage first; `prepare`, and through it every other stage, depends on its
output, data/check.json. Every section is validated (unknown, missing and mistyped keys, value
ranges, configured data paths), then what the configured backends need of this machine (the
local model build and file, valgrind for timing.backend deterministic, docker for gem5, the API
key for openai) and the sandbox's isolation level. Exits 1 listing every error and what to do;
writes data/check.json (params valid, machine facts; nothing that changes with a param's value)
only when there is none.
"""

from __future__ import annotations

import logging
import sys

from perfrepro.checks import as_report, has_errors, run_checks
from perfrepro.io import atomic_outputs, write_json
from perfrepro.stage import stage

log = logging.getLogger("check")


@stage("check", "out")
def main(args) -> int:
    findings = run_checks(args.params)
    for finding in findings:
        {"ok": log.info, "warning": log.warning, "error": log.error}[finding.level]("%s: %s", finding.topic, finding.message)
    if has_errors(findings):
        log.error("%d error(s): fix them and rerun (`perfrepro check` shows this list without DVC)",
                  sum(f.level == "error" for f in findings))
        return 1
    with atomic_outputs(args.out) as (out,):
        write_json(out, as_report(findings))
    log.info("params and machine ok -> %s", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
