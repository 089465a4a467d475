"""Image QA acceptance: runs the flawed and clean inputs of tests/jobs/qa_cases.py
through the worker pipeline (real compositor in process, the case's matte) and
prints each case's verdict, its reasons and headline scores, then the confusion
table (flawed vs clean against flagged vs passed).

    PYTHONPATH=.:gen .venv/bin/python bench/qa_acceptance.py

Exits 1 when a flawed case is missed or lacks its expected reason, or a clean
case is flagged."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.jobs.qa_cases import confusion, run_all  # noqa: E402


def _headline(scores: dict) -> str:
    parts = []
    for name in ("edge_halo", "matte_uncertainty", "subject_fill", "background_purity"):
        value = (scores.get(name) or {}).get("value")
        if value is not None:
            parts.append(f"{name}={value:.3f}")
    res = scores["resolution"]
    if res.get("upscale") is not None:
        parts.append(f"upscale={res['upscale']:.2f}")
    parts.append(f"{res['width']}x{res['height']}")
    return " ".join(parts)


def main() -> int:
    outcomes = run_all()
    width = max(len(o.case.name) for o in outcomes)
    print(f"{'case':<{width}}  kind    verdict  ok   reasons / scores")
    for o in outcomes:
        kind = "flawed" if o.case.flawed else "clean"
        verdict = "review" if o.qa["needs_review"] else "pass"
        print(
            f"{o.case.name:<{width}}  {kind:<6}  {verdict:<7}  {'yes' if o.right else 'NO':<3}  "
            f"{','.join(o.codes) or '-'}  [{_headline(o.qa['scores'])}]"
        )
    t = confusion(outcomes)
    print()
    print("                 needs_review   passed")
    print(f"flawed inputs    {t['flawed_flagged']:>12}   {t['flawed_missed']:>6}")
    print(f"clean inputs     {t['clean_flagged']:>12}   {t['clean_passed']:>6}")
    print(f"flawed flagged without the expected reason: {t['flawed_wrong_reason']}")
    return 0 if all(o.right for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
