"""Static pictures of the project's plots: SVG and PNG from filled Vega-Lite specs.

`perfrepro plots` asks DVC for the filled specs (`dvc plots show --json`, or `dvc plots diff REV...
--json`) and this module renders them with vl-convert (Vega in an embedded Deno runtime: no browser,
no network), so a pull request or a terminal-only machine can show the same charts as DVC's HTML page.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

log = logging.getLogger("plots")

FORMATS = ("svg", "png")
VEGA_LITE_VERSION = "6.4"  # the version .dvc/html/plots.html inlines (6.4.3): the same picture in both


class PlotsError(RuntimeError):
    pass


@dataclass(frozen=True)
class PlotSpec:
    """One DVC plot: its id (the data file or top-level plot name) and its filled Vega-Lite spec."""

    name: str
    spec: Mapping[str, Any]


def specs_from_dvc_json(payload: Mapping[str, Any]) -> tuple[list[PlotSpec], list[str]]:
    """(vega plots, problems) from `dvc plots show --json` / `dvc plots diff --json` output.
    Image plots are left out (they already are pictures); DVC's load errors become problems."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("data", {}), Mapping):
        raise PlotsError("dvc plots --json: expected an object with a 'data' object (DVC 3.x output)")
    specs, problems = [], []
    for error in payload.get("errors") or []:
        problems.append(f"{error.get('name', '?')} at {error.get('rev', '?')}: {error.get('type', 'error')} "
                        f"({error.get('msg', '').strip()})")
    for name, entries in (payload.get("data") or {}).items():
        for entry in entries or []:
            if entry.get("type") != "vega":
                continue
            content = entry.get("content")
            if not isinstance(content, Mapping) or not content:
                problems.append(f"{name}: no data to draw")
                continue
            specs.append(PlotSpec(name, content))
    return specs, problems


def file_stem(name: str) -> str:
    """`metrics/retrieval_hit_at_k.json` -> `retrieval_hit_at_k` (unique enough: plot ids are paths)."""
    stem = re.sub(r"\.(json|csv|tsv|ya?ml)$", "", name.split("/", 1)[-1] if name.startswith("metrics/") else name)
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("_") or "plot"


def render(specs: Sequence[PlotSpec], out_dir: Path, formats: Sequence[str] = FORMATS,
           scale: float = 2.0) -> list[Path]:
    """Write `<out_dir>/<stem>.<format>` for every spec; returns the paths written. PNG at `scale`
    times the spec's size (2: sharp on a high-density screen). SVG keeps text as text."""
    try:
        import vl_convert
    except ImportError:
        raise PlotsError("vl-convert-python is not installed: `.venv/bin/pip install vl-convert-python` "
                         "(it is in pyproject.toml's dependencies)") from None
    unknown = set(formats) - set(FORMATS)
    if unknown:
        raise PlotsError(f"unknown format(s) {', '.join(sorted(unknown))}: choose from {', '.join(FORMATS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for plot in specs:
        stem = file_stem(plot.name)
        spec = dict(plot.spec)
        try:
            for fmt in formats:
                path = out_dir / f"{stem}.{fmt}"
                # allowed_base_urls=[]: the data is inline; nothing may be fetched
                if fmt == "svg":
                    path.write_text(vl_convert.vegalite_to_svg(spec, vl_version=VEGA_LITE_VERSION,
                                                               allowed_base_urls=[]), encoding="utf-8")
                else:
                    path.write_bytes(vl_convert.vegalite_to_png(spec, vl_version=VEGA_LITE_VERSION, scale=scale,
                                                                allowed_base_urls=[]))
                written.append(path)
        except (ValueError, RuntimeError) as exc:
            raise PlotsError(f"{plot.name}: vl-convert could not render its spec ({exc}); check its template "
                             f"in .dvc/plots/") from None
        log.info("%s -> %s", plot.name, ", ".join(str(out_dir / f"{stem}.{fmt}") for fmt in formats))
    return written
