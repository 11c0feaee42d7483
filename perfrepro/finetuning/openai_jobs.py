"""OpenAI's hosted fine-tuning through the `openai` client: upload, create, poll, record.

- One job per (training data, validation data, params): the job is keyed by the sha256 of the
  uploaded bytes and the job's params, and its id is written to ``<cache>/finetune-jobs/<key>.json``
  the moment it is created, before any polling. A rerun (or a run resumed after Ctrl-C) finds the
  file and polls that job again; it never uploads or creates a second one. A job that failed stays
  failed: the rerun reports its error and says which file to delete to try again.
- Polling backs off: the wait starts at ``poll_interval_s`` and doubles up to 10 minutes; a 429,
  a 5xx or a connection error during a poll is waited out (its Retry-After honoured) rather than
  ending the run, until ``poll_timeout_s``.
- The API key goes to the openai client only; it is in no file and no error message.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from perfrepro.generation.endpoint import retry_after, scrub_secret
from perfrepro.io import read_json, write_json

log = logging.getLogger(__name__)

TERMINAL = ("succeeded", "failed", "cancelled")
MAX_POLL_INTERVAL_S = 600.0
JOBS_DIR = "finetune-jobs"


class OpenAIJobError(RuntimeError):
    """A fine-tuning job that could not be created or did not succeed; the message says why."""


@dataclass(frozen=True)
class OpenAIJobSettings:
    model: str
    n_epochs: int | None
    seed: int
    suffix: str = "perfrepro-pie"
    poll_interval_s: float = 30.0
    poll_timeout_s: float = 14400.0
    max_retries: int = 5  # per upload / create call, on 429 / 5xx / connection errors


def job_key(train_jsonl: bytes, val_jsonl: bytes | None, settings: OpenAIJobSettings) -> str:
    """sha256 of the data and everything that decides the job (not the polling settings)."""
    digest = hashlib.sha256()
    digest.update(hashlib.sha256(train_jsonl).digest())
    digest.update(hashlib.sha256(val_jsonl or b"").digest())
    digest.update(json.dumps({"model": settings.model, "n_epochs": settings.n_epochs, "seed": settings.seed,
                              "suffix": settings.suffix}, sort_keys=True).encode())
    return digest.hexdigest()


def job_state_path(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / JOBS_DIR / f"{key}.json"


class _Transient(Exception):
    def __init__(self, message: str, retry_after_s: float | None = None):
        super().__init__(message)
        self.retry_after_s = retry_after_s


def _as_dict(obj: Any) -> dict:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    return dict(obj)


class FineTuningClient:
    """The few fine-tuning calls, with 429/5xx/connection errors turned into `_Transient`."""

    def __init__(self, api_key: str, base_url: str | None, timeout_s: float = 120.0):
        import openai

        self._secret = api_key
        self._openai = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout_s)

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        import openai

        try:
            return fn()
        except openai.APIConnectionError as exc:  # includes timeouts
            raise _Transient(f"{what}: connection error ({self._scrub(exc)})") from None
        except openai.APIStatusError as exc:
            message = f"{what}: HTTP {exc.status_code} ({self._scrub(exc)})"
            if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
                raise _Transient(message, retry_after(exc)) from None
            raise OpenAIJobError(message) from None

    def _scrub(self, exc: BaseException) -> str:
        return scrub_secret(f"{type(exc).__name__}: {exc}"[:500], [self._secret])

    def upload(self, name: str, data: bytes) -> str:
        file = self._call(f"upload {name}", lambda: self._openai.files.create(
            file=(name, io.BytesIO(data), "application/jsonl"), purpose="fine-tune"))
        return file.id

    def create(self, settings: OpenAIJobSettings, training_file: str, validation_file: str | None) -> dict:
        kwargs: dict[str, Any] = {"model": settings.model, "training_file": training_file, "seed": settings.seed,
                                  "suffix": settings.suffix}
        if validation_file:
            kwargs["validation_file"] = validation_file
        if settings.n_epochs is not None:
            kwargs["hyperparameters"] = {"n_epochs": settings.n_epochs}
        return _as_dict(self._call("create fine-tuning job", lambda: self._openai.fine_tuning.jobs.create(**kwargs)))

    def retrieve(self, job_id: str) -> dict:
        return _as_dict(self._call(f"poll job {job_id}", lambda: self._openai.fine_tuning.jobs.retrieve(job_id)))

    def events(self, job_id: str) -> list[dict]:
        page = self._call(f"events of job {job_id}", lambda: self._openai.fine_tuning.jobs.list_events(job_id, limit=100))
        return [_as_dict(e) for e in page.data]


def _with_retries(what: Callable[[], Any], max_retries: int, sleep: Callable[[float], None], base_s: float) -> Any:
    attempt = 0
    while True:
        try:
            return what()
        except _Transient as exc:
            attempt += 1
            if attempt > max_retries:
                raise OpenAIJobError(f"{exc} (gave up after {attempt} attempts)") from None
            delay = min(MAX_POLL_INTERVAL_S, base_s * 2 ** (attempt - 1))
            sleep(max(delay, exc.retry_after_s or 0.0))


def run_finetuning_job(
    client: FineTuningClient,
    train_jsonl: bytes,
    val_jsonl: bytes | None,
    settings: OpenAIJobSettings,
    cache_dir: str | Path,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> dict:
    """The finished job's record: ``job_id``, ``fine_tuned_model``, ``status``, ``events``, ``key``,
    ``polls``, ``rate_limited_polls``. Raises OpenAIJobError when the job fails or polling times out."""
    key = job_key(train_jsonl, val_jsonl, settings)
    state_path = job_state_path(cache_dir, key)
    state = read_json(state_path) if state_path.is_file() else None
    if state is not None and state.get("status") in ("failed", "cancelled"):
        raise OpenAIJobError(
            f"fine-tuning job {state['job_id']} for these data and params already {state['status']}: "
            f"{state.get('error') or 'no error message'}. Delete {state_path} to start a new job"
        )
    if state is not None and state.get("status") == "succeeded" and state.get("fine_tuned_model"):
        log.info("fine-tuning job %s already succeeded: %s (from %s; nothing sent)", state["job_id"],
                 state["fine_tuned_model"], state_path)
        return {**state, "polls": 0, "rate_limited_polls": 0}
    if state is None:
        base_s = min(settings.poll_interval_s, 5.0)
        train_id = _with_retries(lambda: client.upload("pie_train.jsonl", train_jsonl), settings.max_retries, sleep, base_s)
        val_id = (_with_retries(lambda: client.upload("pie_val.jsonl", val_jsonl), settings.max_retries, sleep, base_s)
                  if val_jsonl else None)
        job = _with_retries(lambda: client.create(settings, train_id, val_id), settings.max_retries, sleep, base_s)
        state = {"key": key, "job_id": job["id"], "model": settings.model, "training_file": train_id,
                 "validation_file": val_id, "status": job.get("status"), "created_at": job.get("created_at")}
        write_json(state_path, state)  # before polling: a rerun resumes this job, never starts another
        log.info("created fine-tuning job %s (state in %s)", job["id"], state_path)
    else:
        log.info("resuming fine-tuning job %s from %s (no new upload or job)", state["job_id"], state_path)
        job = {"id": state["job_id"], "status": state.get("status")}
    job_id = state["job_id"]
    started = clock()
    interval = settings.poll_interval_s
    polls = rate_limited = 0
    while job.get("status") not in TERMINAL:
        if clock() - started > settings.poll_timeout_s:
            raise OpenAIJobError(
                f"fine-tuning job {job_id} still {job.get('status')!r} after finetune.poll_timeout_s "
                f"{settings.poll_timeout_s:g} s; rerun the stage to keep waiting (it resumes the same job)"
            )
        sleep(interval)
        polls += 1
        try:
            job = client.retrieve(job_id)
            interval = min(MAX_POLL_INTERVAL_S, interval * 2)
        except _Transient as exc:
            rate_limited += 1
            interval = min(MAX_POLL_INTERVAL_S, max(interval * 2, exc.retry_after_s or 0.0))
            log.warning("%s; next poll in %.0f s", exc, interval)
    events = _with_retries(lambda: client.events(job_id), settings.max_retries, sleep, 1.0)
    error = job.get("error") or {}
    state.update({
        "status": job["status"],
        "fine_tuned_model": job.get("fine_tuned_model"),
        "finished_at": job.get("finished_at"),
        "trained_tokens": job.get("trained_tokens"),
        "error": error.get("message") if isinstance(error, dict) else str(error),
        "events": sorted(events, key=lambda e: (e.get("created_at") or 0, e.get("id") or "")),
    })
    write_json(state_path, state)
    if job["status"] != "succeeded":
        raise OpenAIJobError(
            f"fine-tuning job {job_id} {job['status']}: {state['error'] or 'no error message'} "
            f"(events in {state_path})"
        )
    if not state["fine_tuned_model"]:
        raise OpenAIJobError(f"fine-tuning job {job_id} succeeded without a fine_tuned_model id")
    return {**state, "polls": polls, "rate_limited_polls": rate_limited}
