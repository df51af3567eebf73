"""Alignment to a golden reference: features + RANSAC, refined by ECC, with a quality score.

Why: a part that sits a few pixels off makes every edge look anomalous. Warping each image onto
the reference (learned at fit: the first training image after the steps before ``align``) puts
every pixel where the model learned it.

How: ORB (or SIFT; AKAZE when this OpenCV build has it) keypoints, ratio-test matches, RANSAC
``homography`` or ``affine`` (rotation, scale, shift), then ECC refinement on a downscaled
copy. ``quality`` is the zero-mean normalised correlation between the warped image and the
reference over their overlap (1 = identical). Too few matches, a degenerate transform, a small
overlap or ``quality < min_quality`` raise ``AlignmentError``: the caller turns that into an
UNSURE verdict, never a silent OK.

>>> import numpy as np
>>> reference = np.zeros((64, 64), np.uint8)
>>> estimate_alignment(reference, reference)                      # doctest: +SKIP
Alignment(homography=array([[1., 0., 0.], ...]), quality=1.0, inliers=...)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import cv2
import numpy as np

from defectscope.errors import AlignmentError, ConfigError
from defectscope.preprocess.steps import Step, check_choice, check_range, grey, register_step, to_rgb8

FEATURES = ("orb", "sift", "akaze")
MOTIONS = ("homography", "affine")
CONFIDENT = 0.98  # a quality above which the fallback candidates are not tried


@dataclass(frozen=True)
class Alignment:
    """``homography`` maps IMAGE pixel coordinates onto REFERENCE coordinates."""

    homography: np.ndarray
    quality: float
    inliers: int


def _detector(features: str, max_features: int):
    if features == "orb":
        return cv2.ORB_create(nfeatures=max_features), cv2.NORM_HAMMING
    if features == "sift":
        return cv2.SIFT_create(nfeatures=max_features), cv2.NORM_L2
    if not hasattr(cv2, "AKAZE_create"):
        raise ConfigError("preprocessing step 'align': features='akaze' is not in this OpenCV "
                          "build; use 'orb' or 'sift'")
    return cv2.AKAZE_create(), cv2.NORM_HAMMING


def _feature_candidates(reference, image, features, motion, max_features) -> list[tuple[np.ndarray, int]]:
    """RANSAC transforms (IMAGE -> REFERENCE) from matched features, most inliers first: the
    ``motion`` model and a similarity (a repetitive pattern can fool one and not the other)."""
    detector, norm = _detector(features, max_features)
    kp_ref, des_ref = detector.detectAndCompute(reference, None)
    kp_img, des_img = detector.detectAndCompute(image, None)
    if des_ref is None or des_img is None or len(kp_ref) < 4 or len(kp_img) < 4:
        raise AlignmentError("too few features to match (is the image blank?)", 0.0)
    pairs = cv2.BFMatcher(norm).knnMatch(des_img, des_ref, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < 0.8 * p[1].distance]
    if len(good) < 8:
        raise AlignmentError(f"only {len(good)} feature matches with the reference", 0.0)
    src = np.float32([kp_img[m.queryIdx].pt for m in good])
    dst = np.float32([kp_ref[m.trainIdx].pt for m in good])
    candidates = []
    if motion == "homography":
        matrix, inliers = cv2.findHomography(src, dst, cv2.RANSAC, 3.0, maxIters=5000)
        if matrix is not None and inliers is not None:
            candidates.append((matrix.astype(np.float64), int(inliers.sum())))
    affine, inliers = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                  ransacReprojThreshold=3.0, maxIters=5000)
    if affine is not None and inliers is not None:
        candidates.append((np.vstack([affine, [0.0, 0.0, 1.0]]).astype(np.float64),
                           int(inliers.sum())))
    candidates = [(m, n) for m, n in candidates if n >= 8 and _plausible(m)]
    return sorted(candidates, key=lambda c: -c[1])


def _refine_ecc(reference, image, matrix, motion, iterations, max_side=512) -> np.ndarray:
    """ECC refinement on copies at most ``max_side`` px; returns ``matrix`` when ECC fails."""
    scale = min(1.0, max_side / max(reference.shape[:2]))
    s = np.diag([scale, scale, 1.0])
    ref = cv2.resize(reference, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    img = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    # ECC's warp maps template (reference) coordinates to input (image) coordinates.
    warp = s @ np.linalg.inv(matrix) @ np.linalg.inv(s)
    warp = (warp / warp[2, 2]).astype(np.float32)
    mode = cv2.MOTION_HOMOGRAPHY if motion == "homography" else cv2.MOTION_AFFINE
    if mode == cv2.MOTION_AFFINE:
        warp = warp[:2]
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-6)
    try:
        _, warp = cv2.findTransformECC(ref.astype(np.float32), img.astype(np.float32), warp,
                                       mode, criteria, None, 5)
    except cv2.error:
        return matrix
    if warp.shape[0] == 2:
        warp = np.vstack([warp, [0.0, 0.0, 1.0]])
    refined = np.linalg.inv(s) @ np.linalg.inv(warp.astype(np.float64)) @ s
    return refined / refined[2, 2]


def alignment_quality(reference: np.ndarray, image: np.ndarray, matrix: np.ndarray) -> tuple[float, float]:
    """(zero-mean normalised correlation over the overlap, overlap fraction) of warped ``image``."""
    h, w = reference.shape[:2]
    warped = cv2.warpPerspective(image.astype(np.float32), matrix, (w, h), flags=cv2.INTER_LINEAR)
    ones = np.ones(image.shape[:2], np.float32)
    valid = cv2.warpPerspective(ones, matrix, (w, h), flags=cv2.INTER_NEAREST) > 0.5
    overlap = float(valid.mean())
    if valid.sum() < 16:
        return 0.0, overlap
    a = warped[valid] - warped[valid].mean()
    b = reference.astype(np.float32)[valid] - reference[valid].mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return (float((a * b).sum()) / denominator if denominator > 0 else 0.0), overlap


def estimate_alignment(reference: np.ndarray, image: np.ndarray, *, features: str = "orb",
                       motion: str = "homography", ecc: bool = True, min_quality: float = 0.5,
                       max_features: int = 2000, ecc_iterations: int = 50,
                       min_overlap: float = 0.5) -> Alignment:
    """Align grey ``image`` onto grey ``reference``; raises ``AlignmentError`` on failure."""
    reference, image = _as_grey(reference), _as_grey(image)
    try:
        candidates = _feature_candidates(reference, image, features, motion, max_features)
    except AlignmentError:
        candidates = []  # ECC from the identity may still find a small misplacement
    best = None  # (quality, overlap, matrix, inliers)
    for matrix, inliers in candidates + [(np.eye(3), 0)]:
        if best is not None and best[0] >= CONFIDENT and best[3] >= 50:
            break  # a clear answer: skip the slower fallbacks
        options = [matrix] + ([_refine_ecc(reference, image, matrix, motion, ecc_iterations)]
                              if ecc else [])
        for option in options:
            if not _plausible(option):
                continue
            quality, overlap = alignment_quality(reference, image, option)
            # Ranked by quality x overlap: on a repetitive pattern a transform shifted by one
            # period can correlate as well over a smaller overlap.
            if overlap >= min_overlap and (best is None or
                                           quality * overlap > best[0] * best[1]):
                best = (quality, overlap, option, inliers)
    if best is None:
        raise AlignmentError("no transform covers enough of the reference", 0.0)
    quality, overlap, matrix, inliers = best
    if overlap < min_overlap:
        raise AlignmentError(f"the aligned image covers only {overlap:.0%} of the reference",
                             quality, matrix)
    if quality < min_quality:
        raise AlignmentError(f"quality {quality:.3f} below the minimum {min_quality}",
                             quality, matrix)
    return Alignment(homography=matrix, quality=quality, inliers=inliers)


def _plausible(matrix: np.ndarray) -> bool:
    """Finite, not collapsed or mirrored, scale within 1/4..4."""
    if not np.all(np.isfinite(matrix)):
        return False
    det = float(np.linalg.det(matrix[:2, :2]))
    return 1 / 16 < det < 16


def _as_grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2 and image.dtype == np.uint8:
        return image
    return grey(to_rgb8(image))


@register_step
@dataclasses.dataclass(frozen=True)
class Align(Step):
    """Warp each image onto the golden reference learned at fit (see module docstring)."""

    name: ClassVar[str] = "align"
    features: str = "orb"
    motion: str = "homography"
    ecc: bool = True
    min_quality: float = 0.5
    max_features: int = 2000
    ecc_iterations: int = 50

    def validate(self) -> None:
        check_choice(self.name, "features", self.features, FEATURES)
        check_choice(self.name, "motion", self.motion, MOTIONS)
        check_choice(self.name, "ecc", self.ecc, (True, False))
        check_range(self.name, "min_quality", self.min_quality, 0.0, 1.0)
        check_range(self.name, "max_features", self.max_features, 100, 100000)
        check_range(self.name, "ecc_iterations", self.ecc_iterations, 1, 1000)
        if self.features == "akaze":
            _detector("akaze", self.max_features)

    def learned_keys(self) -> tuple[str, ...]:
        return ("reference",)

    def learn(self, images):
        return {"reference": np.ascontiguousarray(images[0])}

    def estimate(self, reference: np.ndarray, image: np.ndarray) -> Alignment:
        return estimate_alignment(reference, image, features=self.features, motion=self.motion,
                                  ecc=self.ecc, min_quality=self.min_quality,
                                  max_features=self.max_features,
                                  ecc_iterations=self.ecc_iterations)

    def apply(self, image, state):
        reference = state["reference"]
        found = self.estimate(reference, image)
        h, w = reference.shape[:2]
        warped = cv2.warpPerspective(image, found.homography, (w, h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE)
        return warped, found.homography
