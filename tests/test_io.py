"""perfrepro.io.atomic_outputs (a stage's outputs all or nothing) and perfrepro.logs (one prefix
style for every stage)."""

from __future__ import annotations

import logging
import os

import pytest

from perfrepro.io import atomic_outputs, write_json
from perfrepro.logs import StageFormatter, setup_logging


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


def test_outputs_appear_only_when_the_block_succeeds(tmp_path):
    table, folder = tmp_path / "metrics" / "table.md", tmp_path / "data" / "timings"
    with atomic_outputs(table, folder) as (table_tmp, folder_tmp):
        assert table_tmp.name == "table.md" and folder_tmp.name == "timings"
        assert table_tmp.parent.parent == table.parent  # beside the output: same filesystem
        table_tmp.write_text("| a |\n")
        write_json(folder_tmp / "measurements.json", {"n": 1})
        assert not table.exists() and not folder.exists()  # nothing visible until the end
    assert table.read_text() == "| a |\n"
    assert sorted(p.name for p in folder.iterdir()) == ["measurements.json"]
    assert leftovers(table.parent) == [] and leftovers(folder.parent) == []


def test_a_failing_block_leaves_the_old_outputs_and_no_temporary_files(tmp_path):
    table, folder = tmp_path / "table.md", tmp_path / "timings"
    table.write_text("old\n")
    folder.mkdir()
    (folder / "old.json").write_text("{}")
    with pytest.raises(RuntimeError, match="measurement crashed"):
        with atomic_outputs(table, folder) as (table_tmp, folder_tmp):
            table_tmp.write_text("new\n")
            folder_tmp.mkdir()
            (folder_tmp / "half.json").write_text("{")
            raise RuntimeError("measurement crashed")
    assert table.read_text() == "old\n"
    assert [p.name for p in folder.iterdir()] == ["old.json"]
    assert leftovers(tmp_path) == []


def test_system_exit_inside_the_block_writes_nothing(tmp_path):
    out = tmp_path / "tasks"
    with pytest.raises(SystemExit):
        with atomic_outputs(out) as (tmp,):
            tmp.mkdir()
            raise SystemExit(1)
    assert not out.exists() and leftovers(tmp_path) == []


def test_success_replaces_a_directory_with_stale_files_and_a_file_by_a_directory(tmp_path):
    folder, clash = tmp_path / "tasks", tmp_path / "index"
    folder.mkdir()
    (folder / "stale.pkl").write_bytes(b"x")
    clash.write_text("a file where a folder goes")
    with atomic_outputs(folder, clash) as (folder_tmp, clash_tmp):
        folder_tmp.mkdir()
        (folder_tmp / "fresh.pkl").write_bytes(b"y")
        clash_tmp.mkdir()
        (clash_tmp / "db").write_text("z")
    assert [p.name for p in folder.iterdir()] == ["fresh.pkl"]
    assert clash.is_dir() and (clash / "db").read_text() == "z"
    assert leftovers(tmp_path) == []


def test_an_output_the_block_did_not_write_is_left_alone(tmp_path):
    kept, written = tmp_path / "kept.json", tmp_path / "written.json"
    kept.write_text("{}")
    with atomic_outputs(kept, written) as (_, written_tmp):
        written_tmp.write_text("[]")
    assert kept.read_text() == "{}" and written.read_text() == "[]"


def test_one_prefix_style_for_every_logger():
    formatter = StageFormatter("generate")

    def line(name, level, message):
        return formatter.format(logging.LogRecord(name, level, __file__, 1, message, None, None))

    assert line("generate", logging.INFO, "10 completions") == "generate: 10 completions"
    assert line("perfrepro.generation.client", logging.WARNING, "slow") == "generate: warning: slow"
    assert line("perfrepro.timing", logging.ERROR, "no valgrind") == "generate: error: no valgrind"


def test_setup_logging_quiets_model_loading_and_replaces_its_own_handler(monkeypatch):
    monkeypatch.delenv("HF_HUB_DISABLE_PROGRESS_BARS", raising=False)  # restored after the test
    root = logging.getLogger()
    before = list(root.handlers)
    try:
        setup_logging("embed")
        setup_logging("embed")
        ours = [h for h in root.handlers if isinstance(h.formatter, StageFormatter)]
        assert len(ours) == 1
        for name in ("sentence_transformers", "transformers", "httpx", "httpx2", "chromadb"):
            assert not logging.getLogger(name).isEnabledFor(logging.INFO)
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1"  # no "Loading weights" bar
    finally:
        for handler in [h for h in root.handlers if h not in before]:
            root.removeHandler(handler)
