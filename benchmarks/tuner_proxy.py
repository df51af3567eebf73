"""Do synthetic defects rank the tuner's candidates as real defects do? By kind, strength, size.

For each suite dataset this rebuilds what ``train --tune auto`` compares the candidates on (the
same seeded training subset, held-back goods and synthetic defects), fits every PatchCore
candidate on the subset, and prints the image AUROC of the held-back goods against: all
synthetic defects (what the tuner judges by, with pixel AUROC beside it there), each kind, each
blend strength, each third of the defect area, and a seeded sample of up to 80 real test
defects (which the tuner never sees). A synthetic subset that ranks the candidates as the real
defects do on every dataset would be a better judge; one that does so on one dataset only is
not.

    .venv/bin/python benchmarks/tuner_proxy.py [--datasets magnetic-tile bsdata battery-weld]
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_suite import BUILT_IN, load_manifest, shared_data  # noqa: E402

REAL_DEFECTS = 80


def groups(described) -> dict[str, np.ndarray]:
    """Index sets of the synthetic defects: all, by kind, by strength, by third of the area."""
    from defectscope.data.images.synthesize import KINDS
    from defectscope.tuning.synthetic import STRENGTHS

    kinds = np.array([kind for _, _, kind, _ in described])
    strengths = np.array([strength for _, _, _, strength in described])
    areas = np.array([mask.mean() for _, mask, _, _ in described])
    low, high = np.quantile(areas, [1 / 3, 2 / 3])
    chosen = {"all synthetic": np.ones(len(described), bool)}
    chosen.update({kind: kinds == kind for kind in KINDS})
    chosen.update({f"strength {s:g}": strengths == s for s in STRENGTHS})
    chosen.update({"small third": areas <= low, "middle third": (areas > low) & (areas <= high),
                   "large third": areas > high})
    return {name: np.flatnonzero(mask) for name, mask in chosen.items() if mask.any()}


def run(name: str) -> list[tuple[str, dict[str, float]]]:
    from defectscope.evaluation.metrics import auroc
    from defectscope.models import create_model
    from defectscope.training.anomaly import (TUNE_TRAIN_IMAGES, _load, _scores,
                                              n_synthetic_for, prepare_splits)
    from defectscope.tuning.search import candidates_for
    from defectscope.tuning.synthetic import described_defects

    manifest, _ = prepare_splits(load_manifest(name, shared_data() / name, 1), 0.15, 0)
    train = manifest.select(split="train", good=True)
    picked = sorted(np.random.default_rng(0).choice(len(train), min(len(train), TUNE_TRAIN_IMAGES),
                                                    replace=False))  # as _tune draws it
    subset = _load(manifest, [train[i] for i in picked])
    goods = _load(manifest, manifest.select(split="val", good=True))
    described = described_defects(goods, n_synthetic_for(len(goods)), 0)
    defects = [s for s in manifest.select(split="test") if not s.is_good]
    sample = np.random.default_rng(1).choice(len(defects), min(REAL_DEFECTS, len(defects)),
                                             replace=False)
    real = _load(manifest, [defects[i] for i in sorted(sample)])
    rows = []
    for candidate in candidates_for("patchcore", {}, subset[0].shape):
        model = create_model("patchcore", **dict(candidate.options))
        model.fit(subset)
        good = np.array(_scores(model, goods))
        synthetic = np.array(_scores(model, (image for image, _, _, _ in described)))

        def against(scores: np.ndarray) -> float:
            return auroc(np.concatenate([good, scores]),
                         np.r_[np.zeros(len(good), bool), np.ones(len(scores), bool)])

        row = {group: against(synthetic[index]) for group, index in groups(described).items()}
        row[f"real ({len(real)})"] = against(np.array(_scores(model, real)))
        rows.append((candidate.name, row))
        print(f"# {name} {candidate.name}: done", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(BUILT_IN))
    args = parser.parse_args(argv)
    print(f"# {' '.join([Path(sys.argv[0]).name] + (argv or sys.argv[1:]))}")
    print(f"# machine: {platform.platform()}, Python {platform.python_version()}")
    for name in args.datasets:
        if not (shared_data() / name).exists():
            print(f"# {name}: absent, skipped")
            continue
        rows = run(name)
        columns = list(rows[0][1])
        print(f"\n{name}: image AUROC of the held-back goods against each group\n")
        print("| candidate | " + " | ".join(columns) + " |")
        print("|---|" + "---|" * len(columns))
        for candidate, row in rows:
            print(f"| {candidate} | " + " | ".join(f"{row[c]:.3f}" for c in columns) + " |")
        best = {c: max(rows, key=lambda r: r[1][c])[0] for c in columns}
        print("| best | " + " | ".join(best[c] for c in columns) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
