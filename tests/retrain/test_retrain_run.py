"""Retraining end to end on tiny synthetic parts: promote, refuse, bad input, CLI."""

from __future__ import annotations

import json

import pytest

from defectscope.bundle import load_bundle, save_bundle
from defectscope.cli import main
from defectscope.data.images.importers import import_mvtec
from defectscope.data.images.manifest import Manifest
from defectscope.errors import DataError
from defectscope.retrain import RetrainConfig, check_claimed_types, read_audit, retrain
from defectscope.training.anomaly import train_anomaly
from defectscope.values import Sample

from tests.conftest import FAST_OPTIONS, defective_part, make_mvtec, save


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A current model on version 1 and a version 2 = version 1 + two reviewed parts."""
    root = tmp_path_factory.mktemp("retrain")
    data = make_mvtec(root / "parts")
    base = import_mvtec(data).manifest
    current = train_anomaly(base, "padim", root / "models" / "current", options=FAST_OPTIONS,
                            progress=False)
    v1 = current.manifest
    extra = []
    for i in range(2):
        image, mask = defective_part(880 + i)
        path = save(root / "reviewed" / f"r{i}.png", image)
        mask_path = save(root / "reviewed" / f"r{i}_mask.png", mask.astype("uint8") * 255)
        from defectscope.data.hashing import sha256_file
        extra.append(Sample(str(path), "blob", sha256_file(path), str(mask_path),
                            sha256_file(mask_path), f"r{i}", "test"))
    v2 = Manifest(v1.root, tuple(v1.samples) + tuple(extra), parent_version=v1.version_id,
                  source={"review": {"defect_types": ["blob"]}})
    v2_path = v2.save(root / "v2" / "manifest.json")
    return root, v2_path


def test_an_equal_candidate_is_promoted_and_audited(setup):
    root, v2 = setup
    current = root / "models" / "current"
    outcome = retrain(v2, current, root / "cand1", RetrainConfig())
    assert outcome.decision.promote and outcome.release is not None
    assert current.is_symlink() and current.resolve() == outcome.release.resolve()
    assert load_bundle(current).model_version == outcome.audit["candidate_model"]
    record = read_audit(root / "models" / "audit.jsonl")[-1]
    assert record["decision"] == "promoted" and record["n_new_in_gate"] == 2
    assert record["candidate"]["n_defect"] == record["current"]["n_defect"] == 6


def test_a_worse_candidate_is_refused_and_the_current_model_stays(setup):
    root, v2 = setup
    current = root / "models" / "current"
    before = load_bundle(current).model_version

    def blind_trainer(manifest, name, out_dir, **kwargs):  # catches nothing: threshold too high
        result = train_anomaly(manifest, name, out_dir, **kwargs)
        result.model.set_threshold(1e12, {"rule": "blind"})
        save_bundle(result.model, out_dir, manifest=result.manifest, overwrite=True)
        return result

    outcome = retrain(v2, current, root / "cand2", RetrainConfig(), trainer=blind_trainer)
    assert not outcome.decision.promote and outcome.release is None
    assert load_bundle(current).model_version == before
    assert read_audit(root / "models" / "audit.jsonl")[-1]["decision"] == "rejected"


def test_claimed_types_without_samples_are_refused(setup):
    root, v2 = setup
    manifest = Manifest.load(v2)
    check_claimed_types(manifest, ("blob",))
    with pytest.raises(DataError, match="claims defect types it has no samples of: scratch"):
        check_claimed_types(manifest, ("scratch",))
    with pytest.raises(DataError, match="scratch"):
        retrain(v2, root / "models" / "current", root / "cand3",
                RetrainConfig(claimed_types=("scratch",)))


def test_cli_dry_run_prints_figures_and_exit_code(setup, capsys):
    root, v2 = setup
    code = main(["retrain", "--from-version", str(v2), "--current",
                 str(root / "models" / "current"), "--out", str(root / "cand4"), "--no-promote",
                 "--audit-log", str(root / "cli-audit.jsonl")])
    out = capsys.readouterr().out
    assert code == 0 and "candidate" in out and "recall" in out
    assert json.loads((root / "cli-audit.jsonl").read_text())["decision"].startswith("passed")
    missing = main(["retrain", "--from-version", str(root / "nope.json"), "--current",
                    str(root / "models" / "current"), "--out", str(root / "cand5")])
    assert missing == 2
