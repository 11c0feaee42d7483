"""The leftover check of tests/conftest.py fails each kind of leak, and only the test that leaked.

It runs a small session of its own (a copy of the conftest in a temporary git checkout) whose
tests each leave one thing behind, next to a clean test, and reads the verdicts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

LEAKY_TESTS = '''
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

KEEP = []


@pytest.fixture(scope="module")
def helper():
    """A longer-lived process that keeps starting short children, as a cluster's nanny does."""
    process = subprocess.Popen(["sh", "-c", "while :; do sleep 0.05; done"])
    yield process
    process.kill()
    process.wait()


def test_clean(tmp_path):
    (tmp_path / "scratch.txt").write_text("tmp_path is the test's own")
    subprocess.run(["true"], check=True)


def test_a_helper_s_children_are_the_helper_s(helper):
    time.sleep(0.3)  # the helper started new processes meanwhile


def test_leaves_a_process():
    KEEP.append(subprocess.Popen(["sleep", "60"]))


def test_leaves_a_listening_port():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    KEEP.append(server)


def test_leaves_a_temp_dir():
    tempfile.mkdtemp(prefix="perfrepro-leak-")


def test_leaves_dask_s_scratch_space():
    os.mkdir(os.path.join(tempfile.gettempdir(), "dask-scratch-space"))


def test_changes_a_tracked_file():
    Path(__file__).with_name("tracked.txt").write_text("changed")


def test_adds_a_file_to_the_checkout():
    Path(__file__).with_name("new.txt").write_text("new")
'''


def test_each_kind_of_leftover_fails_the_test_that_left_it(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / "tests").mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("conftest.py"), checkout / "tests" / "conftest.py")
    (checkout / "tests" / "test_leaks.py").write_text(LEAKY_TESTS)
    (checkout / "tests" / "tracked.txt").write_text("original")
    for command in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(checkout), *command], check=True, capture_output=True)
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rA", "tests"],
                          cwd=checkout, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "10000",  # untruncated summary
                               "PERFREPRO_TEST_SETTLE_S": "0.2"})
    report = done.stdout
    assert done.returncode == 1, report
    assert "PASSED tests/test_leaks.py::test_clean" in report, report
    assert "PASSED tests/test_leaks.py::test_a_helper_s_children_are_the_helper_s" in report, report
    assert "ERROR tests/test_leaks.py::test_a_helper_s_children_are_the_helper_s" not in report, report
    expected = {
        "test_leaves_a_process": "processes: ['pid",
        "test_leaves_a_listening_port": "listening ports: ['127.0.0.1:",
        "test_leaves_a_temp_dir": "temp dirs: ['perfrepro-leak-",
        "test_leaves_dask_s_scratch_space": "temp dirs: ['dask-scratch-space']",
        "test_changes_a_tracked_file": "changed repository files: ['tests/tracked.txt']",
        "test_adds_a_file_to_the_checkout": "changed repository files: ['tests/new.txt (new)']",
    }
    for test, message in expected.items():
        line = next((line for line in report.splitlines() if line.startswith(f"ERROR tests/test_leaks.py::{test}")), "")
        assert message in line, (test, report)
    # the port is still open at the session's end: reported once, by the test that opened it
    assert "the test session left behind" not in report, report
