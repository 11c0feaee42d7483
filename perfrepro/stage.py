"""What every stage script shares: its log style, SIGTERM and Ctrl-C as exit 130, bad input as
exit 1 with the message and no traceback, the Hugging Face hub kept offline for a stage that loads
a model, and the run fingerprint its metrics record.

A stage is a function of its parsed arguments; `stage` turns it into ``main(argv=None) -> int``
with a parser holding ``--params`` and one required flag per path (the paths are written once, on
dvc.yaml's ``cmd:`` line):

    @stage("prepare", "out")
    def main(args) -> int:
        params = load_params(args.params)
        ...

The library stays free of DVC: nothing here reads params.yaml; ``--params`` only names it.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable

from perfrepro.logs import setup_logging

# The project's error types that mean "bad input or a machine that cannot run this" (a param, a
# file, an endpoint, a missing tool): their message says what to fix, so a stage logs it and exits
# 1 without a traceback. Matched by class name among perfrepro's classes and their bases, so this
# module imports none of them (a stage that never imported a module cannot raise its errors).
BAD_INPUT = frozenset({
    "ConfigError", "DatasetError", "RecordError", "BackendError", "LocalServerError", "ExecutorError",
    "SandboxUnavailable", "RetrievalInputError", "SamplesError", "FinetuneDataError", "FinetuneModelError",
    "FinetuneSetupError", "FinetunedModelError", "OpenAIJobError", "NoTrainingDataError",
})

INTERRUPTED = 130  # the shell's code for a run ended by SIGINT


def is_bad_input(exc: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """Whether `exc` is one of BAD_INPUT (or FileNotFoundError, or one of `also`)."""
    if isinstance(exc, (FileNotFoundError, *also)):
        return True
    return any(cls.__module__.startswith("perfrepro.") and cls.__name__ in BAD_INPUT for cls in type(exc).__mro__)


def keep_hub_offline() -> None:
    """A model comes from disk or a server, never a download (unless the environment says otherwise)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def run_stage(name: str, work: Callable[[], int | None], *, model: bool = False,
              also: tuple[type[BaseException], ...] = (), interrupted: str = "interrupted") -> int:
    """Run `work` as stage `name`; its return code (None is 0).

    SIGTERM (what `dvc` and CI send) is turned into KeyboardInterrupt while `work` runs, so a local
    server is stopped and the run ends the way Ctrl-C ends it: `interrupted` logged, 130."""
    log = setup_logging(name)
    if model:
        keep_hub_offline()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_interrupt) if main_thread else None
    try:
        code = work()
        return 0 if code is None else code
    except KeyboardInterrupt:
        log.error("%s", interrupted)
        return INTERRUPTED
    except BaseException as exc:  # SandboxUnavailable is a BaseException, so that no `except Exception` swallows it
        if not is_bad_input(exc, also):
            raise
        log.error("%s", exc)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def parser(doc: str | None, *paths: str) -> argparse.ArgumentParser:
    """A stage's parser: ``--params`` (default params.yaml) and a required ``--<path>`` per name."""
    result = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    result.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    for path in paths:
        result.add_argument(f"--{path}", type=Path, required=True)
    return result


def stage(name: str, *paths: str, options: Callable[[argparse.ArgumentParser], None] | None = None,
          **run_options) -> Callable[[Callable[[argparse.Namespace], int | None]], Callable[..., int]]:
    """Decorator: a function of the parsed arguments -> ``main(argv=None) -> int`` run by run_stage.

    `paths` become required flags, `options` adds any other argument, `run_options` go to run_stage."""

    def wrap(work):
        @functools.wraps(work)
        def main(argv=None) -> int:
            arguments = parser(sys.modules[work.__module__].__doc__, *paths)
            if options is not None:
                options(arguments)
            return run_stage(name, lambda: work(arguments.parse_args(argv)), **run_options)

        return main

    return wrap


def with_run_info(metrics: dict) -> dict:
    """`metrics` with the run fingerprint (perfrepro.environment) under ``run_info``, last."""
    from perfrepro.environment import fingerprint

    return {**metrics, "run_info": fingerprint()}
