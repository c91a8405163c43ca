"""What people read of a canary: the job summary (a table of the windows, a table of every metric of every
window with the samples on each side, the effect, the p-value or interval and the verdict; a Mermaid chart of
the median latencies), the report file and the step outputs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import gh
from ..fsutil import atomic_write_json
from .controller import ROLLED_BACK, Report


def _cell(v: Any, fmt: str = "{}") -> str:
    return "-" if v is None else fmt.format(v)


def _p(v: Any) -> str:
    return "-" if v is None else f"{v:.2g}"


def windows_table(report: Report) -> str:
    rows = [[r["step"] if r["step"] > 0 else "start", f"{r['weight']}%", r.get("window") or "-",
             _cell(r.get("seconds"), "{:.1f} s"),
             f"{_cell(r.get('canary_requests'))} / {_cell(r.get('stable_requests'))}"
             + (f" ({r['against']})" if r.get("against") else ""),
             _cell(r.get("score"), "{:.0f}"), f"{r['verdict']}{' (gross)' if r.get('gross') else ''}: {r['reason']}"]
            for r in report.steps]
    return gh.md_table(["step", "weight", "window", "took", "requests canary / compared with", "score", "verdict"],
                       rows)


def metrics_table(report: Report) -> str:
    rows = []
    for r in report.steps:
        for m in r.get("metrics") or []:
            rows.append([f"{r['step']}.{r['window']}", m["name"], f"{m['canary_n']} / {m['stable_n']}", m["canary"],
                         m["stable"], m["effect_text"], m["limit"], _p(m["p"]), m["interval"],
                         f"**{m['verdict']}**" if m["verdict"] != "pass" else m["verdict"]])
    if not rows:
        return ""
    return gh.md_table(["window", "metric", "samples canary / compared with", "canary", "compared with", "effect",
                        "limit", "p-value", "interval", "verdict"], rows)


def summary(report: Report) -> str:
    head = f"### canary-deploy {report.name}: {report.verdict}\n\n{report.reason}\n\n"
    stable = report.stable.image if report.stable else "-"
    changed = report.previous is not None and report.stable is not None and report.previous.image != stable
    head += f"stable: `{stable}`" + (f" (before: `{report.previous.image}`)" if changed and report.previous else "")
    head += f"; canary: `{report.image}`\n\n" if report.verdict == ROLLED_BACK and report.image != stable else "\n\n"
    if report.warm_up:
        w = report.warm_up
        head += (f"Warm-up: {w['ok']} of {w['requests']} requests of the model's example answered in "
                 f"{w['seconds']:.1f} s before the canary took traffic (not part of any window).\n\n")
    if report.reference:
        r = report.reference
        if r.get("turns"):
            head += (f"The 100% step's reference: the router gave the whole load to the canary and to the {r['role']} "
                     f"by turns of a second (the canary on even seconds), so both took it on the same host over the "
                     f"same time; the {r['role']}'s last window: {r['requests']:.0f} requests, median "
                     f"{r['median_ms']} ms.\n\n")
        else:
            head += (f"The 100% step's reference: the {r['role']} alone at the whole load for {r['seconds']:.1f} s "
                     f"with the canary idle, {r['requests']:.0f} requests, median {r['median_ms']} ms.\n\n")
    if not report.steps:
        return head
    detail = metrics_table(report)
    return head + windows_table(report) + ("\n" + detail if detail else "") + "\n" + mermaid(report)


def mermaid(report: Report) -> str:
    rows = [r for r in report.steps if r["step"] > 0 and r.get("canary_median_ms") is not None]
    if not rows:
        return ""
    labels = ", ".join(f'"{r["step"]}.{r["window"]}: {r["weight"]}%"' for r in rows)
    c = ", ".join(f"{r['canary_median_ms']:.1f}" for r in rows)
    s = ", ".join(f"{(r.get('stable_median_ms') or 0):.1f}" for r in rows)
    top = max([r["canary_median_ms"] for r in rows] + [r.get("stable_median_ms") or 0 for r in rows]) * 1.2 + 1
    return ("```mermaid\nxychart-beta\n"
            "    title \"median latency (ms) per window: canary bars, baseline or stable line\"\n"
            f"    x-axis [{labels}]\n    y-axis \"ms\" 0 --> {top:.0f}\n    bar [{c}]\n    line [{s}]\n```\n")


def publish(report: Report, path: Path) -> None:
    """The report file, the step outputs and the job summary."""
    atomic_write_json(path, report.to_dict())
    gh.set_outputs({"verdict": report.verdict, "stable-digest": report.stable.digest if report.stable else "",
                    "report-file": str(path)})
    gh.add_summary(summary(report))
