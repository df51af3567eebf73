"""Tests for defectscope.data.images.importers on tiny synthetic MVTec and folder datasets."""

import shutil

import numpy as np
import pytest
from PIL import Image

from defectscope.data.images.importers import import_dataset, import_folder, import_mvtec
from defectscope.data.images.manifest import Manifest
from defectscope.errors import ConfigError, DataError


def skipped_map(result):
    return {s.path: s.reason for s in result.skipped}


def accounted(result, root):
    """Every non-hidden file under root is a sample image, a mask or skipped."""
    manifest = result.manifest
    used = {s.path for s in manifest.samples} | {
        s.mask_path for s in manifest.samples if s.mask_path
    }
    files = {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert files == used | set(skipped_map(result))
    assert not used & set(skipped_map(result))


# --- MVTec ----------------------------------------------------------------------------------


def test_mvtec_layout(mvtec_root):
    result = import_mvtec(mvtec_root)
    manifest = result.manifest
    assert manifest.root == mvtec_root and manifest.name == "bottle"
    assert manifest.counts()["good"] == {"train": 4, "val": 0, "test": 2, "unsplit": 0}
    assert manifest.counts()["scratch"]["test"] == 2
    dent = manifest.select(label="dent")[0]
    assert dent.path == "test/dent/000.jpg" and dent.mask_path == "ground_truth/dent/000.png"
    scratch = manifest.select(label="scratch")
    assert all(s.mask_path.endswith("_mask.png") and len(s.mask_sha256) == 64 for s in scratch)
    assert all(s.mask_path is None for s in manifest.select(good=True))
    assert skipped_map(result) == {"license.txt": "not an image"}
    assert result.warnings == ()
    accounted(result, mvtec_root)


def test_mvtec_missing_mask_and_orphan_mask_warn(mvtec_root, mask_writer):
    (mvtec_root / "ground_truth" / "scratch" / "001_mask.png").unlink()
    mask_writer(mvtec_root / "ground_truth" / "scratch" / "077_mask.png")
    result = import_mvtec(mvtec_root)
    sample = next(s for s in result.manifest.samples if s.path == "test/scratch/001.png")
    assert sample.mask_path is None
    assert any("test/scratch/001.png" in w and "no mask" in w for w in result.warnings)
    assert any("077_mask.png" in w for w in result.warnings)
    assert "ground_truth/scratch/077_mask.png" in skipped_map(result)
    accounted(result, mvtec_root)


@pytest.mark.parametrize("damage", ["missing", "empty"])
def test_mvtec_without_train_good(mvtec_root, damage):
    shutil.rmtree(mvtec_root / "train" / "good")
    if damage == "empty":
        (mvtec_root / "train" / "good").mkdir()
    with pytest.raises(DataError, match="train/good.*MVTec AD layout"):
        import_mvtec(mvtec_root)


def test_mvtec_mask_size_mismatch_is_bad(mvtec_root, mask_writer):
    mask_writer(mvtec_root / "ground_truth" / "scratch" / "000_mask.png", size=(5, 5))
    with pytest.raises(DataError, match="test/scratch/000.png.*5x5") as info:
        import_mvtec(mvtec_root)
    assert "--skip-bad" in str(info.value)
    result = import_mvtec(mvtec_root, on_bad="skip")
    reasons = skipped_map(result)
    assert "5x5" in reasons["test/scratch/000.png"]
    assert "ground_truth/scratch/000_mask.png" in reasons
    assert len(result.manifest.samples) == 8
    accounted(result, mvtec_root)


def test_mvtec_stray_files_are_skipped_with_reason(mvtec_root, image_writer):
    image_writer(mvtec_root / "train" / "scratch" / "x.png")
    image_writer(mvtec_root / "extra.png")
    (mvtec_root / ".DS_Store").write_text("hidden")
    result = import_mvtec(mvtec_root)
    reasons = skipped_map(result)
    assert "MVTec AD layout" in reasons["train/scratch/x.png"] and "extra.png" in reasons
    assert ".DS_Store" not in reasons


# --- bad files, shared by both importers ----------------------------------------------------


def _corrupt(root):
    """A text file named .jpg, a truncated JPEG and an empty PNG in the good class."""
    good = root / "MT_Free" / "Imgs"
    (good / "text.jpg").write_text("hello")
    Image.fromarray(np.zeros((64, 64, 3), np.uint8) + 7).save(good / "trunc.jpg")
    (good / "trunc.jpg").write_bytes((good / "trunc.jpg").read_bytes()[:300])
    (good / "empty.jpg").write_bytes(b"")


def test_bad_files_raise_one_error_listing_all(folder_root):
    _corrupt(folder_root)
    with pytest.raises(DataError) as info:
        import_folder(folder_root)
    message = str(info.value)
    for name in ("text.jpg", "trunc.jpg", "empty.jpg"):
        assert name in message
    assert "3 bad file" in message and 'on_bad="skip"' in message and "--skip-bad" in message


def test_bad_files_skipped_on_request(folder_root):
    _corrupt(folder_root)
    result = import_folder(folder_root, on_bad="skip")
    reasons = skipped_map(result)
    assert "truncated" in reasons["MT_Free/Imgs/trunc.jpg"].lower()
    assert "not a readable image" in reasons["MT_Free/Imgs/text.jpg"]
    assert "empty" in reasons["MT_Free/Imgs/empty.jpg"]
    assert len(result.manifest.samples) == 9
    accounted(result, folder_root)


def test_error_lists_first_20_and_a_count(tmp_path, image_writer):
    image_writer(tmp_path / "good" / "ok.png")
    for i in range(23):
        (tmp_path / "good" / f"bad{i:02d}.png").write_text("x")
    with pytest.raises(DataError, match=r"23 bad file.*\.\.\. and 3 more"):
        import_folder(tmp_path)


def test_on_bad_must_be_known(folder_root):
    with pytest.raises(ConfigError):
        import_folder(folder_root, on_bad="ignore")


# --- folder ---------------------------------------------------------------------------------


def test_folder_labels_masks_and_skips(folder_root):
    result = import_folder(folder_root)
    manifest = result.manifest
    assert manifest.counts() == {
        "blowhole": {"train": 0, "val": 0, "test": 0, "unsplit": 2},
        "crack": {"train": 0, "val": 0, "test": 0, "unsplit": 3},
        "good": {"train": 0, "val": 0, "test": 0, "unsplit": 4},
    }
    assert all(s.mask_path == s.path[:-4] + ".png" for s in manifest.samples)
    assert skipped_map(result) == {"README.md": "not an image"}
    assert manifest.source["importer"] == "folder"
    accounted(result, folder_root)


def test_folder_group_pattern(folder_root):
    result = import_folder(folder_root, group_pattern=r"^(part\d+)_")
    groups = {s.group for s in result.manifest.samples}
    assert groups == {"part0", "part1", "part2", "part3"}


def test_folder_group_pattern_whole_match_and_no_match(folder_root):
    result = import_folder(folder_root, group_pattern=r"part\d")
    assert {s.group for s in result.manifest.samples} == {"part0", "part1", "part2", "part3"}
    with pytest.raises(DataError, match="part0_MT_Free_0.jpg.*adjust the pattern"):
        import_folder(folder_root, group_pattern=r"^lot\d")
    with pytest.raises(ConfigError, match="not a valid regex"):
        import_folder(folder_root, group_pattern="(")


def test_folder_good_names_and_class_map(folder_root):
    result = import_folder(folder_root, good_names=("crack",))
    assert result.manifest.labels == ("blowhole", "free", "good")
    assert not any("no class is" in w for w in result.warnings)
    result = import_folder(folder_root, class_map={"MT_Blowhole": "hole"})
    assert result.manifest.labels == ("crack", "good", "hole")
    with pytest.raises(ConfigError, match="MT_Nope"):
        import_folder(folder_root, class_map={"MT_Nope": "x"})


def test_folder_without_good_class_warns(folder_root):
    shutil.rmtree(folder_root / "MT_Free")
    result = import_folder(folder_root)
    assert any("no class is 'good'" in w for w in result.warnings)


def test_folder_single_class(tmp_path, image_writer):
    image_writer(tmp_path / "ok" / "a.png")
    assert import_folder(tmp_path).warnings == ()
    shutil.rmtree(tmp_path / "ok")
    image_writer(tmp_path / "dent" / "a.png")
    result = import_folder(tmp_path)
    assert result.manifest.labels == ("dent",) and "only one class" in result.warnings[0]


def test_prefix_not_stripped_when_it_would_empty_a_label(tmp_path, image_writer):
    image_writer(tmp_path / "x_" / "a.png")
    image_writer(tmp_path / "x_b" / "a.png")
    assert import_folder(tmp_path).manifest.labels == ("x_", "x_b")


def test_folder_mask_rules(tmp_path, image_writer, mask_writer):
    image_writer(tmp_path / "good" / "g.png")
    image_writer(tmp_path / "dent" / "a.png")
    mask_writer(tmp_path / "dent" / "a_mask.png")
    image_writer(tmp_path / "dent" / "images" / "b.bmp")
    mask_writer(tmp_path / "dent" / "masks" / "b.png")
    auto = import_folder(tmp_path).manifest
    masks = {s.path: s.mask_path for s in auto.samples}
    assert masks == {
        "good/g.png": None,
        "dent/a.png": "dent/a_mask.png",
        "dent/images/b.bmp": "dent/masks/b.png",
    }
    explicit = import_folder(tmp_path, mask_rule="{stem}_mask.png")
    assert {s.path: s.mask_path for s in explicit.manifest.samples}[
        "dent/a.png"
    ] == "dent/a_mask.png"
    assert "dent/masks/b.png" in {s.path for s in explicit.manifest.samples}  # just an image now
    none = import_folder(tmp_path, mask_rule="none").manifest
    assert all(s.mask_path is None for s in none.samples) and len(none.samples) == 5


def test_folder_relative_mask_rule(tmp_path, image_writer, mask_writer):
    image_writer(tmp_path / "good" / "imgs" / "a.png")
    mask_writer(tmp_path / "good" / "gt" / "a.png")
    result = import_folder(tmp_path, mask_rule="../gt/{stem}.png")
    assert [(s.path, s.mask_path) for s in result.manifest.samples] == [
        ("good/imgs/a.png", "good/gt/a.png")
    ]


@pytest.mark.parametrize("rule", ["mask.png", "{name}.png"])
def test_bad_mask_rule(folder_root, rule):
    with pytest.raises(ConfigError, match="mask_rule"):
        import_folder(folder_root, mask_rule=rule)


def test_folder_orphan_mask_warns(tmp_path, image_writer, mask_writer):
    image_writer(tmp_path / "good" / "a.png")
    mask_writer(tmp_path / "good" / "zzz_mask.png")
    result = import_folder(tmp_path)
    assert "good/zzz_mask.png" in skipped_map(result)
    assert any("zzz_mask.png" in w for w in result.warnings)


def test_folder_mask_size_mismatch(folder_root, mask_writer):
    mask_writer(folder_root / "MT_Crack" / "Imgs" / "part1_MT_Crack_1.png", size=(3, 3))
    with pytest.raises(DataError, match="part1_MT_Crack_1.jpg.*3x3"):
        import_folder(folder_root)


def test_folder_bad_roots(tmp_path, image_writer):
    with pytest.raises(DataError, match="does not exist"):
        import_folder(tmp_path / "nope")
    file = tmp_path / "file.txt"
    file.write_text("x")
    with pytest.raises(DataError, match="not a dataset folder"):
        import_folder(file)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        import_folder(tmp_path / "empty")


def test_class_folder_without_images(folder_root):
    (folder_root / "MT_Fray" / "Imgs").mkdir(parents=True)
    (folder_root / "MT_Fray" / "notes.txt").write_text("todo")
    with pytest.raises(
        DataError, match="class folder .*MT_Fray has no images; remove it or add images"
    ):
        import_folder(folder_root)


def test_hidden_files_and_folders_ignored(folder_root, image_writer):
    image_writer(folder_root / "MT_Free" / ".cache" / "x.png")
    image_writer(folder_root / ".trash" / "y.png")
    (folder_root / "MT_Free" / "._part0.jpg").write_text("mac junk")
    result = import_folder(folder_root)
    assert len(result.manifest.samples) == 9 and set(skipped_map(result)) == {"README.md"}


def test_images_at_root_are_skipped(folder_root, image_writer):
    image_writer(folder_root / "loose.png")
    assert skipped_map(import_folder(folder_root))["loose.png"] == "not inside a class folder"


def test_uppercase_extensions_and_grayscale_16bit(tmp_path, image_writer):
    image_writer(tmp_path / "good" / "A.JPG")
    Image.fromarray(np.full((4, 4), 3000, np.uint16)).save(tmp_path / "good" / "b.png")
    assert len(import_folder(tmp_path).manifest.samples) == 2


def test_import_is_deterministic_and_round_trips(folder_root, tmp_path):
    first = import_folder(folder_root).manifest
    second = import_folder(folder_root).manifest
    assert first.version_id == second.version_id
    assert Manifest.load(first.save(tmp_path / "m.json")).version_id == first.version_id


# --- dispatch -------------------------------------------------------------------------------


def test_import_dataset_dispatch(mvtec_root, folder_root):
    assert import_dataset(mvtec_root, "mvtec").manifest.source["importer"] == "mvtec"
    assert (
        import_dataset(folder_root, "folder", mask_rule="none").manifest.source["importer"]
        == "folder"
    )
    with pytest.raises(ConfigError, match="known formats: folder, mvtec"):
        import_dataset(folder_root, "coco")
    with pytest.raises(ConfigError, match="group_pattern"):
        import_dataset(mvtec_root, "mvtec", group_pattern="x")


def test_import_defects_takes_type_folders_or_loose_images_all_in_val(tmp_path, image_writer,
                                                                     mask_writer):
    from defectscope.data.images.importers import import_defects

    typed = tmp_path / "typed"
    image_writer(typed / "scratch" / "a.png")
    image_writer(typed / "dent" / "b.png")
    result = import_defects(typed)
    assert sorted(s.label for s in result.manifest.samples) == ["dent", "scratch"]
    assert {s.split for s in result.manifest.samples} == {"val"}
    loose = tmp_path / "loose"
    image_writer(loose / "c.jpg")
    mask_writer(loose / "c.png")
    (loose / "readme.txt").write_text("not an image")
    result = import_defects(loose)
    [sample] = result.manifest.samples
    assert (sample.label, sample.mask_path, sample.split) == ("defect", "c.png", "val")
    assert [s.path for s in result.skipped] == ["readme.txt"]


def test_import_defects_refuses_good_images_and_a_missing_folder(tmp_path, image_writer):
    from defectscope.data.images.importers import import_defects

    image_writer(tmp_path / "mixed" / "good" / "a.png")
    image_writer(tmp_path / "mixed" / "scratch" / "b.png")
    with pytest.raises(DataError, match="defect images only"):
        import_defects(tmp_path / "mixed")
    with pytest.raises(DataError):
        import_defects(tmp_path / "missing")
