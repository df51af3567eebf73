"""Fail-safe decisions: whatever fails, the part is NG or UNSURE with a reason, never OK."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest
from PIL import Image

from defectscope.errors import ConfigError
from defectscope.line.decision import FailSafePolicy, decide, evaluate
from defectscope.line.sources import Frame, read_file_frame
from defectscope.values import Failure, Verdict


def frame_of(value: int = 20) -> Frame:
    return Frame("f1", time.time(), "test", np.full((6, 7, 3), value, np.uint8))


def test_a_good_image_is_ok_with_its_score_and_versions(fake_inspector):
    part = decide(frame_of(20), fake_inspector, cycle_budget_ms=10_000)
    assert part.verdict is Verdict.OK and part.reason is None
    assert part.score == pytest.approx(20 / 255)
    assert (part.part_id, part.model_version, part.dataset_version) == ("f1", "fake-1", "ds-1")
    assert part.threshold == 0.5 and "total" in part.timings and "model" in part.timings


def test_image_hash_is_the_file_bytes_when_the_frame_came_from_a_file(tmp_path, png,
                                                                       fake_inspector):
    path = png(tmp_path / "p.png", 30)
    decision = evaluate(read_file_frame(path, "files"), fake_inspector)
    assert decision.part.image_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert decision.image_suffix == ".png" and decision.part.source == str(path)


def test_unreadable_image_is_unsure_and_the_model_is_not_called(tmp_path, fake_inspector):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"garbage")
    decision = evaluate(read_file_frame(bad, "files"), fake_inspector)
    assert decision.part.verdict is Verdict.UNSURE and decision.part.score is None
    assert decision.failure == "unreadable" and "could not be read" in decision.part.reason
    assert fake_inspector.calls == 0


def test_inference_error_is_ng_by_default(make_inspector):
    part = decide(frame_of(), make_inspector(error=RuntimeError("CUDA on fire")))
    assert part.verdict is Verdict.NG and "CUDA on fire" in part.reason and part.score is None


@pytest.mark.parametrize("score", [float("nan"), float("inf")])
def test_non_finite_score_is_never_ok(make_inspector, score):
    decision = evaluate(frame_of(), make_inspector(score=lambda image: score))
    assert decision.part.verdict is Verdict.UNSURE and decision.part.score is None
    assert decision.failure == "invalid_score"


def test_failed_alignment_is_ng(make_inspector):
    inspector = make_inspector(score=lambda image: float("nan"), reason="no fiducials found",
                               failure=Failure.ALIGNMENT)
    decision = evaluate(frame_of(), inspector)
    assert decision.part.verdict is Verdict.NG and decision.failure is Failure.ALIGNMENT
    assert decision.part.failure is Failure.ALIGNMENT and decision.part.score is None
    assert decision.part.reason == "no fiducials found"


def test_failure_comes_from_the_field_not_from_the_wording(make_inspector):
    inspector = make_inspector(score=lambda image: 0.1, reason="alignment failed, retried: ok")
    decision = evaluate(frame_of(), inspector)
    assert decision.part.verdict is Verdict.OK and decision.failure is None


def test_refused_frame_keeps_its_failure_kind(tmp_path, fake_inspector):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    decision = evaluate(read_file_frame(path, "files", max_pixels=1000), fake_inspector)
    assert decision.failure is Failure.REFUSED and decision.part.verdict is Verdict.UNSURE
    assert "2,000 pixels; the limit is 1,000" in decision.part.reason
    assert fake_inspector.calls == 0


@pytest.mark.parametrize("failure", list(Failure))
def test_every_failure_kind_has_a_policy_verdict_that_is_not_ok(failure):
    assert FailSafePolicy().verdict_for(failure) in (Verdict.UNSURE, Verdict.NG)


def test_over_the_cycle_budget_is_unsure_but_ng_stays_ng(make_inspector):
    slow_ok = evaluate(frame_of(20), make_inspector(delay_s=0.05), cycle_budget_ms=10)
    assert slow_ok.part.verdict is Verdict.UNSURE and slow_ok.failure == "timeout"
    assert "cycle budget" in slow_ok.part.reason
    slow_ng = decide(frame_of(250), make_inspector(delay_s=0.05), cycle_budget_ms=10)
    assert slow_ng.verdict is Verdict.NG


def test_policy_can_be_changed_but_never_to_ok(make_inspector):
    policy = FailSafePolicy(inference=Verdict.UNSURE, unreadable="NG")
    part = decide(frame_of(), make_inspector(error=ValueError("x")), policy=policy)
    assert part.verdict is Verdict.UNSURE
    empty = Frame("f2", 0.0, "test", None, error="camera unplugged")
    assert decide(empty, make_inspector(), policy=policy).verdict is Verdict.NG
    with pytest.raises(ConfigError, match="never OK"):
        FailSafePolicy(timeout=Verdict.OK)


def test_frames_without_file_are_hashed_as_png(fake_inspector):
    decision = evaluate(frame_of(), fake_inspector)
    assert decision.image_bytes.startswith(b"\x89PNG")
    assert decision.part.image_sha256 == hashlib.sha256(decision.image_bytes).hexdigest()


def test_formats_the_archive_does_not_keep_are_hashed_as_png(tmp_path, fake_inspector):
    from PIL import Image

    gif = tmp_path / "part.gif"
    Image.fromarray(np.full((6, 7, 3), 9, np.uint8)).save(gif)
    frame = Frame("g", 0.0, "test", np.full((6, 7, 3), 9, np.uint8), str(gif),
                  data=gif.read_bytes())
    decision = evaluate(frame, fake_inspector)
    assert decision.image_suffix == ".png" and decision.image_bytes.startswith(b"\x89PNG")
