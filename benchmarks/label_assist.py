"""How much labelling work the model-assisted proposals save, on real masks.

On each dataset an anomaly model is trained on good images only, as ``defectscope train`` does
(``--model``, default patchcore; ``--tune auto``, the default, lets the workflow choose its
settings from synthetic defects and calibrate the threshold on the held-out goods and those
defects; ``--tune off`` is the plain model at its defaults with the ``auto`` threshold rule on
the held-out goods, the figures before this option existed). Then for each defective image,
against its true mask:

- ``baseline``: the anomaly map thresholded at the model's threshold;
- ``refined``: ``labelling.propose`` (GrabCut seeded from the map);
- ``defect``: ``propose(force=True)``, as the studio calls it once the person has said
  "defect" (the map's most anomalous region is proposed even under the threshold);
- ``click``: ``propose`` with one click at the true mask's centre (its innermost pixel).

Printed per dataset and variant: mean mask IoU, share of true defects (connected components of
the true mask) with a proposed box of IoU >= 0.3, and how many proposals a person would accept
without an edit (mask IoU >= 0.5).

    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python benchmarks/label_assist.py \
        [--data PATH] [--max-train 150] [--max-defects 60] [--cache DIR] \
        [--model patchcore|padim] [--tune auto|off]

``--cache DIR`` keeps each dataset's maps and threshold (``.npz``) so the proposal step can be
re-run without the model.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
MT_CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")


def default_data() -> Path:
    shared = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    return Path(shared) if shared else REPO.parent / "shared" / "data"


def _spread(items: list, n: int) -> list:
    """At most ``n`` items evenly spread over the sorted list (seedless, reproducible)."""
    if len(items) <= n:
        return items
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)]


def magnetic_tile(root: Path, max_train: int, max_defects: int):
    """Good train/val from MT_Free (by name); defects from every class with a non-empty mask."""
    free = sorted((root / "MT_Free" / "Imgs").glob("*.jpg"))
    val = free[1::8][:40]
    train = _spread([p for p in free if p not in set(val)], max_train)
    defects = []
    for name in MT_CLASSES:
        for image in sorted((root / f"MT_{name}" / "Imgs").glob("*.jpg")):
            defects.append((image, image.with_suffix(".png")))
    return train, val, _spread(defects, max_defects)


def mvtec(root: Path, max_train: int, max_defects: int):
    """MVTec layout: train/good to train, test/good to calibrate, test/<defect> with masks."""
    train = _spread(sorted((root / "train" / "good").iterdir()), max_train)
    val = _spread(sorted((root / "test" / "good").iterdir()), 40)
    defects = []
    for folder in sorted(p for p in (root / "test").iterdir() if p.name != "good"):
        for image in sorted(folder.iterdir()):
            defects.append((image, root / "ground_truth" / folder.name / f"{image.stem}_mask.png"))
    return train, val, _spread(defects, max_defects)


DATASETS = {"magnetic-tile": magnetic_tile, "bsdata": mvtec, "battery-weld": mvtec}


def trained_model(name: str, train, val, args):
    """(fitted model, its threshold): ``train_anomaly`` on a manifest of the good images
    (``--tune auto``), or the plain model with the ``auto`` rule on the goods (``--tune off``)."""
    import tempfile

    from defectscope.data.hashing import sha256_file
    from defectscope.data.image_io import load_image
    from defectscope.data.images.manifest import Manifest
    from defectscope.values import GOOD, Sample

    if args.tune == "off":
        from defectscope.evaluation.thresholds import calibrate_threshold
        from defectscope.models.registry import create_model

        model = create_model(args.model)
        model.fit(load_image(p) for p in train)
        scores = [model.anomaly(load_image(p))[0] for p in val]
        return model, calibrate_threshold(scores, [False] * len(scores), rule="auto").threshold
    from defectscope.training.anomaly import train_anomaly

    samples = [Sample(str(p), GOOD, sha256_file(p), split=split)
               for split, paths in (("train", train), ("val", val)) for p in paths]
    manifest = Manifest(Path(os.path.commonpath([str(p) for p in train + val])), samples, name)
    with tempfile.TemporaryDirectory() as tmp:
        result = train_anomaly(manifest, args.model, Path(tmp) / "model", progress=False,
                               tune="auto")
    return result.model, float(result.model.threshold)


def model_maps(name: str, root: Path, args, cache: Path | None):
    """(threshold, [(image, true mask bool, anomaly map)]) for the dataset's defects."""
    from defectscope.data.image_io import load_image, load_mask

    target = cache / f"{name}-{args.model}-{args.tune}.npz" if cache else None
    train, val, defects = DATASETS[name](root, args.max_train, args.max_defects)
    if target is not None and target.exists():
        saved = np.load(target, allow_pickle=False)
        threshold = float(saved["threshold"])
        maps = [saved[f"map{i}"].astype(np.float32) for i in range(len(defects))]
    else:
        started = time.perf_counter()
        model, threshold = trained_model(name, train, val, args)
        maps = [model.anomaly(load_image(p))[1].astype(np.float32) for p, _ in defects]
        print(f"{name}: {args.model} (tune {args.tune}) fit on {len(train)} good, threshold from "
              f"{len(val)} good, {len(defects)} defect maps in "
              f"{time.perf_counter() - started:.0f} s", file=sys.stderr)
        if target is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            np.savez(target, threshold=threshold,
                     **{f"map{i}": m.astype(np.float16) for i, m in enumerate(maps)})
    items = []
    for (image_path, mask_path), amap in zip(defects, maps):
        image = load_image(image_path)
        truth = load_mask(mask_path, image.shape[:2], image_path=image_path)
        if truth.any():  # a few Magnetic Tile masks are empty: nothing to propose against
            items.append((image, truth, amap))
    return threshold, items


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def box_iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def component_boxes(mask: np.ndarray) -> list[tuple[float, float, float, float]]:
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    return [(float(x), float(y), float(x + w), float(y + h)) for x, y, w, h, _ in stats[1:count]]


