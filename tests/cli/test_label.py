"""``defectscope label propose`` on the packaged Magnetic Tile sample with a tiny PatchCore."""

from __future__ import annotations

import json
from pathlib import Path

import cv2

from defectscope.cli import main
from defectscope.data.image_io import load_image

SAMPLE = Path(__file__).resolve().parents[2] / "src" / "defectscope" / "sample_data" / "magnetic_tile"


def test_propose_writes_a_mask_at_image_size_and_boxes(tmp_path, capsys):
    model_dir = tmp_path / "model"
    assert main(["train", "--data", str(SAMPLE), "--format", "mvtec", "--model", "patchcore",
                 "--out", str(model_dir), "--quiet"]) == 0
    image = sorted((SAMPLE / "test" / "blowhole").iterdir())[0]
    capsys.readouterr()
    assert main(["label", "propose", "--model", str(model_dir), str(image),
                 "--out", str(tmp_path / "out"), "--json", "--force"]) == 0
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    mask = cv2.imread(row["mask"], cv2.IMREAD_GRAYSCALE)
    assert mask.shape == load_image(image).shape[:2]
    assert set(map(int, set(mask.ravel()))) <= {0, 255}
    assert json.loads((tmp_path / "out" / f"{image.stem}_boxes.json").read_text()) == row["boxes"]


def test_a_bad_image_is_one_error_line(tmp_path, capsys):
    model_dir = tmp_path / "model"
    main(["train", "--data", str(SAMPLE), "--format", "mvtec", "--model", "patchcore",
          "--out", str(model_dir), "--quiet"])
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    capsys.readouterr()
    assert main(["label", "propose", "--model", str(model_dir), str(bad)]) == 1
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{bad}: error:")
