"""Would two PatchCore settings together beat choosing one? Score fusion replayed on stored scores.

No single PatchCore resolution is within 0.03 image AUROC of the best on every suite dataset
(``benchmarks/leave_one_out.py``), and the synthetic defects cannot tell the tuner which one a
product needs. This script asks whether running two settings and adding their scores would
serve every dataset: each setting's scores are standardised by the mean and standard deviation of
its own good validation scores (what a trained bundle knows, no test image involved), then
summed. It prints, per dataset, the image AUROC of each setting alone and of the sum, the gap to
the best single setting, and F1 / F1-max at the threshold the default rule (``auto``) calibrates
on the summed validation scores (the good images and the seeded synthetic defects are the same
images in every run of one dataset, so their scores add up one to one).

    .venv/bin/python benchmarks/score_fusion.py \\
        "128 n5=benchmarks/results/anomaly-suite-1204-patchcore-fixed-128n5-scores.json" \\
        "256 n3=benchmarks/results/anomaly-suite-1204-final-scores.json"

The input files are ``anomaly_suite.py --scores`` outputs on the same datasets; ``--model``
(default patchcore) picks the rows of one model where a file holds several.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def standardise(scores, good) -> np.ndarray:
    """Scores in units of the good validation scores' spread, 0 at their mean."""
    good = np.asarray(good, dtype=np.float64)
    spread = good.std() or 1.0
    return (np.asarray(scores, dtype=np.float64) - good.mean()) / spread


def fuse(runs: list[dict]) -> dict:
    """One dataset's runs (one per setting) -> a run of the summed standardised scores."""
    first = runs[0]
    for run in runs[1:]:
        if run["test_defect"] != first["test_defect"] or any(
                len(run["calibration"][key]) != len(first["calibration"][key])
                for key in ("good", "defect", "synthetic")):
            raise SystemExit(f"score_fusion.py: error: {first['dataset']}: the runs do not score "
                             "the same test and validation images")

    def summed(values_of) -> list[float]:
        return np.sum([standardise(values_of(run), run["calibration"]["good"]) for run in runs],
                      axis=0).tolist()

    return {"dataset": first["dataset"], "test": summed(lambda run: run["test"]),
            "test_defect": first["test_defect"],
            "calibration": {key: summed(lambda run: run["calibration"][key])
                            for key in ("good", "defect", "synthetic")}}


def at_default_threshold(run: dict) -> float:
    """F1 / F1-max at the threshold rule ``auto`` calibrates on ``run``'s validation scores."""
    from threshold_rules import replay  # beside this script

    return replay(run, "auto", None)["f1_ratio"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("settings", nargs="+", metavar="LABEL=SCORES.json",
                        help="two or more anomaly_suite.py --scores files, one per setting")
    parser.add_argument("--model", default="patchcore",
                        help="the model whose rows are read (a file may hold several)")
    args = parser.parse_args(argv)
    if len(args.settings) < 2:
        parser.error("give at least two settings to fuse")
    from defectscope.evaluation.metrics import auroc

    by_setting = {}
    for text in args.settings:
        label, sep, path = text.partition("=")
        if not sep:
            parser.error(f"{text!r}: expected LABEL=SCORES.json")
        try:
            rows = json.loads(Path(path).read_text())
        except (OSError, ValueError) as error:
            parser.error(f"{path}: not a readable scores file ({error})")
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            parser.error(f"{path}: not an anomaly_suite.py --scores file (a list of runs)")
        by_setting[label] = {row["dataset"]: row for row in rows if row.get("model") == args.model
                             and row.get("test") and row.get("calibration")}
    labels = list(by_setting)
    datasets = sorted(set.intersection(*(set(rows) for rows in by_setting.values())))
    if not datasets:
        parser.error(f"the files share no dataset with stored {args.model} scores")
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    columns = ([f"image AUROC {label}" for label in labels]
               + ["image AUROC fused", "best alone minus fused"]
               + [f"F1 / F1-max {label}" for label in labels] + ["F1 / F1-max fused"])
    print("| dataset | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    table = []
    for dataset in datasets:
        runs = [by_setting[label][dataset] for label in labels]
        fused = fuse(runs)
        is_defect = np.asarray(fused["test_defect"], dtype=bool)
        single = [auroc(run["test"], is_defect) for run in runs]
        combined = auroc(fused["test"], is_defect)
        ratios = [at_default_threshold(run) for run in runs] + [at_default_threshold(fused)]
        table.append(single + [combined, max(single) - combined] + ratios)
        print(f"| {dataset} | " + " | ".join(f"{v:.3f}" for v in single)
              + f" | {combined:.3f} | {max(single) - combined:+.3f} | "
              + " | ".join(f"{v:.3f}" for v in ratios) + " |")
    mean = np.mean(table, axis=0)
    print("| mean | " + " | ".join(f"{v:.3f}" for v in mean) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
