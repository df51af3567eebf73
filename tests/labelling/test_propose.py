"""propose: behaviour on tiny synthetic parts (a dark disc on a bright textured plate)."""

from __future__ import annotations

import numpy as np
import pytest

from defectscope.errors import ConfigError, DataError
from defectscope.labelling.propose import Proposal, baseline_mask, propose


@pytest.fixture
def part():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(180, 8, (96, 128, 3)), 0, 255).astype(np.uint8)
    yy, xx = np.mgrid[:96, :128]
    truth = (yy - 40) ** 2 + (xx - 70) ** 2 <= 10 ** 2
    image[truth] = 60
    # a blurry map that overreaches the defect, as an upsampled anomaly map does
    evidence = np.exp(-((yy - 40) ** 2 + (xx - 70) ** 2) / (2 * 18.0 ** 2)).astype(np.float32)
    return image, truth, evidence


def iou(a, b):
    return np.logical_and(a, b).sum() / np.logical_or(a, b).sum()


def test_grows_an_under_reaching_map_to_the_outline(part):
    """The map crosses the threshold inside the defect only (as on the real datasets: the
    benchmark's maps mostly under-reach): the cut grows the region to the disc's edge."""
    image, truth, evidence = part
    proposal = propose(image, evidence, threshold=0.9)
    assert isinstance(proposal, Proposal)
    assert proposal.mask.shape == truth.shape and proposal.mask.dtype == np.uint8
    assert set(np.unique(proposal.mask)) <= {0, 255}
    assert iou(proposal.mask > 0, truth) > iou(baseline_mask(evidence, 0.9) > 0, truth) + 0.2
    assert iou(proposal.mask > 0, truth) > 0.7
    (box,) = proposal.boxes
    assert 0 <= box.confidence <= 1
    x1, y1, x2, y2 = box.box
    assert x1 <= 62 and x2 >= 78 and y1 <= 32 and y2 >= 48


def test_evidence_above_the_threshold_is_always_kept(part):
    """No good image reached the calibrated threshold, so the cut never drops such a pixel
    (a map that over-reaches at a low threshold is then kept whole)."""
    image, truth, evidence = part
    proposal = propose(image, evidence, threshold=0.2)
    assert (proposal.mask[evidence >= 0.2] == 255).all()


def test_map_under_threshold_proposes_nothing_unless_forced_or_clicked(part):
    image, truth, evidence = part
    assert propose(image, evidence, threshold=5.0).is_empty
    assert not propose(image, evidence, threshold=5.0, force=True).is_empty
    clicked = propose(image, np.zeros_like(evidence), threshold=1.0, points=[(70, 40)])
    assert clicked.mask[40, 70] == 255


def test_box_restricts_the_proposal(part):
    image, truth, evidence = part
    proposal = propose(image, evidence, threshold=0.2, boxes=[(55, 25, 86, 56)])
    ys, xs = np.nonzero(proposal.mask)
    assert xs.min() >= 55 and xs.max() < 86 and ys.min() >= 25 and ys.max() < 56


def test_inputs_are_not_modified(part):
    image, _, evidence = part
    before = image.copy(), evidence.copy()
    propose(image, evidence, threshold=0.2, points=[(70, 40)])
    assert np.array_equal(image, before[0]) and np.array_equal(evidence, before[1])


def test_clear_errors(part):
    image, _, evidence = part
    with pytest.raises(DataError, match="evidence map"):
        propose(image, evidence[:10], threshold=0.2)
    with pytest.raises(DataError, match="bad image"):
        propose(image.astype(np.float32), evidence, threshold=0.2)
    with pytest.raises(ConfigError, match="outside"):
        propose(image, evidence, threshold=0.2, points=[(500, 5)])
    with pytest.raises(ConfigError, match="empty"):
        propose(image, evidence, threshold=0.2, boxes=[(10, 10, 5, 20)])
