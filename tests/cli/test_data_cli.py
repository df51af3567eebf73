"""Tests for ``defectscope data import|info|split`` through ``defectscope.cli.main``."""

import json

import numpy as np
import pytest
from PIL import Image

from defectscope.cli import main
from defectscope.data.images.manifest import Manifest


def write(path, value=0, size=(8, 10)):
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.full((*size, 3), value, dtype=np.uint8)
    array[0, 0] = (value * 7 + len(path.name)) % 256
    Image.fromarray(array).save(path)


@pytest.fixture
def folder_dataset(tmp_path):
    root = tmp_path / "parts"
    for i in range(12):
        write(root / "OK" / f"lot{i % 4}_{i}.png", i)
    for i in range(6):
        write(root / "Scratch" / f"lot{i % 3}_{i}.jpg", 100 + i)
    (root / "notes.txt").write_text("hi")
    return root


@pytest.fixture
def mvtec_dataset(tmp_path):
    root = tmp_path / "bottle"
    for i in range(3):
        write(root / "train" / "good" / f"{i}.png", i)
    write(root / "test" / "crack" / "0.png", 50)
    write(root / "ground_truth" / "crack" / "0_mask.png", 255)
    return root


def test_import_folder_prints_summary_and_writes_manifest(folder_dataset, tmp_path, capsys):
    out = tmp_path / "m" / "parts.json"
    code = main(
        [
            "data",
            "import",
            "--data",
            str(folder_dataset),
            "--out",
            str(out),
            "--group-pattern",
            r"^(lot\d+)_",
            "--name",
            "my parts",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0 and out.is_file()
    assert "my parts" in text and "notes.txt: not an image" in text and "Wrote" in text
    manifest = Manifest.load(out)
    assert manifest.name == "my parts" and manifest.labels == ("good", "scratch")
    assert {s.group for s in manifest.samples} == {"lot0", "lot1", "lot2", "lot3"}
    assert not list(out.parent.glob("*.tmp"))


def test_import_autodetects_mvtec(mvtec_dataset, tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["data", "import", "--data", str(mvtec_dataset), "--out", str(out)]) == 0
    assert "format mvtec" in capsys.readouterr().out
    assert Manifest.load(out).counts()["crack"]["test"] == 1


def test_import_good_class_and_mask_rule(folder_dataset, tmp_path):
    out = tmp_path / "m.json"
    args = [
        "data",
        "import",
        "--data",
        str(folder_dataset),
        "--format",
        "folder",
        "--out",
        str(out),
        "--good-class",
        "scratch",
        "--mask-rule",
        "none",
    ]
    assert main(args) == 0
    assert Manifest.load(out).labels == ("good", "ok")


def test_import_bad_image_exits_2_and_skip_bad_continues(folder_dataset, tmp_path, capsys):
    (folder_dataset / "OK" / "broken.png").write_text("not a png")
    out = tmp_path / "m.json"
    assert main(["data", "import", "--data", str(folder_dataset), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert "broken.png" in error and "--skip-bad" in error and not out.exists()
    assert (
        main(["data", "import", "--data", str(folder_dataset), "--out", str(out), "--skip-bad"])
        == 0
    )
    assert "OK/broken.png" in capsys.readouterr().out


def test_import_errors_exit_2(tmp_path, mvtec_dataset, capsys):
    assert (
        main(
            ["data", "import", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x.json")]
        )
        == 2
    )
    assert "does not exist" in capsys.readouterr().err
    args = [
        "data",
        "import",
        "--data",
        str(mvtec_dataset),
        "--out",
        str(tmp_path / "x.json"),
        "--group-pattern",
        "x",
    ]
    assert main(args) == 2
    assert "does not take option" in capsys.readouterr().err


def test_split_then_info(folder_dataset, tmp_path, capsys):
    first = tmp_path / "m.json"
    second = tmp_path / "split.json"
    main(
        [
            "data",
            "import",
            "--data",
            str(folder_dataset),
            "--out",
            str(first),
            "--group-pattern",
            r"^(lot\d+)_",
        ]
    )
    capsys.readouterr()
    assert (
        main(
            [
                "data",
                "split",
                str(first),
                "--out",
                str(second),
                "--fractions",
                "0.5,0.25,0.25",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "train" in text and "Wrote" in text
    split = Manifest.load(second)
    assert split.parent_version == Manifest.load(first).version_id
    assert all(s.split is not None for s in split.samples)
    assert main(["data", "info", str(second)]) == 0
    assert split.version_id in capsys.readouterr().out


def test_split_warns_about_tiny_class(mvtec_dataset, tmp_path, capsys):
    first, second = tmp_path / "m.json", tmp_path / "s.json"
    main(["data", "import", "--data", str(mvtec_dataset), "--out", str(first)])
    capsys.readouterr()
    assert main(["data", "split", str(first), "--out", str(second)]) == 0
    assert "'crack'" in capsys.readouterr().out


@pytest.mark.parametrize("fractions", ["0.5,0.5", "a,b,c"])
def test_split_bad_fractions_exit_2(folder_dataset, tmp_path, capsys, fractions):
    first = tmp_path / "m.json"
    main(["data", "import", "--data", str(folder_dataset), "--out", str(first)])
    capsys.readouterr()
    assert (
        main(
            [
                "data",
                "split",
                str(first),
                "--out",
                str(tmp_path / "s.json"),
                "--fractions",
                fractions,
            ]
        )
        == 2
    )
    assert "fractions" in capsys.readouterr().err


def test_info_verify_detects_changes(folder_dataset, tmp_path, capsys):
    out = tmp_path / "m.json"
    main(["data", "import", "--data", str(folder_dataset), "--out", str(out)])
    assert main(["data", "info", str(out), "--verify"]) == 0
    assert "all files match" in capsys.readouterr().out
    write(folder_dataset / "OK" / "lot0_0.png", 99)
    assert main(["data", "info", str(out), "--verify"]) == 1
    assert "lot0_0.png: content changed" in capsys.readouterr().out


def test_info_on_tampered_manifest_exits_2(folder_dataset, tmp_path, capsys):
    out = tmp_path / "m.json"
    main(["data", "import", "--data", str(folder_dataset), "--out", str(out)])
    document = json.loads(out.read_text())
    document["samples"][0]["label"] = "scratch"
    out.write_text(json.dumps(document))
    assert main(["data", "info", str(out)]) == 2
    assert "does not match the content" in capsys.readouterr().err


def test_help_texts(capsys):
    for command in (
        ["data", "--help"],
        ["data", "import", "--help"],
        ["data", "info", "--help"],
        ["data", "split", "--help"],
    ):
        with pytest.raises(SystemExit) as info:
            main(command)
        assert info.value.code == 0
    text = capsys.readouterr().out
    assert "--skip-bad" in text and "--verify" in text and "--fractions" in text
    assert main(["data"]) == 2
