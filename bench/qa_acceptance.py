"""Image QA acceptance: runs the flawed and clean inputs of tests/jobs/qa_cases.py
through the worker pipeline (real compositor in process, the case's matte) and
prints each case's verdict, its reasons and headline scores, then the confusion
table (flawed vs clean against flagged vs passed).

    PYTHONPATH=.:gen .venv/bin/python bench/qa_acceptance.py [--samples]

Exits 1 when a flawed case is missed or lacks its expected reason, or a clean
case is flagged. --samples adds a second table on the 24 realistic synthetic photos
of services.samples.synthetic (plain, textured, busy, white-on-white, dark-on-dark,
glass, fur, holes), each as a product photo and a cut-out, once with its true matte
and once with a matte grown 5 px into the backdrop (a fringe): how often each gets
needs_review, and how often for edge_halo."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.samples.synthetic import varied_samples  # noqa: E402
from tests.jobs.qa_cases import Case, Runner, _fringed, confusion, run_all  # noqa: E402


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


def _samples() -> None:
    runner = Runner()
    counts: Counter[tuple[str, str, str]] = Counter()
    for sample in varied_samples((768, 768)):
        for matte in ("true", "fringed"):
            alpha = sample.alpha if matte == "true" else _fringed(sample.alpha, 5)
            for op in ("product-photo", "remove-background"):
                qa, _ = runner.run(
                    Case(
                        sample.name,
                        matte == "fringed",
                        op,
                        {},
                        lambda a=alpha, rgb=sample.rgb: (rgb, a),
                    )
                )
                codes = [r["code"] for r in qa["reasons"]]
                counts[(sample.kind, matte, "review")] += bool(codes)
                counts[(sample.kind, matte, "edge_halo")] += "edge_halo" in codes
                counts[(sample.kind, matte, "n")] += 1
    print()
    print("realistic samples: needs_review (of which for edge_halo) / photos")
    print(f"{'kind':16s} {'true matte':>18s} {'fringed matte':>18s}")
    for kind in dict.fromkeys(k for k, _, _ in counts):
        cells = [
            f"{counts[(kind, m, 'review')]} ({counts[(kind, m, 'edge_halo')]}) / "
            f"{counts[(kind, m, 'n')]}"
            for m in ("true", "fringed")
        ]
        print(f"{kind:16s} {cells[0]:>18s} {cells[1]:>18s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", action="store_true", help="also the realistic samples")
    args = parser.parse_args()
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
    if args.samples:
        _samples()
    return 0 if all(o.right for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
