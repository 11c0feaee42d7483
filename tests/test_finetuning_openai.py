"""OpenAI fine-tuning jobs against a fake /files + /fine_tuning/jobs server: upload, create, poll
with backoff through 429s, a failing job, and no second job on a rerun."""

from __future__ import annotations

import dataclasses
import json

import pytest

from perfrepro.finetuning.openai_jobs import (
    FineTuningClient,
    OpenAIJobError,
    OpenAIJobSettings,
    job_state_path,
    run_finetuning_job,
)
from tests.fake_openai_server import FakeFineTuning, Reply

KEY = "sk-test-secret-0123456789"
TRAIN = b'{"messages": [{"role": "user", "content": "slow"}, {"role": "assistant", "content": "fast"}]}\n'
VAL = b'{"messages": [{"role": "user", "content": "slow2"}, {"role": "assistant", "content": "fast2"}]}\n'
SETTINGS = OpenAIJobSettings(model="gpt-4o-mini-2024-07-18", n_epochs=2, seed=7, poll_interval_s=1.0,
                             poll_timeout_s=1000.0)


class Sleeps:
    """Records the waits instead of waiting; the clock advances by them."""

    def __init__(self):
        self.waits: list[float] = []
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def run(fake: FakeFineTuning, cache, sleeps: Sleeps, settings: OpenAIJobSettings = SETTINGS, train: bytes = TRAIN):
    client = FineTuningClient(KEY, fake.base_url, timeout_s=10)
    return run_finetuning_job(client, train, VAL, settings, cache, sleep=sleeps.sleep, clock=sleeps.clock)


def test_job_uploads_chat_jsonl_creates_one_job_and_records_the_model(tmp_path):
    sleeps = Sleeps()
    with FakeFineTuning(statuses=("queued", "running", "succeeded")) as fake:
        result = run(fake, tmp_path, sleeps)
    assert [u["filename"] for u in fake.uploads] == ["pie_train.jsonl", "pie_val.jsonl"]
    assert all(u["purpose"] == "fine-tune" for u in fake.uploads)
    assert TRAIN in fake.uploads[0]["bytes"] and VAL in fake.uploads[1]["bytes"]
    assert len(fake.created) == 1
    body = fake.created[0]
    assert body["model"] == "gpt-4o-mini-2024-07-18" and body["training_file"] == "file-0"
    assert body["validation_file"] == "file-1" and body["seed"] == 7 and body["hyperparameters"] == {"n_epochs": 2}
    assert result["fine_tuned_model"] == "ft:gpt-4o-mini-2024-07-18:fake::abc123"
    assert result["status"] == "succeeded" and result["polls"] == 3
    assert [e["message"] for e in result["events"]][0] == "Job started"
    assert sleeps.waits == [1.0, 2.0, 4.0]  # the wait doubles between polls
    saved = json.loads(job_state_path(tmp_path, result["key"]).read_text())
    assert saved["fine_tuned_model"] == result["fine_tuned_model"] and len(saved["events"]) == 3
    assert KEY not in job_state_path(tmp_path, result["key"]).read_text()
    assert all(a == f"Bearer {KEY}" for a in fake.authorization)


def test_rerun_with_same_data_and_params_starts_no_second_job(tmp_path):
    with FakeFineTuning() as fake:
        first = run(fake, tmp_path, Sleeps())
        second = run(fake, tmp_path, Sleeps())
        assert len(fake.created) == 1 and len(fake.uploads) == 2
        assert second["fine_tuned_model"] == first["fine_tuned_model"] and second["job_id"] == first["job_id"]
        # other data: another key, another job
        run(fake, tmp_path, Sleeps(), train=TRAIN + TRAIN)
        assert len(fake.created) == 2


def test_interrupted_run_resumes_the_created_job(tmp_path):
    """A job created but never seen finished (polling timed out) is polled again on the rerun."""
    short = OpenAIJobSettings(model=SETTINGS.model, n_epochs=None, seed=7, poll_interval_s=1.0, poll_timeout_s=1.5)
    with FakeFineTuning(statuses=("running", "running", "running", "succeeded")) as fake:
        with pytest.raises(OpenAIJobError, match="still 'running'.*resumes the same job"):
            run(fake, tmp_path, Sleeps(), settings=short)
        result = run(fake, tmp_path, Sleeps(), settings=dataclasses.replace(short, poll_timeout_s=100.0))
    assert len(fake.created) == 1 and result["status"] == "succeeded"
    assert "hyperparameters" not in fake.created[0]  # n_epochs null: OpenAI's default


def test_polls_answered_429_are_waited_out_with_retry_after(tmp_path):
    sleeps = Sleeps()
    limited = {0: Reply(status=429, headers={"Retry-After": "7"}), 1: Reply(status=429), 3: Reply(status=503)}
    with FakeFineTuning(statuses=("running", "succeeded"), poll_reply=limited.get) as fake:
        result = run(fake, tmp_path, sleeps)
    assert result["status"] == "succeeded" and result["rate_limited_polls"] == 3
    assert fake.polls == 5
    assert sleeps.waits[1] >= 7.0  # Retry-After honoured
    assert sleeps.waits == sorted(sleeps.waits)  # backing off, never hammering


def test_failed_job_is_an_error_with_its_message_and_is_not_restarted(tmp_path):
    error = {"code": "invalid_training_file", "message": "Training file has 1 example; at least 10 required",
             "param": "training_file"}
    with FakeFineTuning(statuses=("running", "failed"), final_error=error) as fake:
        with pytest.raises(OpenAIJobError, match="failed: Training file has 1 example"):
            run(fake, tmp_path, Sleeps())
        with pytest.raises(OpenAIJobError, match="already failed.*Delete"):
            run(fake, tmp_path, Sleeps())
    assert len(fake.created) == 1 and fake.event_requests == 1


def test_missing_api_key_fails_before_any_upload(tmp_path, monkeypatch, caplog):
    """The finetune stage with backend openai and no key: exit 1, naming the variable; nothing uploaded."""
    import yaml

    from stages import finetune as stage

    params = yaml.safe_load(open("params.yaml", encoding="utf-8"))
    monkeypatch.delenv("PERFREPRO_TEST_NO_KEY", raising=False)
    with FakeFineTuning() as fake:
        params["llm"].update(api_key_env="PERFREPRO_TEST_NO_KEY", base_url=fake.base_url, cache_dir=str(tmp_path / "llm"))
        params["finetune"]["backend"] = "openai"
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
        code = stage.main(["--params", str(tmp_path / "params.yaml"), "--data", str(tmp_path / "no-data"),
                           "--self-play-pairs", str(tmp_path / "no-pairs.jsonl"), "--templates", str(tmp_path / "no-templates"),
                           "--out", str(tmp_path / "model"), "--plots", str(tmp_path / "loss.json"),
                           "--metrics", str(tmp_path / "m.json")])
    assert code == 1
    assert "PERFREPRO_TEST_NO_KEY" in caplog.text and "nothing was uploaded" in caplog.text
    assert fake.uploads == [] and fake.created == [] and not (tmp_path / "model").exists()
