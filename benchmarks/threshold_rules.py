"""Threshold rules replayed on stored scores: what each rule's threshold does on the test split.

``benchmarks/anomaly_suite.py --scores FILE`` keeps, for every dataset and model, the scores the
threshold was calibrated on (the good validation images, any real defects, the synthetic defects
pasted into held-back goods; the bundle holds them as ``calibration_scores``) and the test
scores. This script calibrates each rule on the former, exactly as ``train`` would
(``calibrate_threshold``), and prints what the threshold achieves on the test split: recall,
false-reject rate, F1 against F1-max, and Youden's J (recall minus false-reject rate, which does
not depend on the share of defects in the test split, as F1 does).

    .venv/bin/python benchmarks/threshold_rules.py SCORES.json [SCORES.json ...]
        [--rules auto good_quantile:0.01 synthetic_balanced:0.3 ...]

A rule is ``NAME`` or ``NAME:TARGET`` (``defectscope train --threshold-rule`` names). The
issue-14 target is F1 >= 0.8 x F1-max on every dataset.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

DEFAULT_RULES = ("auto", "synthetic_balanced:0.1", "synthetic_balanced:0.3",
                 "good_quantile:0.01", "good_quantile:0.05")


def parse_rule(text: str) -> tuple[str, float | None]:
    name, _, target = text.partition(":")
    try:
        return name, float(target) if target else None
    except ValueError:
        raise SystemExit(f"threshold_rules.py: error: rule {text!r}: the target after ':' "
                         "must be a number") from None


def replay(run: dict, rule: str, target: float | None) -> dict:
    """The threshold ``rule`` calibrates on ``run``'s stored scores, judged on its test scores."""
    from defectscope.evaluation.metrics import confusion_at, f1_max
    from defectscope.evaluation.thresholds import calibrate_threshold

    kept = run["calibration"]
    calibration = calibrate_threshold(
        kept["good"] + kept["defect"], [False] * len(kept["good"]) + [True] * len(kept["defect"]),
        rule=rule, target=target, synthetic_scores=kept["synthetic"],
        auto_with_defects="balanced")
    scores, is_defect = np.asarray(run["test"]), np.asarray(run["test_defect"], dtype=bool)
    counts = confusion_at(scores, is_defect, calibration.threshold)
    best = f1_max(scores, is_defect)[0]
    return {"recall": counts.recall, "false_reject_rate": counts.false_reject_rate,
            "f1": counts.f1, "f1_ratio": counts.f1 / best if best else 0.0,
            "youden_j": counts.recall - counts.false_reject_rate,
            "chosen_rule": calibration.rule, "n_good": calibration.n_good,
            "median_good": (float(np.median(kept["good"])), float(np.median(scores[~is_defect])))}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scores", nargs="+", type=Path, help="anomaly_suite.py --scores files")
    parser.add_argument("--rules", nargs="+", default=list(DEFAULT_RULES))
    args = parser.parse_args(argv)
    from defectscope.errors import DefectscopeError

    runs = []
    for path in args.scores:
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            parser.error(f"{path}: not a readable scores file ({error})")
        runs += [dict(run, source=path.stem) for run in content
                 if run.get("calibration") and run.get("test")]
    if not runs:
        parser.error("no runs with stored scores in the files given")
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    print("| rule | source | dataset | model | goods | median good score val / test | recall "
          "| false rejects | F1 / F1-max | Youden J |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for text in args.rules:
        rule, target = parse_rule(text)
        try:
            rows = [replay(run, rule, target) for run in runs]
        except DefectscopeError as error:
            parser.error(f"rule {text!r}: {error}")
        for run, row in zip(runs, rows):
            print(f"| {text} | {run['source']} | {run['dataset']} | {run['model']} | "
                  f"{row['n_good']} | {row['median_good'][0]:.4g} / {row['median_good'][1]:.4g} | "
                  f"{row['recall']:.3f} | {row['false_reject_rate']:.3f} | "
                  f"{row['f1_ratio']:.3f} | {row['youden_j']:.3f} |")
        summary.append((text, rows))
    print("\n| rule | mean recall | mean false rejects | mean F1 / F1-max | lowest F1 / F1-max "
          "| runs below 0.8 | mean Youden J |")
    print("|---|---|---|---|---|---|---|")
    for text, rows in summary:
        ratios = [r["f1_ratio"] for r in rows]
        print(f"| {text} | {np.mean([r['recall'] for r in rows]):.3f} | "
              f"{np.mean([r['false_reject_rate'] for r in rows]):.3f} | {np.mean(ratios):.3f} | "
              f"{min(ratios):.3f} | {sum(r < 0.8 for r in ratios)} of {len(rows)} | "
              f"{np.mean([r['youden_j'] for r in rows]):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
