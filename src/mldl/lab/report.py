"""The lab's report: ``index.html`` (self-contained: every figure embedded), ``summary.md``,
``results.json`` and the figures as PNG files."""

from __future__ import annotations

import base64
import html
import io
import json
import math
import numbers
from collections import Counter
from pathlib import Path
from typing import Any

from .runner import Result

COLORS = {
    "supported": "#2e7d32",
    "not supported": "#c62828",
    "inconclusive": "#ef6c00",
    "error": "#6a1b9a",
}


def png_bytes(figure: Any) -> bytes:
    """A matplotlib figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return buffer.getvalue()


def plain(value: Any) -> Any:
    """JSON-friendly: tensors and numpy values become numbers or lists; NaN and infinities
    become the strings "NaN", "inf", "-inf" (JSON has no such numbers)."""
    if hasattr(value, "tolist"):  # torch / numpy
        value = value.tolist()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return str(value)


def _fmt(value: Any) -> str:
    value = plain(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(_fmt(v) for v in value[:8])
        return f"[{shown}{', …' if len(value) > 8 else ''}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in list(value.items())[:8]) + "}"
    return str(value)


def _slug(claim_id: str) -> str:
    return claim_id.replace(".", "-")


def write(results: list[Result], out: Path, meta: dict[str, Any]) -> dict[str, Path]:
    """Write the report into ``out`` (created if needed); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    for old in fig_dir.glob("*.png"):
        old.unlink()
    figure_files: dict[str, list[str]] = {}
    for r in results:
        names = []
        for k, fig in enumerate(r.figures, start=1):
            name = f"{_slug(r.claim.id)}-{k}.png"
            (fig_dir / name).write_bytes(fig.figure)
            names.append(name)
        figure_files[r.claim.id] = names
    paths = {
        "html": out / "index.html",
        "markdown": out / "summary.md",
        "json": out / "results.json",
    }
    paths["json"].write_text(json.dumps(_json(results, meta, figure_files), indent=2) + "\n")
    paths["markdown"].write_text(_markdown(results, meta, figure_files))
    paths["html"].write_text(_html(results, meta))
    return paths


def _json(results: list[Result], meta: dict[str, Any], figures: dict[str, list[str]]) -> dict:
    return {
        "meta": plain(meta),
        "counts": dict(Counter(r.verdict for r in results)),
        "claims": [
            {
                "id": r.claim.id,
                "section": r.claim.section,
                "statement": r.claim.statement,
                "method": r.claim.method,
                "criterion": r.claim.criterion,
                "verdict": r.verdict,
                "reason": r.reason,
                "numbers": plain(r.numbers),
                "table": plain(r.table),
                "seconds": round(r.seconds, 3),
                "figures": [f"figures/{n}" for n in figures[r.claim.id]],
                "error": r.error,
            }
            for r in results
        ],
    }


