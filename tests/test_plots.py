"""DVC's plots page with the project's template works offline, and `perfrepro plots` draws every
plot to SVG/PNG: real DVC in a temp git repo, real vl-convert, tiny hand-made plot data."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # make test-fast leaves this module out

ROOT = Path(__file__).resolve().parents[1]
DVC = str(Path(sys.executable).parent / "dvc")
MODELS = ["base all-MiniLM-L6-v2", "adapter_infonce", "adapter_5_negatives"]
LIVE, REFERENCE = "rag3_and_smollm2-135m-instruct", "leetcodedataset-response (reference)"

DVC_YAML = """plots:
  - metrics/retrieval_hit_at_k.json:
      template: hit_at_k
      title: Hit@k against k per model
      x: k
      y: hit
  - metrics/net_plot.json:
      template: net_ratios
      title: Per-task NET
      x: task_id
      y: NET
"""


def hit_rows(shift: float = 0.0) -> list[dict]:
    rows = []
    for i, model in enumerate(MODELS):
        for protocol in (["heldout", "study"] if i == 0 else ["heldout"]):
            rows += [{"model": model, "variant": model, "protocol": protocol, "k": k, "hit": min(1.0, 0.2 * i + 0.1 * j + shift)}
                     for j, k in enumerate((1, 3, 5, 10))]
    rows += [{"model": "adapter_infonce [study protocol]", "variant": "adapter_infonce", "protocol": "study",
              "k": k, "hit": 0.9} for k in (1, 3, 5, 10)]
    return rows


def net_rows() -> list[dict]:
    """The live model passed nothing (NET null everywhere); the reference row has three tasks."""
    live = [{"task_id": f"t{i}", "status": "crash", "NET": None, "NMU": None, "NTMU": None, "row": LIVE,
             "row_NET": None, "row_NET_lo": None, "row_NET_hi": None, "row_pass1": 0.0} for i in range(3)]
    ref = [{"task_id": f"t{i}", "status": "ok", "NET": net, "NMU": 1.0, "NTMU": net, "row": REFERENCE,
            "row_NET": 1.1, "row_NET_lo": 0.9, "row_NET_hi": 1.4, "row_pass1": 100.0} for i, net in enumerate((0.8, 1.1, 1.4))]
    return live + ref


def run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{cmd}: {proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    root = tmp_path_factory.mktemp("plots_repo")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run(["git", "init", "-q"], root, env)
    run([DVC, "init", "-q"], root, env)
    shutil.copytree(ROOT / ".dvc" / "plots", root / ".dvc" / "plots", dirs_exist_ok=True)
    shutil.copytree(ROOT / ".dvc" / "html", root / ".dvc" / "html")
    shutil.copy(ROOT / ".dvc" / "config", root / ".dvc" / "config")  # the committed plots.html_template
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "metrics").mkdir()
    (root / "metrics" / "retrieval_hit_at_k.json").write_text(json.dumps(hit_rows()))
    (root / "metrics" / "net_plot.json").write_text(json.dumps({"net_plot": net_rows()}))
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "plots"], root, env)
    return root, env


def test_project_config_points_dvc_at_the_offline_page():
    config = (ROOT / ".dvc" / "config").read_text()
    assert re.search(r"html_template\s*=\s*html/plots.html", config)
    page = (ROOT / ".dvc" / "html" / "plots.html").read_text(encoding="utf-8")
    assert "{plot_divs}" in page and "{scripts}" not in page  # no {scripts}: DVC's CDN tags have nowhere to go


def test_dvc_plots_show_writes_an_offline_page(repo):
    root, env = repo
    run([DVC, "plots", "show", "-o", "out"], root, env)
    html = (root / "out" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]+src\s*=\s*[\"']?https?://", html, re.I), "a script is loaded from the network"
    assert "cdn.jsdelivr" not in html
    assert '<meta charset="utf-8">' in html
    for name, version in (("vega", "6.4.0"), ("vega-lite", "6.4.3"), ("vega-embed", "7.3.0")):
        assert f"/* {name} {version} (BSD-3-Clause)" in html  # inlined build, named in PROVENANCE.md
    assert len(html) > 500_000  # the three minified builds themselves, not just their banners
    assert "vegaEmbed('#" in html and "adapter_infonce" in html and REFERENCE in html


def test_perfrepro_plots_writes_svg_and_png_with_the_names(repo, tmp_path):
    root, env = repo
    run([sys.executable, "-m", "perfrepro", "plots", "-C", str(root), "-o", str(tmp_path)], root, env)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["net_plot.png", "net_plot.svg", "retrieval_hit_at_k.png", "retrieval_hit_at_k.svg"]
    for png in tmp_path.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    hit_svg = (tmp_path / "retrieval_hit_at_k.svg").read_text(encoding="utf-8")
    texts = set(re.findall(r"<text[^>]*>([^<]*)</text>", hit_svg))
    assert set(MODELS) <= texts  # the drawn legend names every model in full
    assert "adapter_infonce [study protocol]" not in texts  # one name per model, the panel says the protocol
    assert any(t.startswith("heldout") for t in texts) and any(t.startswith("study protocol") for t in texts)
    net_svg = (tmp_path / "net_plot.svg").read_text(encoding="utf-8")
    assert REFERENCE in net_svg and LIVE in net_svg
    assert "NET n/a: no completion passed" in net_svg  # the live row says why it has no points
    assert "NET 1.100 [0.900, 1.400]" in net_svg  # the reference row's interval, as written by report


def test_perfrepro_plots_diff_colours_each_revision(repo, tmp_path):
    root, env = repo
    (root / "metrics" / "net_plot.json").write_text(json.dumps({"net_plot": [
        {**row, "NET": row["NET"] * 2} if row["NET"] else row for row in net_rows()]}))
    try:
        run([sys.executable, "-m", "perfrepro", "plots", "HEAD", "workspace", "-C", str(root), "-o", str(tmp_path),
             "--format", "svg"], root, env)
    finally:
        run(["git", "checkout", "-q", "--", "metrics/net_plot.json"], root, env)
    svg = (tmp_path / "net_plot.svg").read_text(encoding="utf-8")
    fills = set(re.findall(r'<path[^>]*aria-roledescription="point"[^>]*fill="(#[0-9a-f]{6})"', svg))
    fills |= set(re.findall(r'fill="(#[0-9a-f]{6})"[^>]*aria-roledescription="point"', svg))
    assert "HEAD" in svg and "workspace" in svg
    assert len(fills) >= 2, f"both revisions drawn in one colour: {fills}"
