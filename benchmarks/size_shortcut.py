"""How much an anomaly dataset's image sizes alone tell good from defective test images.

A confound check for the anomaly suite: if the defective test images come in other sizes than
the good ones, a model that saw the size could rank them without looking at any defect. For
each dataset this prints the sizes of the training goods, the good and the defective test
images, and the image AUROC of the size alone: a test image scores 1 when its size is not the
training goods' most common size, else 0. The models here resize every image to the network
input, so they do not see the size directly; this says whether the test split would reward one
that did.

    .venv/bin/python benchmarks/size_shortcut.py [--datasets bsdata battery-weld ...]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anomaly_suite import BUILT_IN, load_manifest, shared_data  # noqa: E402


def size_of(path: Path) -> tuple[int, int]:
    """(height, width) from the file header (no full decode)."""
    from PIL import Image

    with Image.open(path) as image:
        return image.height, image.width


def main(argv=None) -> int:
    from defectscope.evaluation.metrics import auroc

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(BUILT_IN))
    args = parser.parse_args(argv)
    for name in args.datasets:
        root = shared_data() / name
        if not root.exists():
            print(f"# {name}: {root} absent, skipped")
            continue
        manifest = load_manifest(name, root, 1)
        samples = manifest.samples
        sizes = {s.path: size_of(manifest.path_of(s)) for s in samples}
        train = collections.Counter(sizes[s.path] for s in samples if s.split == "train")
        common, n_common = train.most_common(1)[0]
        test = [s for s in samples if s.split == "test"]
        scores = [float(sizes[s.path] != common) for s in test]
        defective = [not s.is_good for s in test]
        print(f"\n{name}: training goods {sum(train.values())}, most common size "
              f"{common[0]}x{common[1]} ({n_common})")
        for label, keep in (("good", False), ("defective", True)):
            group = [sizes[s.path] for s, d in zip(test, defective) if d == keep]
            other = sum(size != common for size in group)
            print(f"  test {label}: {len(group)} images, {other} of another size; sizes "
                  + ", ".join(f"{h}x{w} ({n})" for (h, w), n in
                              collections.Counter(group).most_common(4)))
        value = auroc(scores, defective)
        direction = "defective" if value >= 0.5 else "good"
        print(f"  the size alone separates them with image AUROC {max(value, 1 - value):.3f} "
              f"(another size than the training goods' usual one means {direction})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
