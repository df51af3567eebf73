"""Alignment to a golden reference: known transforms recovered, failures loud, state saved."""

import numpy as np
import pytest

from defectscope.errors import AlignmentError, BundleError
from defectscope.preprocess import PreprocessConfig, Preprocessor
from defectscope.preprocess.align import estimate_alignment

from tests.preprocess.helpers import board, corner_error, similarity, warp


@pytest.mark.parametrize("angle, scale, shift", [
    (0.0, 1.0, (7.0, -4.0)),      # a pure shift
    (3.5, 1.02, (-12.0, 9.0)),    # rotation + scale + shift
    (-5.0, 0.97, (18.0, 15.0)),
])
def test_known_transform_is_recovered_to_under_one_pixel(angle, scale, shift):
    reference = board(0)
    truth = similarity(reference.shape, angle, scale, shift)  # reference -> moved
    moved = warp(reference, truth)
    moved = np.clip(moved * 0.8 + 20, 0, 255).astype(np.uint8)  # and a brightness change
    found = estimate_alignment(reference, moved)
    assert corner_error(found.homography, np.linalg.inv(truth), reference.shape) < 1.0
    assert found.quality > 0.9


def test_affine_motion_also_recovers_the_shift():
    reference = board(4)
    truth = similarity(reference.shape, 2.0, 1.0, (5.0, 3.0))
    found = estimate_alignment(reference, warp(reference, truth), motion="affine")
    assert corner_error(found.homography, np.linalg.inv(truth), reference.shape) < 1.0


def test_wrong_reference_fails_loudly():
    with pytest.raises(AlignmentError) as error:
        estimate_alignment(board(0), board(99))
    assert "alignment failed" in str(error.value)


def test_blank_image_fails_loudly():
    with pytest.raises(AlignmentError):
        estimate_alignment(board(0), np.full((320, 320, 3), 128, np.uint8))


def test_quality_below_threshold_fails_even_when_a_transform_is_found():
    reference = board(0)
    with pytest.raises(AlignmentError) as error:
        estimate_alignment(reference, warp(reference, similarity(reference.shape, 1, 1, (3, 2))),
                           min_quality=1.0)
    assert error.value.quality > 0.9 and error.value.homography is not None


def align_pipeline(**align) -> Preprocessor:
    return Preprocessor(PreprocessConfig(image_size=64, steps=[{"name": "align", **align}]))


def test_pipeline_learns_reference_and_warps_onto_it():
    reference = board(0)
    pre = align_pipeline().fit([reference, board(1)])  # the first image is the reference
    np.testing.assert_array_equal(pre.arrays()["0.align.reference"], reference)
    moved = warp(reference, similarity(reference.shape, 2.0, 1.0, (6.0, -5.0)))
    prepared = pre.prepare(moved)
    inner = (slice(40, -40), slice(40, -40))
    assert np.abs(prepared.image[inner].astype(int) - reference[inner]).mean() < 4
    assert prepared.matrix.shape == (3, 3)


def test_restore_round_trips_and_missing_reference_is_a_bundle_error():
    pre = align_pipeline().fit([board(0)])
    again = align_pipeline().restore(pre.arrays())
    np.testing.assert_array_equal(again.prepare(board(0)).image, pre.prepare(board(0)).image)
    with pytest.raises(BundleError, match="reference image"):
        align_pipeline().restore({})


def test_unfitted_alignment_says_to_fit():
    from defectscope.errors import DefectscopeError
    with pytest.raises(DefectscopeError, match="fit"):
        align_pipeline().prepare(board(0))
