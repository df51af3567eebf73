"""PatchCore's image score: the worst patch, or the mean of the worst share of patches?

For each suite dataset PatchCore is fitted once on the training goods (``--tune off``, the given
options), each test image's patch distances are kept, and the image AUROC is printed for every
``top_fraction`` (the share of the worst patches whose mean is the image score; 0 is the worst
patch alone). Two test sets:

- ``real``: the test split as it is;
- ``local-only``: each defective test image's patch distances pasted, inside its labelled mask
  only, into a randomly drawn good test image's (seeded). This is a product whose defect is the
  only difference from a good part. Where ``real`` rises with the fraction and ``local-only``
  falls, the defective parts of that dataset differ from the good ones beyond their labelled
  defects, and a large fraction scores that difference, not the defect.

The Eq. 7 re-weighting is left out of both (it multiplies every fraction's score alike).

    .venv/bin/python benchmarks/patchcore_image_score.py [--datasets ...]
        [--options '{"image_size": 256, "max_side": 640, "neighbourhood": 3}'] [--json OUT]
    .venv/bin/python benchmarks/patchcore_image_score.py --rows OUT   # the tables again

The default ``top_fraction`` is the one with the best mean over datasets of ``combined`` (the
mean of the real and the local-only AUROC); the leave-one-dataset-out lines check it.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from anomaly_suite import BUILT_IN, load_manifest, shared_data  # noqa: E402

FRACTIONS = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
DEFAULT_OPTIONS = {"image_size": 256, "max_side": 640, "neighbourhood": 3}  # the tuner's usual pick


def patch_distances(model, image: np.ndarray) -> np.ndarray:
    """The fitted PatchCore's nearest-bank distance of every patch of one whole image (h x w)."""
    import torch

    from defectscope.scoring.patchcore import patchcore_scores

    tensor = torch.from_numpy(model.preprocessor(image)[None])
    with torch.inference_mode():
        embeddings = model.network()(tensor).numpy()
    grid, _ = patchcore_scores(embeddings, model.index_, model.memory_bank_,
                               model.bank_neighbours_)
    return grid