def centre_click(truth: np.ndarray) -> tuple[float, float]:
    """The innermost pixel of the true mask (distance-transform peak): the centre a person
    would click, and always inside the defect."""
    distance = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return float(x), float(y)


def evaluate(threshold: float, items) -> dict[str, dict[str, float]]:
    from defectscope.labelling.propose import baseline_mask, propose

    rows: dict[str, list[tuple[float, list[bool]]]] = {
        "baseline": [], "refined": [], "defect": [], "click": []}
    for image, truth, amap in items:
        truths = component_boxes(truth)
        base = baseline_mask(amap, threshold) > 0
        refined = propose(image, amap, threshold)
        forced = propose(image, amap, threshold, force=True)
        clicked = propose(image, amap, threshold, points=[centre_click(truth)])
        for name, mask, boxes in (("baseline", base, component_boxes(base)),
                                  ("refined", refined.mask > 0, [b.box for b in refined.boxes]),
                                  ("defect", forced.mask > 0, [b.box for b in forced.boxes]),
                                  ("click", clicked.mask > 0, [b.box for b in clicked.boxes])):
            hits = [max((box_iou(t, b) for b in boxes), default=0.0) >= 0.3 for t in truths]
            rows[name].append((iou(mask, truth), hits))
    out = {}
    for name, values in rows.items():
        ious = np.array([v[0] for v in values])
        hits = [h for v in values for h in v[1]]
        out[name] = {"mean_iou": float(ious.mean()), "box_hit": float(np.mean(hits)),
                     "accepted": int((ious >= 0.5).sum()), "n": len(values)}
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--max-train", type=int, default=150)
    parser.add_argument("--max-defects", type=int, default=60)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--model", default="patchcore", choices=("patchcore", "padim"))
    parser.add_argument("--tune", default="auto", choices=("auto", "off"))
    args = parser.parse_args(argv)
    print(f"{'dataset':14} {'proposal':9} {'mean IoU':>8} {'box IoU>=.3':>11} "
          f"{'accepted (IoU>=.5)':>18}")
    for name in args.datasets:
        root = args.data / name
        if not root.exists():
            print(f"{name}: {root} not found, skipped", file=sys.stderr)
            continue
        threshold, items = model_maps(name, root, args, args.cache)
        for variant, figures in evaluate(threshold, items).items():
            print(f"{name:14} {variant:9} {figures['mean_iou']:8.3f} {figures['box_hit']:11.2f} "
                  f"{figures['accepted']:>11} / {figures['n']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
