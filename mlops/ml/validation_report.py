"""A validation's verdict as people and tools read it: the JSON summary, per-batch counts, the HTML page.

The page is self-contained (inline CSS, no script, nothing fetched): it opens
wherever the file is copied, offline.
"""

from __future__ import annotations

import html
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from mlops.adapters.great_expectations_suite import Outcome


@dataclass
class Verdict:
    """The checks' outcomes and the batch split in two: rows that passed every
    row check, and rows quarantined with their reasons. Together they are the
    input; whether either is written depends on `success`."""

    outcomes: list[Outcome]
    accepted: pd.DataFrame
    quarantined: pd.DataFrame
    excluded: dict[str, float] = field(default_factory=dict)  # feedback batch -> its own quarantined share

    @property
    def success(self) -> bool:
        return not [o for o in self.outcomes if o.kind == "table" and not o.success]


def batch_report(verdict: Verdict, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Per batch (source file or feedback batch): rows, accepted, quarantined; and which are new since the
    last accepted run's profile."""
    if "batch" not in verdict.accepted.columns:
        return {"batches": {}, "new_batches": [], "excluded_batches": verdict.excluded}
    count = {name: {"rows": 0, "accepted": 0, "quarantined": 0} for name in
             pd.concat([verdict.accepted["batch"], verdict.quarantined["batch"]]).astype(str).unique()}
    for frame, key in ((verdict.accepted, "accepted"), (verdict.quarantined, "quarantined")):
        for name, rows in frame["batch"].astype(str).value_counts().items():
            count[name][key] += int(rows)
            count[name]["rows"] += int(rows)
    known = set((previous or {}).get("batches", []))
    return {"batches": count, "new_batches": sorted(name for name in count if name not in known),
            "excluded_batches": verdict.excluded}


def render_html(verdict: Verdict, summary: dict[str, Any]) -> str:
    """A self-contained page: inline CSS, no scripts, nothing fetched."""
    status = "ACCEPTED" if verdict.success else "REJECTED"
    colour = "#1e7b34" if verdict.success else "#b3261e"
    rows = "".join(
        f"<tr class='{'ok' if o.success else o.severity}'><td>{html.escape(o.name)}</td><td>{o.severity}</td>"
        f"<td>{html.escape(o.description)}</td><td>{'pass' if o.success else 'FAIL'}</td>"
        f"<td><code>{html.escape(str(o.observed))[:500]}</code></td></tr>"
        for o in verdict.outcomes
    )
    reasons = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>"
                      for k, v in summary["quarantine_reasons"].items()) or "<tr><td colspan=2>none</td></tr>"
    new, excluded = set(summary.get("new_batches", [])), summary.get("excluded_batches", {})
    batches = "".join(f"<tr><td>{html.escape(name)}{' <b>(new)</b>' if name in new else ''}"
                      + (f" <b>(excluded: {excluded[name]:.1%} quarantined)</b>" if name in excluded else "")
                      + f"</td><td>{c['rows']}</td><td>{c['accepted']}</td><td>{c['quarantined']}</td></tr>"
                      for name, c in summary.get("batches", {}).items()) or "<tr><td colspan=4>none</td></tr>"
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Data validation: {status}</title>
<style>
body{{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1100px;color:#222}}
h1 span{{padding:.1em .5em;border-radius:4px;color:#fff;background:{colour}}}
.cards{{display:flex;gap:1em;margin:1em 0}}.card{{border:1px solid #ccc;border-radius:6px;padding:.6em 1em}}
.card b{{display:block;font-size:1.6em}}table{{border-collapse:collapse;width:100%;margin-bottom:1.5em}}
td,th{{border:1px solid #ccc;padding:.4em;text-align:left;vertical-align:top}}th{{background:#eef1f5}}
tr.critical td{{background:#fde8e7}}tr.quarantine td{{background:#fff3e0}}tr.warning td{{background:#fff9db}}
tr.ok td:nth-child(4){{color:#1e7b34}}code{{font-size:.85em;word-break:break-all}}
</style></head><body>
<h1>Data validation <span id="verdict">{status}</span></h1>
<p>Source <code>{html.escape(summary['source'])}</code>.</p>
<div class="cards"><div class="card"><b>{summary['rows']}</b>input rows</div>
<div class="card"><b>{summary['accepted_rows']}</b>accepted</div>
<div class="card"><b>{summary['quarantined_rows']}</b>quarantined</div>
<div class="card"><b>{len(summary['failed'])}</b>critical failures</div>
<div class="card"><b>{len(summary['warnings'])}</b>warnings</div></div>
<h2>Checks</h2><table id="checks"><tr><th>check</th><th>severity</th><th>expectation</th><th>result</th>
<th>observed</th></tr>{rows}</table>
<h2>Batches</h2><table id="batches"><tr><th>batch</th><th>rows</th><th>accepted</th><th>quarantined</th></tr>
{batches}</table>
<h2>Quarantined rows by reason</h2><table id="quarantine"><tr><th>reason</th><th>rows</th></tr>{reasons}</table>
</body></html>"""


def summarise(verdict: Verdict, source: str) -> dict[str, Any]:
    """summary.json: the verdict, the row counts, the failed checks by kind, and every check's outcome."""
    counts = verdict.quarantined["reason"].str.split(";").explode().value_counts() if len(verdict.quarantined) \
        else pd.Series(dtype=int)
    return {
        "success": verdict.success,
        "source": source,
        "rows": len(verdict.accepted) + len(verdict.quarantined),
        "accepted_rows": len(verdict.accepted) if verdict.success else 0,
        "quarantined_rows": len(verdict.quarantined),
        "failed": [o.name for o in verdict.outcomes if o.kind == "table" and not o.success],
        "quarantined_by": [o.name for o in verdict.outcomes if o.kind == "row" and not o.success],
        "warnings": [o.name for o in verdict.outcomes if o.kind == "warning" and not o.success],
        "quarantine_reasons": {str(k): int(v) for k, v in counts.items()},
        "checks": [{k: v for k, v in asdict(o).items() if k != "rows"} | {"severity": o.severity}
                   for o in verdict.outcomes],
    }
