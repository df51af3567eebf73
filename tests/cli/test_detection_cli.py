"""train / test / predict with a box-finding model, on a DeepPCB-layout folder of synthetic pairs.

The pairs come from the reference model's tests: boards with a cut trace (open), a bridge
(short), a blob (copper) and a hole (pin-hole) at known boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from defectscope.cli import main
from defectscope.data.boxes.deeppcb import DEEPPCB_CLASSES

from tests.models.test_reference import FAST, pair

TYPE_ID = {name: i + 1 for i, name in enumerate(DEEPPCB_CLASSES)}


def write_deeppcb(root, seeds_per_group: dict[str, range]) -> None:
    for group, seeds in seeds_per_group.items():
        images, labels = root / f"group{group}" / group, root / f"group{group}" / f"{group}_not"
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for seed in seeds:
            part, template, boxes = pair(seed)
            cv2.imwrite(str(images / f"{seed}_test.png"), part)
            cv2.imwrite(str(images / f"{seed}_temp.png"), template)
            (labels / f"{seed}.txt").write_text("".join(
                f"{int(b.x1)},{int(b.y1)},{int(b.x2)},{int(b.y2)},{TYPE_ID[b.label]}\n"
                for b in boxes))


@pytest.fixture(scope="module")
def pcb(tmp_path_factory):
    root = tmp_path_factory.mktemp("pcb")
    write_deeppcb(root, {"100": range(0, 14), "200": range(14, 17), "300": range(17, 20)})
    return root


@pytest.fixture(scope="module")
def reference_model(pcb, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "reference"
    options = [arg for key, value in FAST.items() for arg in ("--set", f"{key}={value}")]
    assert main(["train", "--model", "reference", "--data", str(pcb), "--format", "deeppcb",
                 "--out", str(out), "--quiet", *options]) == 0
    return out


def test_train_records_the_dataset_split_and_threshold(reference_model):
    info = json.loads((reference_model / "bundle.json").read_text())
    assert info["task"] == "detection" and info["model"]["name"] == "reference"
    assert info["calibrated_on"] == "val"
    assert 0.0 <= info["threshold"] <= 1.0
    dataset = json.loads((reference_model / "manifest.json").read_text())
    splits = {s["group"]: s["split"] for s in dataset["samples"]}
    assert sorted(splits.values()) == ["test", "train", "val"]  # one group per split


def test_test_reports_map_on_the_unseen_split_only(reference_model, pcb, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    assert main(["test", "--model", str(reference_model), "--data", str(pcb), "--format",
                 "deeppcb", "--report", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    for key in ("map50", "map50_95", "per_class_ap50", "recall", "precision", "threshold",
                "n_images", "box_precision", "box_recall", "confusion_matrix"):
        assert key in report
    dataset = json.loads((reference_model / "manifest.json").read_text())
    assert report["n_images"] == sum(s["split"] == "test" for s in dataset["samples"])
    assert report["map50"] > 0.8  # the synthetic defects are easy; a broken route scores ~0
    assert report["recall"] == 1.0
    assert (tmp_path / "report.html").is_file()
    assert list((tmp_path / "report_files").rglob("*.png"))
    assert "mAP@0.5" in capsys.readouterr().out


def test_predict_with_a_template_prints_boxes(reference_model, pcb, tmp_path, capsys):
    image = next((pcb / "group300" / "300").glob("*_test.png"))
    template = image.with_name(image.name.replace("_test", "_temp"))
    boxes_dir = tmp_path / "boxes"
    assert main(["predict", "--model", str(reference_model), str(image), "--template",
                 str(template), "--json", "--heatmaps", str(boxes_dir)]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["verdict"] == "NG"
    assert {d["label"] for d in row["detections"]} <= set(DEEPPCB_CLASSES)
    assert row["detections"] and list(boxes_dir.glob("*.png"))


def test_predict_without_the_template_is_never_ok(reference_model, pcb, capsys):
    image = next((pcb / "group300" / "300").glob("*_test.png"))
    assert main(["predict", "--model", str(reference_model), str(image), "--json"]) == 1
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["verdict"] == "NG" and row["failure"] == "inference"  # the one fail-safe policy
    assert "template" in row["error"]


def test_a_detection_format_with_an_image_model_is_a_clear_error(pcb, tmp_path, capsys):
    code = main(["train", "--model", "patchcore", "--data", str(pcb), "--format", "deeppcb",
                 "--out", str(tmp_path / "m"), "--quiet"])
    assert code != 0
    assert "detection" in capsys.readouterr().err


def test_a_golden_template_in_the_model_inspects_parts_without_one(reference_model, pcb,
                                                                    tmp_path, capsys):
    from defectscope.bundle import load_bundle, save_bundle
    from defectscope.data.image_io import load_image

    image = next((pcb / "group300" / "300").glob("*_test.png"))
    template = load_image(image.with_name(image.name.replace("_test", "_temp")))
    bundle = load_bundle(reference_model)
    with_template = bundle.model.detect(load_image(image), template)
    save_bundle(bundle.model.set_golden_template(template), tmp_path / "golden",
                manifest=bundle.manifest(), extra={"task": "detection"})
    reloaded = load_bundle(tmp_path / "golden").model
    assert reloaded.detect(load_image(image)) == with_template
    assert main(["predict", "--model", str(tmp_path / "golden"), str(image), "--json"]) == 0
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert row["verdict"] == "NG" and row["detections"]


def test_template_with_an_image_model_is_refused(pcb, tmp_path, capsys):
    template = next((pcb / "group300" / "300").glob("*_temp.png"))
    assert main(["train", "--model", "padim", "--data", str(pcb), "--format", "folder", "--out",
                 str(tmp_path / "m"), "--template", str(template), "--quiet"]) != 0
    assert "--template is for the reference model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def yolo_parts(tmp_path_factory):
    """A YOLO layout (images/, labels/, data.yaml) of the detector tests' synthetic parts, with
    its given train/val split, like NEU-DET."""
    from PIL import Image

    from tests.models.test_detector import CLASSES, SIZE, _part

    root = tmp_path_factory.mktemp("yolo")
    for seed in range(32):
        split = "train" if seed < 24 else "val"
        image, boxes = _part(seed)
        (root / "images" / split).mkdir(parents=True, exist_ok=True)
        (root / "labels" / split).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / "images" / split / f"{seed:02d}.png")
        (root / "labels" / split / f"{seed:02d}.txt").write_text("".join(
            f"{CLASSES.index(b.label)} {(b.x1 + b.x2) / 2 / SIZE} {(b.y1 + b.y2) / 2 / SIZE} "
            f"{(b.x2 - b.x1) / SIZE} {(b.y2 - b.y1) / SIZE}\n" for b in boxes))
    (root / "data.yaml").write_text(f"names: {list(CLASSES)}\n")
    return root


def test_detector_trains_on_yolo_and_reports_the_given_val_split(yolo_parts, tmp_path, capsys):
    from tests.models.test_detector import FAST as DETECTOR_FAST

    options = [arg for key, value in DETECTOR_FAST.items() for arg in ("--set", f"{key}={value}")]
    out = tmp_path / "detector"
    assert main(["train", "--model", "detector", "--data", str(yolo_parts), "--format", "yolo",
                 "--out", str(out), "--quiet", *options]) == 0
    info = json.loads((out / "bundle.json").read_text())
    assert info["calibrated_on"] == "train"  # val is the reported split: never used to select
    report_path = tmp_path / "report.json"
    assert main(["test", "--model", str(out), "--data", str(yolo_parts), "--format", "yolo",
                 "--report", str(report_path), "--quiet", "--no-plots"]) == 0
    report = json.loads(report_path.read_text())
    assert report["split"] == "val" and report["n_images"] == 8
    assert report["map50"] is not None and 0.0 <= report["map50"] <= 1.0
    assert "mAP@0.5" in capsys.readouterr().out
    capsys.readouterr()
    assert main(["export", "--model", str(out)]) == 0  # FCOS head outputs + numpy decoding
    assert "exported detector" in capsys.readouterr().out
    record = json.loads((out / "onnx" / "export.json").read_text())
    assert record["model"] == "detector" and all(row["ok"] for row in record["references"])
    assert any(row["detections"] for row in record["references"])


def test_reshot_options_are_refused_for_box_models(reference_model, pcb, tmp_path, capsys):
    code = main(["train", "--model", "reference", "--data", str(pcb), "--format", "deeppcb",
                 "--out", str(tmp_path / "m"), "--near-duplicates"])
    assert code == 2 and "--near-duplicates groups image-label datasets" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    code = main(["test", "--model", str(reference_model), "--data", str(pcb), "--format",
                 "deeppcb", "--report", str(tmp_path / "r.json"), "--check-leaks"])
    assert code == 2 and "--check-leaks works on image-label datasets" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_train_records_reference_pairs_and_export_and_run_use_the_runtime(reference_model, pcb,
                                                                          tmp_path, capsys):
    from defectscope.bundle import check_references, load_bundle, save_bundle
    from defectscope.data.image_io import load_image

    info = json.loads((reference_model / "bundle.json").read_text())
    assert info["references"] and all("template" in row for row in info["references"])
    bundle = load_bundle(reference_model)
    assert check_references(bundle, tolerance=0.0) == []
    # the product's golden template stored in the model: the line inspects parts without one
    image = next((pcb / "group300" / "300").glob("*_test.png"))
    template = load_image(image.with_name(image.name.replace("_test", "_temp")))
    golden = save_bundle(bundle.model.set_golden_template(template), tmp_path / "golden",
                         manifest=bundle.manifest(), references=bundle.references,
                         extra={"task": "detection"})
    assert main(["export", "--model", str(golden)]) == 0
    out = capsys.readouterr().out
    assert "exported reference" in out and "same detections, largest box difference" in out
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / image.name).write_bytes(image.read_bytes())
    (incoming / "template.png").write_bytes(
        image.with_name(image.name.replace("_test", "_temp")).read_bytes())
    assert main(["run", "--model", str(golden), "--source", f"glob:{incoming}/*.png", "--json",
                 "--db", f"sqlite:///{tmp_path / 'results.db'}", "--no-archive"]) == 0
    out, err = capsys.readouterr()
    assert "torch path" not in err
    rows = {Path(row["source"]).name: row for row in map(json.loads, out.splitlines())}
    torch_model = load_bundle(golden).model
    for name, row in rows.items():
        expected = torch_model.predict(load_image(incoming / name))
        assert row["verdict"] == expected.verdict.value
        assert row["defect_types"] == list(dict.fromkeys(d.label for d in expected.detections))
    assert rows[image.name]["verdict"] == "NG" and rows["template.png"]["verdict"] == "OK"


def test_test_on_a_new_unsplit_deeppcb_batch_scores_every_image(reference_model, tmp_path,
                                                                 capsys):
    batch = tmp_path / "batch"
    write_deeppcb(batch, {"400": range(40, 44)})  # a new batch: images the model never saw
    report_path = tmp_path / "report.json"
    assert main(["test", "--model", str(reference_model), "--data", str(batch), "--format",
                 "deeppcb", "--report", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    assert report["split"] == "all unseen (no splits)" and report["n_images"] == 4
    assert "note: the dataset has no splits" in capsys.readouterr().out
