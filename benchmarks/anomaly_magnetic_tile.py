"""Accuracy and speed of the anomaly models on Magnetic Tile (Huang et al.), with default settings.

Split (fixed, so figures compare across versions and with Anomalib): the MT_Free images sorted by
file name, the first 70% to train and the rest to test; every defective image is a test image.
Each model runs in a fresh subprocess so its peak memory is its own.

Magnetic Tile holds about six exposures of each spot (``defectscope data split
--near-duplicates`` finds them), so in that split most good test images have a re-shot of the
same spot among the training images, which a memory-bank model all but remembers. The script
prints how many. ``--split grouped`` keeps each spot's exposures together instead: 70% of the
spots that have only good images train, every other image tests.

    .venv/bin/python benchmarks/anomaly_magnetic_tile.py [--models patchcore padim]
        [--data PATH] [--subsample N] [--options '{"image_size": 320}'] [--split grouped]

``--data`` defaults to ``$DEFECTSCOPE_SHARED_DATA/magnetic-tile`` or ``<repo>/../shared/data/
magnetic-tile``. ``--subsample N`` keeps every N-th image of each group (quick checks only; the
reported figures use the full split). Latency is batch 1, from the decoded image to score and
anomaly map (``model.anomaly``), over every test image.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("Blowhole", "Break", "Crack", "Fray", "Uneven")
TRAIN_FRACTION = 0.7
# Anomalib 2.7, same EfficientNet-Lite0 weights, same split (measured by the project).
ANCHORS = {"padim": {"image_auroc": 0.838, "pixel_auroc": 0.688}}


def default_data() -> Path:
    shared = os.environ.get("DEFECTSCOPE_SHARED_DATA")
    base = Path(shared) if shared else REPO.parent / "shared" / "data"
    return base / "magnetic-tile"


def split(data: Path, subsample: int, how: str = "name"
          ) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Training paths and (test path, label) pairs; label ``"good"`` or the defect class."""
    free = sorted((data / "MT_Free" / "Imgs").glob("*.jpg"))
    if how == "name":
        cut = int(len(free) * TRAIN_FRACTION)
        train_free, test_free = free[:cut], free[cut:]
    else:
        train_free, test_free = _grouped_free_split(data, free)
    train = train_free[::subsample]
    test = [(path, "good") for path in test_free[::subsample]]
    for name in CLASSES:
        test += [(p, name) for p in sorted((data / f"MT_{name}" / "Imgs").glob("*.jpg"))[::subsample]]
    return train, test


def spot_groups(data: Path) -> dict[str, int]:
    """Near-duplicate group of every Magnetic Tile image (by path), cached (a minute's work)."""
    from defectscope.data.near_duplicates import find_near_duplicates
    from defectscope.data import load_image

    paths = sorted(str(p) for p in data.glob("MT_*/Imgs/*.jpg"))
    cache = REPO / "benchmarks" / "results" / "magnetic-tile-spots.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if sorted(cached) == paths:
            return cached
    found = find_near_duplicates(paths, loader=load_image, progress=False)
    groups = {path: int(g) for path, g in zip(paths, found.group_of)}
    cache.parent.mkdir(exist_ok=True)
    cache.write_text(json.dumps(groups))
    return groups


def _grouped_free_split(data: Path, free: list[Path]) -> tuple[list[Path], list[Path]]:
    """70% of the all-good spots (seeded order) train; the rest, and good images of spots that
    also have a defective image, test."""
    groups = spot_groups(data)
    defect_spots = {g for p, g in groups.items() if "MT_Free" not in p}
    spots = sorted({groups[str(p)] for p in free} - defect_spots)
    order = np.random.default_rng(0).permutation(len(spots))
    train_spots = {spots[i] for i in order[: int(round(len(spots) * TRAIN_FRACTION))]}
    train = [p for p in free if groups[str(p)] in train_spots]
    return train, [p for p in free if groups[str(p)] not in train_spots]


def reshot_in_training(data: Path, train: list[Path], test: list[tuple[Path, str]]) -> dict:
    """How many test images of each kind have a re-shot of the same spot among the training
    images."""
    groups = spot_groups(data)
    seen = {groups[str(p)] for p in train}
    counts: dict[str, list[int]] = {}
    for path, label in test:
        kind = "good" if label == "good" else "defective"
        hit, total = counts.get(kind, [0, 0])
        counts[kind] = [hit + (groups[str(path)] in seen), total + 1]
    return counts


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: kilobytes


