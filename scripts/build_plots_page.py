"""Build .dvc/html/plots.html: DVC's plots page with vega, vega-lite and vega-embed inlined.

    cd /tmp/x && npm pack vega@6 vega-lite@6 vega-embed@7
    python scripts/build_plots_page.py /tmp/x/vega-6.*.tgz /tmp/x/vega-lite-6.*.tgz /tmp/x/vega-embed-7.*.tgz

`dvc plots show` / `dvc plots diff` fill `{plot_divs}` (.dvc/config: plots.html_template). The page
has no `{scripts}` placeholder, so DVC's CDN <script> tags are never written: the page works
offline. Versions, licenses and sha256 of what was inlined go to .dvc/html/PROVENANCE.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

BUILDS = {"vega": "package/build/vega.min.js", "vega-lite": "package/build/vega-lite.min.js",
          "vega-embed": "package/build/vega-embed.min.js"}

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh_tag}
<title>perfrepro plots</title>
<style>
  body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px; color: #222; }
  h1 { font-size: 20px; font-weight: 600; margin: 0 0 4px 0; }
  p.note { color: #555; font-size: 13px; margin: 0 0 16px 0; }
  body > div[id], table { margin-bottom: 32px; }
  table { border-spacing: 15px; }
  .vega-embed { display: block; }
</style>
<!-- Inlined so the page works offline; versions and licenses: .dvc/html/PROVENANCE.md -->
__SCRIPTS__
<script>
  // DVC calls vegaEmbed(id, spec) with no options: default to SVG (crisp text) and an export-only
  // action menu (no "Open in Vega Editor", which would go online).
  (function () {
    var embed = window.vegaEmbed;
    window.vegaEmbed = function (el, spec, opts) {
      return embed(el, spec, Object.assign({renderer: "svg", actions: {export: true, source: true, compiled: false, editor: false}}, opts || {}));
    };
  })();
</script>
</head>
<body>
<h1>perfrepro plots</h1>
<p class="note">Rendered offline from the project's templates (.dvc/plots/*.json). Static SVG/PNG copies: <code>perfrepro plots</code>.</p>
{plot_divs}
</body>
</html>
"""


def read_build(tgz: Path, name: str) -> tuple[str, dict, str, str]:
    with tarfile.open(tgz) as tar:
        meta = json.load(tar.extractfile("package/package.json"))
        if meta["name"] != name:
            raise SystemExit(f"{tgz}: is npm package {meta['name']!r}, expected {name!r}")
        js = tar.extractfile(BUILDS[name]).read().decode("utf-8")
        license_text = tar.extractfile("package/LICENSE").read().decode("utf-8")
    js = re.sub(r"\n?//# sourceMappingURL=\S+\s*$", "", js)  # no .map fetch from a file:// page
    for bad in ("</script", "{plot_divs}", "{scripts}", "{refresh_tag}"):
        if bad in js:
            raise SystemExit(f"{tgz}: {BUILDS[name]} contains {bad!r}; it cannot be inlined into DVC's template")
    return js, meta, license_text, hashlib.sha256(tgz.read_bytes()).hexdigest()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tarballs", nargs=3, type=Path, help="the npm pack tarballs of vega, vega-lite, vega-embed")
    parser.add_argument("--out", type=Path, default=Path(".dvc/html/plots.html"))
    args = parser.parse_args(argv)
    by_name = {}
    for tgz in args.tarballs:
        with tarfile.open(tgz) as tar:
            by_name[json.load(tar.extractfile("package/package.json"))["name"]] = tgz
    missing = set(BUILDS) - set(by_name)
    if missing:
        raise SystemExit(f"missing tarball(s) for {', '.join(sorted(missing))}")
    scripts, rows, licenses = [], [], []
    for name in BUILDS:  # order matters: vega-embed needs the globals vega and vegaLite
        js, meta, license_text, sha = read_build(by_name[name], name)
        scripts.append(f"<script>/* {name} {meta['version']} ({meta['license']}), {BUILDS[name]} */\n{js}\n</script>")
        rows.append(f"| {name} | {meta['version']} | {meta['license']} | `{BUILDS[name]}` | `{by_name[name].name}` sha256 `{sha}` |")
        licenses.append(f"### {name} {meta['version']}\n\n```\n{license_text.strip()}\n```\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(PAGE.replace("__SCRIPTS__", "\n".join(scripts)), encoding="utf-8")
    (args.out.parent / "PROVENANCE.md").write_text(
        "# What .dvc/html/plots.html inlines\n\n"
        "`plots.html` is DVC's plots page for this project (`.dvc/config`: `plots.html_template`), built by\n"
        "`scripts/build_plots_page.py` from the npm tarballs below (`npm pack vega@6 vega-lite@6 vega-embed@7`).\n"
        "It has no `{scripts}` placeholder, so DVC never adds its CDN `<script>` tags; the page needs no network.\n\n"
        "| package | version | license | file inlined | tarball |\n|---|---|---|---|---|\n" + "\n".join(rows) +
        "\n\nThe vega build bundles its own dependencies (d3 modules, ISC; others as listed in vega's "
        "package). Source maps are not inlined.\n\n## Licenses\n\n" + "\n".join(licenses), encoding="utf-8")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB) and {args.out.parent / 'PROVENANCE.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
