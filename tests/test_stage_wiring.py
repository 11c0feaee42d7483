"""Config -> library wiring of the stages (issue #15): through the REAL stage scripts, as
subprocesses on tiny data in a temp dir, change a param the stage declares in dvc.yaml and see the
output change (and, to tell a change from noise, the same params give the same bytes).

A stage that reads seed 0 instead of `params.seed`, or builds its client with temperature 0.0
instead of `llm.temperature`, fails here.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from fake_openai_server import FakeOpenAI, Reply

from perfrepro.embeddings.cache import EmbeddingSet
from perfrepro.records import Completion, Task, read_jsonl, write_jsonl

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

REPO = Path(__file__).resolve().parents[1]
DIM = 8


def write_params(path: Path, **changes) -> Path:
    """params.yaml with dotted keys changed: write_params(p, **{"llm.temperature": 0.7})."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for dotted, value in changes.items():
        node = params
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        node[last] = value
    path.write_text(yaml.safe_dump(params))
    return path


def run_stage(name: str, *args, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    result = subprocess.run([sys.executable, str(REPO / "stages" / f"{name}.py"), *map(str, args)],
                            cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"stages/{name}.py exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result


def digest(directory: Path, pattern: str = "*") -> str:
    h = hashlib.sha256()
    for f in sorted(directory.rglob(pattern)):
        if f.is_file():
            h.update(f.relative_to(directory).as_posix().encode() + f.read_bytes())
    return h.hexdigest()


# ------------------------------------------------------------------------------------------
# train_adapter: params.seed (dvc.yaml) and the variant's settings (the command line)


def tiny_embeddings(directory: Path, n: int = 24) -> Path:
    rng = np.random.default_rng(0)
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)
    solutions = unit(rng.normal(size=(n, DIM)))
    problems = unit(solutions @ np.linalg.qr(rng.normal(size=(DIM, DIM)))[0] + 0.3 * rng.normal(size=(n, DIM)))
    ids = [f"p{i:02d}" for i in range(n)]
    splits = ["test" if i % 4 == 0 else "train" for i in range(n)]
    docs = [{"id": i, "solution": f"s{i}", "split": s, "source": "t", "language": "python"} for i, s in zip(ids, splits)]
    EmbeddingSet(ids, splits, problems, solutions, [], np.zeros((0, DIM), np.float32), docs).save(directory)
    return directory


VARIANT = ["--epochs", "2", "--batch_size", "8", "--lr", "0.01", "--warmup_steps", "1", "--max_grad_norm", "1.0",
           "--margin", "0.5", "--loss", "mse", "--negatives", "none"]


def test_train_adapter_uses_params_seed_and_the_variant_settings(tmp_path):
    embeddings = tiny_embeddings(tmp_path / "emb")

    def train(out: str, seed: int, variant=VARIANT) -> str:
        params = write_params(tmp_path / f"params-{out}.yaml", seed=seed)
        run_stage("train_adapter", "--variant", "v", *variant, "--embeddings", embeddings,
                  "--out-dir", tmp_path / out, "--params", params, "--protocols", "heldout", cwd=tmp_path)
        return digest(tmp_path / out / "v", "*.npy")

    first = train("a", seed=1)
    assert train("b", seed=1) == first  # same params, same bytes
    assert train("c", seed=2) != first  # params.seed reaches the training (seed 0 hard-coded fails)
    lr = VARIANT.copy()
    lr[lr.index("--lr") + 1] = "0.05"
    assert train("e", seed=1, variant=lr) != first  # the variant's lr reaches the training


def test_train_adapter_reads_the_variant_and_seed_from_the_params_file(tmp_path):
    """Without flags the stage takes adapters.<variant> from --params; params.seed still decides."""
    embeddings = tiny_embeddings(tmp_path / "emb")
    variant = {"epochs": 2, "batch_size": 8, "lr": 0.01, "warmup_steps": 1, "max_grad_norm": 1.0, "margin": 0.5,
               "loss": "mse", "negatives": "none"}

    def train(out: str, seed: int, lr: float = 0.01) -> str:
        params = write_params(tmp_path / f"params-{out}.yaml", seed=seed, adapters={"v": {**variant, "lr": lr}},
                              **{"retrieval.adapter": "v"})
        run_stage("train_adapter", "--variant", "v", "--embeddings", embeddings, "--out-dir", tmp_path / out,
                  "--params", params, "--protocols", "heldout", cwd=tmp_path)
        return digest(tmp_path / out / "v", "*.npy")

    first = train("a", seed=3)
    assert train("b", seed=4) != first
    assert train("c", seed=3, lr=0.05) != first


# ------------------------------------------------------------------------------------------
# generate: llm.* reaches the request (the fake OpenAI server records what it received)


def tiny_tasks(n: int) -> list[Task]:
    return [
        Task(id=f"task-{i}", statement=f"Return the number {i}.",
             starter_code="class Solution:\n    def answer(self) -> int:\n        ",
             canonical_solution=f"class Solution:\n    def answer(self) -> int:\n        return {i}\n",
             test_code=f"def check(candidate):\n    assert candidate() == {i}\n",
             entry_point="Solution().answer", examples=f"assert Solution().answer() == {i}", source="test")
        for i in range(n)
    ]


def test_generate_sends_llm_temperature_model_seed_and_max_tokens(tmp_path):
    write_jsonl(tmp_path / "tasks.jsonl", tiny_tasks(2))
    listed = Reply(body={"object": "list", "data": [{"id": "model-a"}, {"id": "model-b"}]})
    with FakeOpenAI(lambda i, body: Reply(), models=lambda: listed) as server:
        env = {"PERFREPRO_LLM_CACHE": str(tmp_path / "cache"), "OPENAI_API_KEY": "sk-wiring-test"}

        def generate(out: str, **llm) -> list[dict]:
            before = server.count
            changes = {"shots": 0, "llm.backend": "openai", "llm.base_url": server.base_url, "llm.max_retries": 0,
                       "llm.concurrency": 1, "llm.timeout_s": 10.0, **{f"llm.{k}": v for k, v in llm.items()}}
            params = write_params(tmp_path / f"params-{out}.yaml", **changes)
            run_stage("generate", "--params", params, "--tasks", tmp_path / "tasks.jsonl", "--index", tmp_path / "no-index",
                      "--adapters", tmp_path / "no-adapters", "--out", tmp_path / out / "completions.jsonl", cwd=tmp_path,
                      env=env)
            return server.requests[before:]

        a = generate("a", model="model-a", temperature=0.0, seed=11, max_tokens=300)
        b = generate("b", model="model-b", temperature=0.7, seed=12, max_tokens=301)
        # one param at a time: each is a new request (the cache key holds it), carrying the new value
        t = generate("t", model="model-a", temperature=0.5, seed=11, max_tokens=300)
        m = generate("m", model="model-b", temperature=0.0, seed=11, max_tokens=300)
        again = generate("again", model="model-a", temperature=0.0, seed=11, max_tokens=300)
    assert len(a) == 2 and len(b) == 2  # b's changed params are not answered from a's cache
    for body in a:
        assert (body["model"], body["temperature"], body["seed"], body["max_tokens"]) == ("model-a", 0.0, 11, 300)
    for body in b:
        assert (body["model"], body["temperature"], body["seed"], body["max_tokens"]) == ("model-b", 0.7, 12, 301)
    assert [(x["model"], x["temperature"]) for x in t] == [("model-a", 0.5)] * 2
    assert [(x["model"], x["temperature"]) for x in m] == [("model-b", 0.0)] * 2
    assert again == []  # a's params again: all from the cache
    # the completions carry the model they came from
    assert {c.model for c in read_jsonl(tmp_path / "a" / "completions.jsonl", Completion)} == {"model-a"}
    assert {c.model for c in read_jsonl(tmp_path / "b" / "completions.jsonl", Completion)} == {"model-b"}


def test_open_backend_builds_the_client_from_llm_and_keys_the_cache_on_it(tmp_path, monkeypatch):
    """The library side of the same wiring: LLMConfig -> the client's request and cache key."""
    import dataclasses

    from perfrepro.config import load_params
    from perfrepro.generation.backends import open_backend
    from perfrepro.generation.cache import ResponseCache
    from perfrepro.generation.client import ChatRequest

    monkeypatch.setenv("OPENAI_API_KEY", "sk-wiring-test")
    listed = Reply(body={"object": "list", "data": [{"id": "model-a"}, {"id": "model-b"}]})
    with FakeOpenAI(lambda i, body: Reply(), models=lambda: listed) as server:
        base = dataclasses.replace(load_params(REPO / "params.yaml").llm, backend="openai", base_url=server.base_url,
                                   model="model-a", temperature=0.0, seed=5, max_tokens=64, max_retries=0)
        cache = ResponseCache(tmp_path / "cache")
        request = ChatRequest("t", ({"role": "user", "content": "Return 1."},))

        def ask(**changes) -> list[dict]:
            before = server.count
            with open_backend(dataclasses.replace(base, **changes), cache=cache, progress=False) as backend:
                backend.complete(request)
            return server.requests[before:]

        first = ask()
        assert [(x["model"], x["temperature"], x["seed"], x["max_tokens"]) for x in first] == [("model-a", 0.0, 5, 64)]
        assert ask() == []  # same config: cached
        assert [x["temperature"] for x in ask(temperature=0.9)] == [0.9]
        assert [x["model"] for x in ask(model="model-b")] == ["model-b"]
        assert [x["seed"] for x in ask(seed=6)] == [6]
        assert [x["max_tokens"] for x in ask(max_tokens=65)] == [65]


# ------------------------------------------------------------------------------------------
# measure: timing.repeats reaches the backend (one raw.jsonl row per repeat and program)


def test_measure_runs_timing_repeats_per_program(tmp_path):
    tasks = tiny_tasks(1)
    write_jsonl(tmp_path / "tasks.jsonl", tasks)
    write_jsonl(tmp_path / "completions.jsonl", [Completion(
        task_id=tasks[0].id, sample=0, model="m", status="ok", code=tasks[0].canonical_solution, response="")])

    def measure(out: str, repeats: int) -> list[dict]:
        params = write_params(tmp_path / f"params-{out}.yaml", **{
            "timing.backend": "wall", "timing.repeats": repeats, "timing.min_sample_ms": 1.0, "timing.timeout_s": 20.0,
            "llm.backend": "openai", "data.tasks_source": "effibench"})
        run_stage("measure", "--params", params, "--tasks", tmp_path / "tasks.jsonl",
                  "--completions", tmp_path / "completions.jsonl", "--out", tmp_path / out, cwd=tmp_path)
        return [json.loads(line) for line in (tmp_path / out / "raw.jsonl").read_text().splitlines() if line.strip()]

    for repeats in (1, 3):
        rows = measure(f"r{repeats}", repeats)
        per_program = {}
        for row in rows:
            per_program.setdefault((row["task_id"], row["role"], row["sample"]), []).append(row["repeat"])
        assert set(per_program) == {("task-0", "canonical", 0), ("task-0", "completion", 0)}, per_program
        assert all(sorted(r) == list(range(repeats)) for r in per_program.values()), per_program


# ------------------------------------------------------------------------------------------
# pie_tasks: seed and pie.limit_tasks choose the subset, pie.tests_per_level the inputs


def test_pie_tasks_uses_seed_limit_tasks_and_tests_per_level(tmp_path):
    from perfrepro.datasets.enamel import load_opt_tasks

    opt_tasks = load_opt_tasks(REPO / "data" / "raw" / "enamel")[:6]
    write_jsonl(tmp_path / "opt_tasks.jsonl", opt_tasks)

    def pie_tasks(out: str, **changes) -> dict:
        params = write_params(tmp_path / f"params-{out}.yaml", **{"seed": 1, "pie.limit_tasks": 2,
                                                                   "pie.tests_per_level": 1, **changes})
        subset = ["--subset", "samples"] if "samples.tasks" in changes else []
        run_stage("pie_tasks", "--params", params, *subset, "--opt-tasks", tmp_path / "opt_tasks.jsonl",
                  "--humanevalplus", REPO / "data" / "raw" / "humanevalplus" / "HumanEvalPlus.jsonl.gz",
                  "--plus-cap", 1, "--out", tmp_path / out, cwd=tmp_path, timeout=240)
        manifest = json.loads((tmp_path / out / "manifest.json").read_text())
        return {"ids": sorted(item if isinstance(item, str) else item["task_id"] for item in manifest["kept"]),
                "digest": digest(tmp_path / out / "inputs")}

    base = pie_tasks("a")
    assert len(base["ids"]) == 2
    assert pie_tasks("b") == base  # same params, same tasks and inputs
    other_seed = pie_tasks("c", seed=2)
    assert other_seed["ids"] != base["ids"] or other_seed["digest"] != base["digest"]
    assert len(pie_tasks("d", **{"pie.limit_tasks": 3})["ids"]) == 3
    more = pie_tasks("e", **{"pie.tests_per_level": 2})
    assert more["ids"] == base["ids"] and more["digest"] != base["digest"]

    # --subset samples (stage samples_tasks): the first samples.limit_tasks of samples.tasks, whatever pie.limit_tasks says
    chosen = [opt_tasks[5].id, opt_tasks[2].id, opt_tasks[0].id]
    picked = pie_tasks("f", **{"samples.tasks": chosen, "samples.limit_tasks": 2, "pie.limit_tasks": 5})
    assert picked["ids"] == sorted(chosen[:2])
    params = write_params(tmp_path / "params-g.yaml", **{"samples.tasks": ["HumanEval/2"], "samples.limit_tasks": None})
    failed = subprocess.run([sys.executable, str(REPO / "stages" / "pie_tasks.py"), "--params", str(params), "--subset", "samples",
                             "--opt-tasks", str(tmp_path / "opt_tasks.jsonl"), "--out", str(tmp_path / "g"),
                             "--humanevalplus", str(REPO / "data" / "raw" / "humanevalplus" / "HumanEvalPlus.jsonl.gz")],
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert failed.returncode == 1 and "samples.tasks: HumanEval/2 not among the 6 tasks in" in failed.stderr