def run_model(name: str, data: Path, subsample: int, options: dict, how: str = "name"
              ) -> dict:
    """Fit and evaluate one model in this process; returns the figures as a dict."""
    from defectscope.data import load_image, load_mask
    from defectscope.evaluation.metrics import auroc
    from defectscope.evaluation.pixel_metrics import aupro, pixel_auroc
    from defectscope.models import create_model

    train, test = split(data, subsample, how)
    model = create_model(name, **options)
    start = time.perf_counter()
    model.fit(load_image(path) for path in train)
    fit_s = time.perf_counter() - start
    fit_peak = peak_mb()

    scores, labels, maps, masks, latency, parts = [], [], [], [], [], []
    for path, label in test:
        image = load_image(path)
        start = time.perf_counter()
        score, anomaly_map, timings = model.anomaly(image)
        latency.append((time.perf_counter() - start) * 1e3)
        parts.append(timings)
        scores.append(score)
        labels.append(label)
        maps.append(anomaly_map.astype(np.float16))  # halves the memory the maps take
        masks.append(load_mask(path.with_suffix(".png"), image.shape[:2], image_path=path))
    scores, labels = np.asarray(scores), np.asarray(labels)
    is_defect = labels != "good"
    good = labels == "good"
    per_class = {
        c: auroc(np.r_[scores[good], scores[labels == c]],
                 np.r_[np.zeros(good.sum(), bool), np.ones((labels == c).sum(), bool)])
        for c in CLASSES
    }
    maps32 = [m.astype(np.float32) for m in maps]
    bank = getattr(model, "memory_bank_", None)
    # Uneven masks hold ~70% of all defect pixels, so they dominate the pooled pixel AUROC.
    keep = [i for i, label in enumerate(labels) if label != "Uneven"]
    pixel_without_uneven = pixel_auroc([maps32[i] for i in keep], [masks[i] for i in keep])
    return {
        "model": name,
        "split": how,
        "options": options,
        "config": model.config.to_dict(),
        "image_auroc": auroc(scores, is_defect),
        "pixel_auroc": pixel_auroc(maps32, masks),
        "pixel_auroc_without_uneven": pixel_without_uneven,
        "aupro": aupro(maps32, masks),
        "per_class": per_class,
        "fit_s": fit_s,
        "n_train": len(train),
        "n_test": len(test),
        "bank_size": int(len(bank)) if bank is not None else None,
        "ms_median": float(np.median(latency)),
        "ms_p95": float(np.percentile(latency, 95)),
        "ms_parts": {k: float(np.median([t[k] for t in parts])) for k in parts[0]},
        "fit_peak_mb": fit_peak,
        "peak_mb": peak_mb(),
    }


def _fmt(value, spec=".3f") -> str:
    return "-" if value is None else format(value, spec)


def print_table(results: list[dict]) -> None:
    rows = [
        ("image AUROC", lambda r: _fmt(r["image_auroc"])),
        ("pixel AUROC", lambda r: _fmt(r["pixel_auroc"])),
        ("  without Uneven images", lambda r: _fmt(r.get("pixel_auroc_without_uneven"))),
        ("AUPRO (FPR<=0.3)", lambda r: _fmt(r["aupro"])),
        *[(f"  image AUROC {c}", lambda r, c=c: _fmt(r["per_class"][c])) for c in CLASSES],
        ("fit seconds", lambda r: _fmt(r["fit_s"], ".1f")),
        ("training images", lambda r: str(r["n_train"])),
        ("test images", lambda r: str(r["n_test"])),
        ("memory bank rows", lambda r: _fmt(r["bank_size"], "d")),
        ("ms/image median (batch 1)", lambda r: _fmt(r["ms_median"], ".1f")),
        ("ms/image p95", lambda r: _fmt(r["ms_p95"], ".1f")),
        *[(f"  median ms {k}", lambda r, k=k: _fmt(r["ms_parts"][k], ".1f"))
          for k in ("preprocess", "backbone", "scoring", "anomaly_map")],
        ("peak memory MB (fit)", lambda r: _fmt(r["fit_peak_mb"], ".0f")),
        ("peak memory MB (all)", lambda r: _fmt(r["peak_mb"], ".0f")),
    ]
    header = f"{'':28}" + "".join(f"{r['model']:>14}" for r in results)
    print(header)
    for label, get in rows:
        print(f"{label:28}" + "".join(f"{get(r):>14}" for r in results))
    if results[0].get("split", "name") != "name":
        return
    print("\nAnomalib 2.7 on the same split (EfficientNet-Lite0):")
    for name, anchor in ANCHORS.items():
        print(f"  {name}: image AUROC {anchor['image_auroc']:.3f}, "
              f"pixel AUROC {anchor['pixel_auroc']:.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["patchcore", "padim"])
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--subsample", type=int, default=1, help="keep every N-th image")
    parser.add_argument("--options", default="{}", help="JSON model options, for experiments")
    parser.add_argument("--split", choices=("name", "grouped"), default="name",
                        help="name: the fixed name-sorted split (default); grouped: each spot's "
                             "exposures on one side")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # run one model, print JSON
    args = parser.parse_args(argv)
    if not (args.data / "MT_Free" / "Imgs").is_dir():
        print(f"Magnetic Tile data not found at {args.data} (expected MT_Free/Imgs/*.jpg there); "
              "pass --data PATH or set DEFECTSCOPE_SHARED_DATA", file=sys.stderr)
        return 2
    options = json.loads(args.options)
    if args.worker:
        result = run_model(args.worker, args.data, args.subsample, options, args.split)
        print("RESULT " + json.dumps(result))
        return 0
    results = []
    for name in args.models:
        command = [sys.executable, __file__, "--worker", name, "--data", str(args.data),
                   "--subsample", str(args.subsample), "--options", args.options,
                   "--split", args.split]
        done = subprocess.run(command, capture_output=True, text=True)
        lines = [l for l in done.stdout.splitlines() if l.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            print(f"{name} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(lines[-1][len("RESULT "):]))
    print(f"Magnetic Tile, {args.data}, split {args.split}, subsample {args.subsample}\n")
    print_table(results)
    train, test = split(args.data, args.subsample, args.split)
    for kind, (hit, total) in reshot_in_training(args.data, train, test).items():
        print(f"{kind} test images with a re-shot of the same spot in training: {hit} of {total}")
    for result in results:
        print("JSON " + json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
