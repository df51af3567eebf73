"""The torch-free comparison of a part with its template, and the window geometry around it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defectscope.errors import AlignmentError, ConfigError, DataError, DefectscopeError
from defectscope.scoring.reference_compare import (CompareConfig, compare, crop_windows,
                                                  decode_boxes, encode_boxes, estimate_shift,
                                                  extract_crops, find_regions, shift_image,
                                                  tolerant_difference)
from defectscope.models.fitting.reference_loop import candidate_ap, dihedral


def traces(side: int = 80) -> np.ndarray:
    image = np.full((side, side), 10, np.uint8)
    for y in range(8, side - 8, 16):
        image[y:y + 5, 6:side - 6] = 240
    image[50:70, 30:45] = 240
    return image


def test_a_one_pixel_misregistration_is_forgiven_but_a_hole_is_not():
    template = traces()
    moved = shift_image(template, 1, -1)
    assert tolerant_difference(moved, template, 1).max() == 0
    assert tolerant_difference(moved, template, 0).max() > 200
    holed = template.copy()
    holed[56:62, 34:40] = 10
    difference = tolerant_difference(holed, template, 1)
    assert difference[58, 37] > 200 and difference[20, 20] == 0


def test_missing_and_added_copper_both_show():
    template = traces()
    added = template.copy()
    added[14:24, 40:44] = 240  # a bridge between two traces
    cut = template.copy()
    cut[8:13, 20:26] = 10  # an open
    for image, (y, x) in ((added, (18, 42)), (cut, (10, 23))):
        assert tolerant_difference(image, template, 2)[y, x] > 200


def test_estimate_shift_recovers_a_known_offset_and_keeps_zero_on_a_blank_pair():
    template = traces()
    template[30:34, 10:14] = 240  # break the horizontal symmetry
    moved = shift_image(template, 3, -2)
    assert estimate_shift(moved, template, 6) == (3, -2)
    blank = np.zeros((40, 40), np.uint8)
    assert estimate_shift(blank, blank, 6) == (0, 0)


def test_compare_removes_the_shift_and_finds_the_defect():
    template = traces()
    part = shift_image(template, -2, 3).copy()
    part[56:62, 34:40] = 10
    result = compare(part, template, CompareConfig(tolerance=1))
    assert result.shift == (-2, 3)
    assert result.regions.tolist() == [[34, 56, 40, 62]]
    assert result.difference.dtype == np.uint8 and result.difference.shape == part.shape


def test_long_components_are_cut_into_tiles():
    mask = np.zeros((20, 200), bool)
    mask[5:8, 10:190] = True
    regions = find_regions(mask, min_area=4, max_region=48)
    assert len(regions) == 8  # 180 px in tiles of 24
    assert regions[:, 0].min() == 10 and regions[:, 2].max() == 190
    assert (regions[:, 2] - regions[:, 0]).max() <= 24
    assert len(find_regions(mask, min_area=4, max_region=400)) == 1
    fragments = np.zeros((20, 40), bool)
    fragments[5:8, 5:9] = fragments[5:8, 11:15] = True  # 2 px apart
    assert len(find_regions(fragments, 4, 48)) == 2
    assert find_regions(fragments, 4, 48, merge_distance=2).tolist() == [[5, 5, 15, 8]]
    speck = np.zeros((10, 10), bool)
    speck[2:4, 2:3] = True
    assert len(find_regions(speck, min_area=4, max_region=48)) == 0


def test_pair_errors_are_clear():
    template = traces()
    with pytest.raises(DefectscopeError, match="template"):
        compare(template, None, CompareConfig())
    with pytest.raises(DataError, match="turn on align"):
        compare(template, template[:60], CompareConfig())
    with pytest.raises(ConfigError, match="tolerance"):
        CompareConfig(tolerance=-1)


def test_alignment_failure_raises_instead_of_comparing_misaligned_images():
    rng = np.random.default_rng(0)
    template = traces(160)
    noise = (rng.random((160, 160)) * 255).astype(np.uint8)
    with pytest.raises(AlignmentError):
        compare(noise, template, CompareConfig(align=True))


def test_alignment_maps_boxes_back_to_the_image():
    rng = np.random.default_rng(1)
    template = np.full((200, 200), 10, np.uint8)
    for _ in range(40):  # an irregular layout gives the feature matcher something to hold
        x, y = rng.integers(5, 180, 2)
        template[y:y + rng.integers(4, 15), x:x + rng.integers(4, 15)] = 240
    matrix = np.array([[1.0, 0.0, 7.0], [0.0, 1.0, -5.0]])
    import cv2

    part = cv2.warpAffine(template, matrix, (200, 200), borderMode=cv2.BORDER_REPLICATE)
    part[100:108, 100:108] = 255 - part[104, 104]
    result = compare(part, template, CompareConfig(align=True, tolerance=1))
    assert result.homography is not None
    boxes = result.to_image_frame(result.regions)
    hit = [b for b in boxes if abs(b[0] - 100) <= 2 and abs(b[1] - 100) <= 2]
    assert hit, boxes


def test_windows_crops_and_box_codes():
    template = traces()
    part = template.copy()
    part[56:62, 34:40] = 10
    result = compare(part, template, CompareConfig())
    windows = crop_windows(result.regions, context=32, region_scale=2.0)
    assert windows.tolist() == [[21, 43, 32]]
    crops = extract_crops(result, windows, 16)
    assert crops.shape == (1, 3, 16, 16) and crops.dtype == np.uint8
    assert crops[0, 2].max() > 200 and crops[0, 0, 8, 8] < 50 and crops[0, 1, 8, 8] > 200
    edge = extract_crops(result, np.array([[-10, -10, 20]]), 20)  # outside: zeros, no difference
    assert edge[0, :, :10, :10].max() == 0
    boxes = np.array([[30.0, 50.0, 44.0, 66.0]])
    assert np.allclose(decode_boxes(encode_boxes(boxes, windows), windows), boxes)


@pytest.mark.parametrize("code", range(8))
def test_dihedral_moves_the_box_with_the_window(code):
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 2:6, 9:15] = 1.0  # rows 2..5, columns 9..14
    box = torch.tensor([[9 / 16, 2 / 16, 15 / 16, 6 / 16]])
    turned, moved = dihedral(x, box, code)
    ys, xs = torch.nonzero(turned[0, 0], as_tuple=True)
    expected = torch.tensor([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / 16
    assert torch.allclose(moved[0], expected.float())


def test_candidate_ap_counts_only_right_type_and_place():
    probabilities = np.array([[0.1, 0.9, 0.0], [0.2, 0.0, 0.8], [0.9, 0.1, 0.0]])
    targets = np.array([[0.2, 0.2, 0.8, 0.8]] * 3)
    good = targets.copy()
    assert candidate_ap(probabilities, good, np.array([1, 2, 0]), targets) == 1.0
    wrong_place = good.copy()
    wrong_place[1] = [0.0, 0.0, 0.1, 0.1]
    assert candidate_ap(probabilities, wrong_place, np.array([1, 2, 0]), targets) == 0.5
