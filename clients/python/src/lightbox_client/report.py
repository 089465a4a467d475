"""The end of a batch run: `DIR/report.json` (every item with its status, job id,
output and error) and `DIR/report.html` (a thumbnail grid of every output, then every
failure with its error), readable offline since images are linked relatively."""

from __future__ import annotations

import html
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lightbox_client.catalog import Item
from lightbox_client.manifest import Entry, Manifest

REPORT_JSON = "report.json"
REPORT_HTML = "report.html"


def _item(item: Item, entry: Entry) -> dict[str, Any]:
    return {
        "sku": item.sku,
        "variant": item.variant,
        "line": item.line,
        "image": item.image,
        "placement": item.placement,
        # Not finished: never submitted, or left running or refused for a reason a
        # re-run may not meet (credits, a server that was down).
        "status": entry.status if entry.final else "unfinished",
        "job_id": entry.job_id,
        "batch_id": entry.batch_id,
        "output": entry.output,
        "width": entry.width,
        "height": entry.height,
        "credits_used": entry.credits_used,
        "error": entry.error,
        "qa": entry.qa,
    }


def write(
    folder: Path, items: list[Item], manifest: Manifest, run: dict[str, Any]
) -> dict[str, Any]:
    rows = [_item(item, manifest.entry(item.sku, item.variant)) for item in items]
    counts = Counter(r["status"] for r in rows)
    report = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "settings": manifest.settings,
        "run": run,
        "total": len(rows),
        "counts": dict(sorted(counts.items())),
        "credits_used": round(sum(r["credits_used"] for r in rows), 4),
        "needs_review": sum(1 for r in rows if (r["qa"] or {}).get("needs_review")),
        "items": rows,
    }
    (folder / REPORT_JSON).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (folder / REPORT_HTML).write_text(render_html(report), encoding="utf-8")
    return report


_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(180px,1fr));gap:12px}
figure{margin:0;border:1px solid #ddd;border-radius:6px;padding:8px;background:#fafafa}
figure img{width:100%;height:160px;object-fit:contain;background:#eee}
figcaption{font-size:12px;margin-top:6px;word-break:break-all}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:4px 8px;text-align:left}
.failed{color:#a00}
.review{color:#b35c00;font-weight:600}
"""


def render_html(report: dict[str, Any]) -> str:
    esc = html.escape
    items = report["items"]
    done = [r for r in items if r["status"] == "completed" and r["output"]]
    bad = [r for r in items if r not in done]
    counts = ", ".join(f"{n} {s}" for s, n in report["counts"].items())
    settings = report["settings"]
    title = f"Lightbox batch: {settings.get('profile') or settings.get('operation')}"
    out = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        f"<p>{len(items)} items: {esc(counts)}; {report['credits_used']} credits; "
        f"{report['needs_review']} flagged for review by the server's QA. "
        f"Generated {esc(report['generated_at'])}.</p>",
        f"<h2>Outputs ({len(done)})</h2><div class='grid'>",
    ]
    for r in done:
        src = esc(r["output"], quote=True)
        size = f"{r['width']}×{r['height']}" if r["width"] else ""
        qa = r["qa"] or {}
        review = (
            "<br><span class='review'>needs review: "
            + esc(", ".join(qa.get("reasons") or []) or "yes")
            + "</span>"
            if qa.get("needs_review")
            else ""
        )
        out.append(
            f"<figure data-sku='{esc(r['sku'], quote=True)}'><a href='{src}'>"
            f"<img src='{src}' loading='lazy' alt='{esc(r['sku'], quote=True)}'></a>"
            f"<figcaption>{esc(r['sku'])} / {esc(r['variant'])}"
            f"{' · ' + esc(r['placement']) if r['placement'] else ''} · {size}{review}"
            "</figcaption>"
            "</figure>"
        )
    out.append("</div>")
    out.append(f"<h2 class='failed'>Failures ({len(bad)})</h2>")
    if bad:
        out.append("<table><tr><th>SKU</th><th>variant</th><th>line</th><th>status</th>")
        out.append("<th>error</th><th>job</th></tr>")
        for r in bad:
            error = r["error"] or {}
            text = f"{error.get('error', '')}: {error.get('message', '')}".strip(": ")
            out.append(
                f"<tr class='failed' data-sku='{esc(r['sku'], quote=True)}'>"
                f"<td>{esc(r['sku'])}</td><td>{esc(r['variant'])}</td><td>{r['line']}</td>"
                f"<td>{esc(r['status'])}</td><td>{esc(text or 'not finished')}</td>"
                f"<td>{esc(r['job_id'] or '')}</td></tr>"
            )
        out.append("</table>")
    out.append("</body></html>\n")
    return "\n".join(out)
