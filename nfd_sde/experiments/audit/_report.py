"""The audit's reports, drawn from the claims' records alone: DIR/report.html (figures inline as
base64 PNG) and DIR/report.md (figures as DIR/figures/<claim>.png). One section per claim: the
claim, what was measured and how, the rule, a figure, the fitted numbers with 95% intervals, the
verdict. Nothing here depends on the time of writing, so a resumed audit rewrites the sections
of cached claims byte for byte."""

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..common import write_text
from ._verdicts import png_base64

HEADERS = ("quantity", "value", "95% interval", "prediction")
STYLE = (
    "body{font-family:sans-serif;max-width:70em;margin:auto;padding:1em;line-height:1.4}"
    "table{border-collapse:collapse;margin:0.5em 0}td,th{border:1px solid #bbb;padding:0.2em "
    "0.5em;text-align:left}img{max-width:100%}.holds{color:#06632a}.fails{color:#a11}"
    ".inconclusive{color:#8a6d00}"
)


def write_reports(out: Path, records: Sequence[dict[str, Any]], claims, *, scale: str, data: str):
    """Write the figures, report.md and report.html; returns the HTML's path."""
    by_name = {c.name: c for c in claims}
    sections = []
    for record in records:
        claim = by_name[record["name"]]
        png = None
        if record.get("data") is not None:
            png = png_base64(claim.figure(record["data"]))
            write_text(out / "figures" / f"{claim.name}.png", base64.b64decode(png))
        table = claim.table(record["data"]) if record.get("data") is not None else []
        sections.append({"claim": claim, "record": record, "png": png, "table": table})
    intro = _intro(records, scale, data)
    numbers = {s["record"]["name"]: _numbers(s["table"]) for s in sections}
    intro["summary"] = [(name, outcome, numbers[name]) for name, outcome in intro["summary"]]
    write_text(out / "report.md", _markdown(intro, sections))
    return write_text(out / "report.html", _html(intro, sections))


def _intro(records, scale: str, data: str) -> dict[str, Any]:
    meta = next((r["meta"] for r in records if r.get("meta")), {})
    versions = meta.get("versions", {})
    device = meta.get("device", {})
    return {
        "scale": scale,
        "data": data,
        "wall": sum(r.get("wall_time_s", 0.0) for r in records),
        "device": f"{device.get('platform', '?')} ({device.get('kind', '?')})",
        "versions": ", ".join(f"{k} {v}" for k, v in sorted(versions.items())),
        "summary": [(r["name"], r["verdict"]["verdict"]) for r in records],
    }


def _numbers(table: list[list[str]]) -> list[str]:
    """The measured numbers of a claim's table, one `quantity: value [interval] (predicted X)`
    per row, for the summary table."""
    return [f"{quantity}: {value} {interval} (predicted {expected})"
            for quantity, value, interval, expected in table]  # fmt: skip


SIZES = ("widths", "depths", "width", "seeds", "modes", "particles", "limit_seeds", "groups",
         "steps", "depth_steps", "exponents", "log2_lrs", "data", "runs_diverged", "skipped")  # fmt: skip


def _measured(record: dict[str, Any]) -> str:
    """The sizes of a claim's measurement: the fields named in SIZES, wherever they sit in its
    data (in a `grid`, or per run, labelled by the run's block or activation)."""
    if record.get("data") is None:
        return "nothing (the measurement failed)"
    parts: list[str] = []
    _collect(record["data"], "", parts)
    return "; ".join(dict.fromkeys(parts))


def _collect(data, label: str, parts: list[str]) -> None:
    if isinstance(data, dict):
        label = data.get("block") or data.get("activation") or label
        for key, value in data.items():
            if key in SIZES and not isinstance(value, dict | bool) and value is not None:
                shown = ", ".join(f"{v}" for v in value) if isinstance(value, list) else value
                parts.append(f"{label + ': ' if label else ''}{key} = {shown}")
            elif isinstance(value, dict | list) and key in ("grid", "runs"):
                _collect(value, label, parts)
    elif isinstance(data, list):
        for item in data:
            _collect(item, label, parts)


def _markdown(intro: dict[str, Any], sections) -> str:
    lines = [
        "# Audit of the Neural Feature Dynamics claims",
        "",
        f"Scale `{intro['scale']}`, real data `{intro['data']}`; claims' wall time "
        f"{intro['wall']:.0f} s on {intro['device']}; {intro['versions']}.",
        "",
        "| claim | verdict | measured (95% interval) |",
        "|---|---|---|",
        *[
            f"| {name} | {outcome} | {'; '.join(numbers).replace('|', '/') or '-'} |"
            for name, outcome, numbers in intro["summary"]
        ],  # fmt: skip
    ]
    for s in sections:
        claim, record = s["claim"], s["record"]
        lines += ["", f"## {claim.title}", "", f"**Claim.** {claim.statement}", "",
                  f"**Measured.** {_measured(record)}; wall time {record['wall_time_s']:.0f} s.",
                  "", f"**Rule.** {claim.rule}", ""]  # fmt: skip
        if s["png"] is not None:
            lines += [f"![{claim.title}](figures/{claim.name}.png)", ""]
        if s["table"]:
            lines += ["| " + " | ".join(HEADERS) + " |", "|---|---|---|---|"]
            lines += [
                "| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in s["table"]
            ]
            lines.append("")
        v = record["verdict"]
        lines.append(f"**Verdict: {v['verdict']}.** {v['reason']}")
    return "\n".join(lines) + "\n"


def _html(intro: dict[str, Any], sections) -> str:
    e = html.escape
    summary = "".join(
        f'<tr><td><a href="#{e(name)}">{e(name)}</a></td>'
        f'<td class="{outcome.split()[0]}">{e(outcome)}</td>'
        f"<td>{'<br>'.join(e(n) for n in numbers) or '-'}</td></tr>"
        for name, outcome, numbers in intro["summary"]
    )
    body = [
        "<h1>Audit of the Neural Feature Dynamics claims</h1>",
        f"<p>Scale <code>{e(intro['scale'])}</code>, real data <code>{e(intro['data'])}</code>; "
        f"claims' wall time {intro['wall']:.0f} s on {e(intro['device'])}; "
        f"{e(intro['versions'])}.</p>",
        f"<table><tr><th>claim</th><th>verdict</th><th>measured (95% interval)</th></tr>"
        f"{summary}</table>",
    ]
    for s in sections:
        claim, record = s["claim"], s["record"]
        v = record["verdict"]
        body += [
            f'<section id="{e(claim.name)}">',
            f"<h2>{e(claim.title)}</h2>",
            f"<p><b>Claim.</b> {e(claim.statement)}</p>",
            f"<p><b>Measured.</b> {e(_measured(record))}; wall time "
            f"{record['wall_time_s']:.0f} s.</p>",
            f"<p><b>Rule.</b> {e(claim.rule)}</p>",
        ]
        if s["png"] is not None:
            body.append(f'<img alt="{e(claim.title)}" src="data:image/png;base64,{s["png"]}">')
        if s["table"]:
            head = "".join(f"<th>{e(h)}</th>" for h in HEADERS)
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in s["table"]
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        body += [
            f'<p class="{v["verdict"].split()[0]}"><b>Verdict: {e(v["verdict"])}.</b> '
            f"{e(v['reason'])}</p>",
            "</section>",
        ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>NFD audit ({e(intro['scale'])})</title><style>{STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