def local_only(grids, masks, labels, seed: int = 0) -> tuple[list, list]:
    """(good grids + hybrids, labels): every defect's own distances inside its mask, a random
    good image's elsewhere. Defects without a mask are left out."""
    rng = np.random.default_rng(seed)
    goods = [g for g, bad in zip(grids, labels) if not bad]
    hybrids = []
    for grid, mask, bad in zip(grids, masks, labels):
        if not bad or mask is None:
            continue
        h, w = grid.shape
        inside = cv2.resize(mask.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
        if not inside.any():
            continue
        donor = cv2.resize(goods[rng.integers(len(goods))], (w, h),
                           interpolation=cv2.INTER_LINEAR)
        hybrids.append(np.where(inside, grid, donor))
    return goods + hybrids, [False] * len(goods) + [True] * len(hybrids)


def aurocs_by_fraction(grids, labels) -> dict[str, float]:
    from defectscope.evaluation.metrics import auroc
    from defectscope.scoring.patchcore import top_mean

    return {str(f): round(auroc([top_mean(g, f) for g in grids], labels), 4) for f in FRACTIONS}


def run(name: str, options: dict) -> dict:
    from tqdm import tqdm

    from defectscope.data.image_io import load_image, load_mask
    from defectscope.models import create_model

    manifest = load_manifest(name, shared_data() / name, 1)
    train = [s for s in manifest.samples if s.split == "train" and s.is_good]
    test = [s for s in manifest.samples if s.split == "test"]
    started = time.perf_counter()
    model = create_model("patchcore", **options, top_fraction=0.0)
    model.fit((load_image(manifest.path_of(s)) for s in train), progress=True)
    grids, masks, labels = [], [], []
    for sample in tqdm(test, desc=f"{name} test", unit="img"):
        image = load_image(manifest.path_of(sample))
        grids.append(patch_distances(model, image))
        mask_path = manifest.mask_path_of(sample)
        masks.append(load_mask(mask_path, image.shape[:2]) if mask_path else None)
        labels.append(not sample.is_good)
    hybrids, hybrid_labels = local_only(grids, masks, labels)
    shares = [float(np.mean(cv2.resize(m.astype(np.float32), g.shape[::-1],
                                       interpolation=cv2.INTER_AREA) > 0))
              for g, m, bad in zip(grids, masks, labels) if bad and m is not None and m.any()]
    return {"dataset": name, "options": options, "n_train": len(train), "n_test": len(test),
            "n_local_only_defects": len(hybrids) - sum(not b for b in labels),
            "defect_patch_share_median": round(float(np.median(shares)), 4) if shares else None,
            "real": aurocs_by_fraction(grids, labels),
            "local_only": aurocs_by_fraction(hybrids, hybrid_labels),
            "seconds": round(time.perf_counter() - started, 1)}


def combined(row: dict) -> dict[str, float]:
    """Per fraction: the mean of the real and the local-only image AUROC (the choice's figure)."""
    return {f: (row["real"][f] + row["local_only"][f]) / 2 for f in row["real"]}


def leave_one_out(rows: list[dict]) -> list[tuple[str, str, float, str, float]]:
    """Per held-out dataset: (dataset, fraction chosen on the others by the combined figure,
    its combined figure there, the best fraction there, the best's figure)."""
    out = []
    for held in rows:
        others = [combined(r) for r in rows if r is not held]
        chosen = max(others[0], key=lambda f: sum(o[f] for o in others))
        mine = combined(held)
        best = max(mine, key=mine.get)
        out.append((held["dataset"], chosen, mine[chosen], best, mine[best]))
    return out


def print_tables(rows: list[dict]) -> None:
    print("| dataset | test set | " + " | ".join(f"top {f:g}" for f in FRACTIONS) + " |")
    print("|---|---|" + "---|" * len(FRACTIONS))
    for kind in ("real", "local_only", "combined"):
        for row in rows:
            values = combined(row) if kind == "combined" else row[kind]
            print(f"| {row['dataset']} | {kind} | "
                  + " | ".join(f"{values[str(f)]:.3f}" for f in FRACTIONS) + " |")
        means = [np.mean([(combined(row) if kind == "combined" else row[kind])[str(f)]
                          for row in rows]) for f in FRACTIONS]
        print(f"| mean ({len(rows)}) | {kind} | " + " | ".join(f"{m:.3f}" for m in means) + " |")
    if len(rows) > 1:
        print("# leave one dataset out (combined = mean of real and local-only image AUROC):")
        for dataset, chosen, there, best, best_there in leave_one_out(rows):
            verdict = "pass" if best_there - there <= 0.03 else "FAIL"
            print(f"#   without {dataset}: top {chosen} -> {there:.3f} there; best top {best} "
                  f"{best_there:.3f}; {verdict} (tolerance 0.03)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(BUILT_IN))
    parser.add_argument("--options", default=json.dumps(DEFAULT_OPTIONS))
    parser.add_argument("--json", type=Path, help="write the rows here")
    parser.add_argument("--rows", type=Path, help="print the tables of a saved --json run")
    args = parser.parse_args(argv)
    if args.rows:
        if not args.rows.is_file():
            parser.error(f"--rows {args.rows}: no such file (write one with --json)")
        print_tables(json.loads(args.rows.read_text()))
        return 0
    try:
        options = json.loads(args.options)
    except json.JSONDecodeError as error:
        parser.error(f"--options is not JSON ({error}): e.g. '{json.dumps(DEFAULT_OPTIONS)}'")
    print(f"# {' '.join(sys.argv)}\n# machine: {platform.platform()}, Python "
          f"{platform.python_version()}", flush=True)
    rows = []
    for name in args.datasets:
        if not (shared_data() / name).is_dir():
            print(f"# {name}: not in {shared_data()}, skipped")
            continue
        rows.append(run(name, options))
        print(json.dumps(rows[-1]), flush=True)
    if rows:
        print_tables(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
