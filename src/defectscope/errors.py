"""Errors that reach the user: each says what went wrong, where, and how to fix it.

The CLI prints any ``DefectscopeError`` as one readable line and exits 2; anything else is a bug.
"""

from __future__ import annotations


class DefectscopeError(Exception):
    """Base class for every error the library raises on purpose."""


class ConfigError(DefectscopeError, ValueError):
    """A configuration value, option or name is wrong (unknown model, out-of-range parameter)."""


class DataError(DefectscopeError):
    """A dataset is missing, empty, inconsistent or cannot be split as asked."""


class ImageReadError(DataError):
    """One image or mask cannot be read (missing, corrupt, truncated, not an image, wrong size)."""

    def __init__(self, path: object, problem: str, fix: str = "") -> None:
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        message = f"{self.path}: {problem}"
        if fix:
            message += f" ({fix})"
        super().__init__(message)


class ImageTooLargeError(ImageReadError):
    """An image is refused by a size limit before it is decoded (``pixels`` over ``limit``)."""

    def __init__(self, path: object, pixels: int, limit: int, fix: str = "") -> None:
        self.pixels, self.limit = int(pixels), int(limit)
        super().__init__(path, f"image has {self.pixels:,} pixels; the limit is "
                         f"{self.limit:,} pixels", fix)


class BundleError(DefectscopeError):
    """A model bundle is missing, tampered with, incomplete or from a newer version."""


class WeightsError(DefectscopeError):
    """Pretrained backbone weights are missing, unknown or do not match their recorded hash."""


ALIGNMENT_FAILED = "alignment failed"  # every AlignmentError message, and so every reason
# a model gives for a part it could not align, contains this (the line's fail-safe rule looks
# for it)


class AlignmentError(DefectscopeError):
    """An image could not be aligned to the golden reference well enough to be judged.

    ``quality`` is the alignment quality reached (0 when no transform was found) and
    ``homography`` the transform found, if any. Models turn this into an UNSURE verdict.
    """

    def __init__(self, problem: str, quality: float = 0.0, homography=None) -> None:
        self.problem = problem
        self.quality = float(quality)
        self.homography = homography
        super().__init__(f"{ALIGNMENT_FAILED}: {problem} (quality {self.quality:.3f})")