def _markdown(results: list[Result], meta: dict[str, Any], figures: dict[str, list[str]]) -> str:
    lines = [
        "# mldl lab: the notes' claims, measured",
        "",
        f"Profile `{meta['profile']}`, seed {meta['seed']}, device `{meta['device']}`, "
        f"{meta['date']}; {len(results)} claims in {meta['seconds']:.0f} s.",
        "",
        "| claim | section | verdict | why |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        why = r.reason.replace("|", "\\|").replace("\n", " ")
        lines.append(f"| `{r.claim.id}` | {r.claim.section} | **{r.verdict}** | {why} |")
    lines += ["", "## Claims", ""]
    for r in results:
        lines += [
            f"### `{r.claim.id}`: {r.verdict}",
            "",
            f"> {r.claim.statement}",
            "",
            f"- Method: {r.claim.method}",
            f"- Criterion: {r.claim.criterion}",
            f"- Result: {r.reason}",
        ]
        lines += [
            f"- ![{r.claim.id} figure {k}](figures/{n})"
            for k, n in enumerate(figures[r.claim.id], start=1)
        ]
        lines.append("")
    return "\n".join(lines)


_CSS = """
body{
  font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
  margin:0;
  background:#f6f7f9;
  color:#1d2430;
}
header{background:#1d2430;color:#fff;padding:28px 40px}
header h1{margin:0 0 6px;font-size:26px}
header p{margin:0;color:#c9d1dc}
main{max-width:1100px;margin:0 auto;padding:24px 40px 60px}
.counts span{display:inline-block;margin-right:14px;font-weight:600}
table{border-collapse:collapse;width:100%;margin:10px 0;background:#fff}
th,td{
  border-bottom:1px solid #e3e6ea;
  padding:6px 10px;
  text-align:left;
  vertical-align:top;
  font-size:14px;
}
th{background:#eef1f4}
.badge{
  color:#fff;
  border-radius:10px;
  padding:2px 10px;
  font-size:13px;
  font-weight:600;
  white-space:nowrap;
}
section.claim{
  background:#fff;
  border-radius:8px;
  box-shadow:0 1px 3px rgba(0,0,0,.08);
  padding:20px 26px;
  margin:22px 0;
}
section.claim h2{margin:0 0 4px;font-size:19px}
.section{color:#5b6675;font-size:13px;margin-bottom:10px}
blockquote{
  margin:10px 0;
  padding:8px 14px;
  border-left:4px solid #c9d1dc;
  background:#f6f7f9;
  font-style:italic;
}
dl{display:grid;grid-template-columns:110px 1fr;gap:4px 12px;margin:10px 0}
dt{font-weight:600;color:#5b6675}
dd{margin:0}
figure{margin:14px 0;text-align:center}
figure img{max-width:100%;height:auto}
figcaption{color:#5b6675;font-size:13px}
details{margin-top:8px}
pre{white-space:pre-wrap;font-size:12px;background:#f6f7f9;padding:10px}
a{color:#1f5fa8;text-decoration:none}
"""


def _badge(verdict: str) -> str:
    color = COLORS.get(verdict, "#555")
    return f'<span class="badge" style="background:{color}">{html.escape(verdict)}</span>'


def _html(results: list[Result], meta: dict[str, Any]) -> str:
    e = html.escape
    counts = Counter(r.verdict for r in results)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>mldl lab report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>The notes' claims, measured</h1>",
        f"<p>mldl {e(str(meta['version']))} · profile <b>{e(meta['profile'])}</b> · seed "
        f"{meta['seed']} · {e(str(meta['device']))} · {e(meta['date'])} · {len(results)} claims "
        f"in {meta['seconds']:.0f} s</p></header><main>",
        '<p class="counts">'
        + "".join(
            f'<span style="color:{COLORS[v]}">{counts.get(v, 0)} {e(v)}</span>' for v in (*COLORS,)
        )
        + "</p>",
        "<table><tr><th>claim</th><th>section</th><th>verdict</th><th>why</th></tr>",
    ]
    for r in results:
        parts.append(
            f'<tr><td><a href="#{_slug(r.claim.id)}">{e(r.claim.id)}</a></td>'
            f"<td>{e(r.claim.section)}</td><td>{_badge(r.verdict)}</td><td>{e(r.reason)}</td></tr>"
        )
    parts.append("</table>")
    for r in results:
        parts.append(_html_claim(r))
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _html_claim(r: Result) -> str:
    e = html.escape
    c = r.claim
    parts = [
        f'<section class="claim" id="{_slug(c.id)}">',
        f"<h2>{e(c.id)} {_badge(r.verdict)}</h2>",
        f'<div class="section">{e(c.section)} · {r.seconds:.1f} s</div>',
        f"<blockquote>{e(c.statement)}</blockquote>",
        "<dl>",
        f"<dt>Method</dt><dd>{e(c.method)}</dd>",
        f"<dt>Criterion</dt><dd>{e(c.criterion)}</dd>",
        f"<dt>Result</dt><dd>{e(r.reason)}</dd>",
        "</dl>",
    ]
    for fig in r.figures:
        data = base64.b64encode(fig.figure).decode("ascii")
        parts.append(
            f'<figure><img alt="{e(fig.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{e(fig.caption)}</figcaption></figure>"
        )
    if r.table:
        columns = list(r.table[0])
        parts.append("<table><tr>" + "".join(f"<th>{e(str(k))}</th>" for k in columns) + "</tr>")
        for row in r.table:
            cells = "".join(f"<td>{e(_fmt(row.get(k)))}</td>" for k in columns)
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</table>")
    if r.numbers:
        rows = "".join(
            f"<tr><td>{e(str(k))}</td><td>{e(_fmt(v))}</td></tr>" for k, v in r.numbers.items()
        )
        parts.append(f"<details><summary>Measured numbers</summary><table>{rows}</table></details>")
    if r.error:
        parts.append(f"<details open><summary>Error</summary><pre>{e(r.error)}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)
