"""``defectscope label export``: the label store written as a dataset version from the CLI."""

from __future__ import annotations

from defectscope.cli import main
from defectscope.data.hashing import sha256_file
from defectscope.data.images.manifest import Manifest
from defectscope.store import ImageLabel, LabelStore, ResultStore
from defectscope.values import Sample
from tests.fakes import write_png


def test_label_export_writes_a_version_on_its_parent(tmp_path, capsys):
    image = write_png(tmp_path / "data" / "a.png", 40)
    base = Manifest(tmp_path / "data", (Sample(str(image), "good", sha256_file(image)),))
    base.save(tmp_path / "data" / "manifest.json")
    db = f"sqlite:///{tmp_path / 'results.db'}"
    store = ResultStore(db)
    LabelStore(store).save(ImageLabel(sha256_file(image), "dent", str(image), 10, 8))
    store.close()
    code = main(["label", "export", "--db", db, "--format", "manifest", "--out",
                 str(tmp_path / "out"), "--parent", str(tmp_path / "data" / "manifest.json")])
    assert code == 0
    exported = Manifest.load(tmp_path / "out" / "manifest.json")
    assert exported.parent_version == base.version_id
    assert [s.label for s in exported.samples] == ["dent"]
    assert f"version {exported.version_id}" in capsys.readouterr().out
    assert main(["label", "export", "--db", db, "--format", "voc", "--out",
                 str(tmp_path / "o2")]) == 2
    assert "unknown export format 'voc'" in capsys.readouterr().err
