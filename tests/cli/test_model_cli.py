"""The CLI contract other tools depend on: train, test --report, predict --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from defectscope.cli import main

from tests.conftest import save

FAST = ["--image-size", "64", "--set", "max_side=96", "--quiet"]


@pytest.fixture
def model_dir(tiny_mvtec, tmp_path):
    out = tmp_path / "model"
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", "patchcore",
                 "--out", str(out), *FAST]) == 0
    return out


def test_test_writes_the_report_contract(model_dir, tiny_mvtec, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    assert main(["test", "--model", str(model_dir), "--data", str(tiny_mvtec), "--format",
                 "mvtec", "--report", str(report_path), "--quiet"]) == 0
    report = json.loads(report_path.read_text())
    for key in ["image_auroc", "pixel_auroc", "average_precision", "f1", "precision", "recall",
                "threshold", "n_images", "aupro", "confusion_matrix", "per_type_recall"]:
        assert key in report
    assert report["n_images"] == 8
    assert report["image_auroc"] == 1.0
    assert report["pixel_auroc"] > 0.9
    assert (tmp_path / "report.html").is_file()
    assert list((tmp_path / "report_files").glob("*.png"))
    assert "image AUROC" in capsys.readouterr().out


def test_predict_json_lines_and_heatmaps(model_dir, tiny_mvtec, tmp_path, capsys):
    heatmaps = tmp_path / "heat"
    assert main(["predict", "--model", str(model_dir), str(tiny_mvtec / "test" / "good"),
                 str(tiny_mvtec / "test" / "blob"), "--json", "--heatmaps", str(heatmaps)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 8
    assert all({"path", "verdict", "score"} <= row.keys() for row in rows)
    verdicts = {row["path"].split("/")[-2]: set() for row in rows}
    for row in rows:
        verdicts[row["path"].split("/")[-2]].add(row["verdict"])
    assert verdicts["blob"] == {"NG"}
    assert len(list(heatmaps.glob("*.png"))) == 8


def test_predict_marks_unreadable_images_unsure_and_exits_1(model_dir, tmp_path, capsys):
    folder = tmp_path / "incoming"
    from tests.conftest import good_part

    save(folder / "a.png", good_part(1))
    (folder / "b.jpg").write_text("this is not a JPEG")
    assert main(["predict", "--model", str(model_dir), str(folder), "--json"]) == 1
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["verdict"] for row in rows][1] == "UNSURE"
    assert rows[1]["score"] is None and "b.jpg" in rows[1]["error"]


@pytest.mark.parametrize("argv, message", [
    (["predict", "--model", "/no/such/model", "x.png"], "no such model folder"),
    (["train", "--data", "/no/such/data", "--model", "patchcore", "--out", "/tmp/x"], "/no/such/data"),
])
def test_bad_input_gives_one_clear_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_unknown_model_name(tiny_mvtec, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_mvtec), "--model", "nope", "--out",
                 str(tmp_path / "m")]) == 2
    assert "known models" in capsys.readouterr().err


def test_missing_predict_input(model_dir, tmp_path, capsys):
    assert main(["predict", "--model", str(model_dir), str(tmp_path / "missing.png")]) == 2
    assert "missing.png" in capsys.readouterr().err


@pytest.mark.parametrize("command", [[], ["train"], ["test"], ["predict"], ["data"], ["demo"],
                                     ["data", "import"], ["data", "split"], ["data", "info"]])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    assert "usage: defectscope" in capsys.readouterr().out


def test_predict_lists_skipped_files_and_refuses_corrupt_and_oversized_images(
        model_dir, tmp_path, capsys):
    from tests.conftest import good_part
    from tests.fakes import write_corrupt_jpeg

    folder = tmp_path / "batch"
    save(folder / "a.png", good_part(1))
    write_corrupt_jpeg(folder / "band.jpg", size=(64, 64))
    (folder / "notes.txt").write_text("shift 2")
    (folder / "logo.gif").write_bytes(b"GIF89a")
    assert main(["predict", "--model", str(model_dir), str(folder), "--json"]) == 1
    captured = capsys.readouterr()
    rows = {Path(row["path"]).name: row for row in map(json.loads, captured.out.splitlines())}
    assert set(rows) == {"a.png", "band.jpg"}
    assert rows["band.jpg"]["verdict"] == "UNSURE" and rows["band.jpg"]["failure"] == "unreadable"
    assert "JPEG scan data is corrupt" in rows["band.jpg"]["error"]
    assert rows["a.png"]["failure"] is None and rows["a.png"]["error"] is None
    assert "skipped" in captured.err and "notes.txt" in captured.err and "logo.gif" in captured.err
    assert "2 file(s) skipped" in captured.err

    assert main(["predict", "--model", str(model_dir), str(folder / "a.png"), "--json",
                 "--max-pixels", "100"]) == 1
    row = json.loads(capsys.readouterr().out)
    assert row["verdict"] == "UNSURE" and row["failure"] == "refused"
    assert "the limit is 100 pixels" in row["error"]


def test_test_on_an_unsplit_batch_scores_every_unseen_image_and_says_so(
        model_dir, tiny_mvtec, tmp_path, capsys):
    import shutil

    from tests.conftest import defective_part, good_part

    batch = tmp_path / "new-batch"  # a folder-per-class batch, never split
    for i in range(3):
        save(batch / "good" / f"g{i}.png", good_part(900 + i))
        save(batch / "blob" / f"b{i}.png", defective_part(950 + i)[0])
    (batch / "good").mkdir(exist_ok=True)
    shutil.copy(tiny_mvtec / "train" / "good" / "000.png", batch / "good" / "seen.png")
    report_path = tmp_path / "batch-report.json"
    assert main(["test", "--model", str(model_dir), "--data", str(batch), "--format", "folder",
                 "--report", str(report_path), "--quiet", "--no-plots"]) == 0
    report = json.loads(report_path.read_text())
    assert report["split"] == "all unseen (no splits)"
    assert report["n_images"] == 6 and report["n_left_out_seen_in_training"] == 1
    out = capsys.readouterr().out
    assert "note: the dataset has no splits" in out
    assert "no splits" in (tmp_path / "batch-report.html").read_text()


def test_max_minutes_bounds_network_training_through_its_config():
    from defectscope.cli import build_parser
    from defectscope.cli.model import model_options

    args = build_parser().parse_args(["train", "--model", "classifier", "--data", "x", "--out",
                                      "y", "--max-minutes", "2"])
    assert model_options(args)["max_train_seconds"] == 120.0
    args = build_parser().parse_args(["train", "--model", "patchcore", "--data", "x", "--out",
                                      "y", "--max-minutes", "2"])
    assert "max_train_seconds" not in model_options(args)  # the anomaly path bounds its own fit
    args = build_parser().parse_args(["train", "--model", "classifier", "--data", "x", "--out",
                                      "y", "--max-minutes", "-1"])
    with pytest.raises(Exception, match="--max-minutes must be > 0"):
        model_options(args)


def test_train_defects_folder_weighs_in_calibration(tiny_mvtec, tmp_path, capsys):
    from tests.conftest import defective_part, save

    for i in range(3):
        save(tmp_path / "defects" / "blob" / f"{i}.png", defective_part(9100 + i)[0])
    out = tmp_path / "model"
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model", "padim",
                 "--out", str(out), "--defects", str(tmp_path / "defects"), *FAST]) == 0
    bundle = json.loads((out / "bundle.json").read_text())
    assert bundle["calibration"]["n_defect"] == 3
    assert main(["train", "--data", str(tiny_mvtec), "--format", "mvtec", "--model",
                 "classifier", "--out", str(tmp_path / "c"), "--defects",
                 str(tmp_path / "defects"), *FAST]) == 2
    assert "--defects is for the anomaly models" in capsys.readouterr().err
