"""Strict image and mask reading: a file either decodes completely or raises ``ImageReadError``.

Why strict: a truncated JPEG that decodes to half grey pixels trains a model on garbage without a
word, and a JPEG whose scan data is damaged decodes to a grey band that a model may well judge OK.
What "strict" covers, per format:

- every format: Pillow raises on truncated data as long as ``ImageFile.LOAD_TRUNCATED_IMAGES``
  stays False, which this module relies on and never changes; a file with several frames
  (multi-page TIFF, animated WebP) is refused, since inspecting only its first frame would hide
  the others;
- JPEG: libjpeg only *warns* about corrupt entropy-coded data ("Corrupt JPEG data: ... extraneous
  bytes", "premature end of data segment") and fills in grey, and Pillow silences those warnings.
  The file is therefore decoded a second time with OpenCV's libjpeg while the process's stderr is
  captured (under a lock, so concurrent reads do not mix their messages), and any warning about
  corrupt or missing data refuses the image (:func:`jpeg_decoder_warnings`);
- PNG: Pillow does not check chunk checksums while decoding; ``verify()`` on a fresh open checks
  the CRC of every chunk, so a damaged IDAT is refused.

Conversion rules of ``load_image`` (always uint8, height x width x 3, RGB):

- grayscale (``L``, ``1``) is replicated to three channels;
- 16-bit and 32-bit integer images (``I;16``, ``I;16B``, ``I``) are read as 16-bit full range
  and scaled with ``v8 = round(v / 257)``, clipped to 0..255 (so 65535 -> 255, 257 -> 1);
- palette (``P``), ``LA``, ``RGBA``, ``CMYK`` and other colour modes are converted to RGB; any
  alpha channel is dropped;
- EXIF orientation is ignored: pixels are used as stored, because line cameras do not rotate
  and a dataset must look the same to every reader;
- 32-bit float images (``F``) are refused: their value range is unknown.

>>> image = load_image("part_001.jpg")                        # doctest: +SKIP
>>> mask = load_mask("part_001.png", image.shape[:2])          # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from defectscope.data.png_check import png_structure_problem
from defectscope.errors import ImageReadError, ImageTooLargeError

# The inspection paths' limit (predict, serve, run): about 6300 x 6300 px, read from the header.
DEFAULT_MAX_PIXELS = 40_000_000

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
# Formats by content (Pillow's name), matching the extensions; MPO is a camera JPEG.
READ_FORMATS = frozenset({"PNG", "JPEG", "MPO", "BMP", "TIFF", "WEBP"})

_INTEGER_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}
_FIX_REPLACE = "re-export or replace the file, or remove it from the dataset"

PathLike = str | os.PathLike[str]

# libjpeg warning texts (jerror.h) that mean pixel data is missing or made up by the decoder.
_JPEG_CORRUPTION_MARKERS = (
    "corrupt jpeg data",               # JWRN_EXTRANEOUS_DATA, JWRN_HIT_MARKER, bad Huffman code
    "premature end",                   # JWRN_JPEG_EOF: the file ends inside the scan
    "must resync",                     # JWRN_MUST_RESYNC: restart markers out of order
    "inconsistent progression",        # JWRN_BOGUS_PROGRESSION: damaged progressive scans
)
_STDERR_CAPTURE = threading.Lock()  # fd 2 is process-wide: one capture at a time


def is_image_file(path: PathLike) -> bool:
    """True when the file name has an image extension (case-insensitive); contents not checked."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(path: PathLike, *, max_pixels: int | None = None) -> np.ndarray:
    """Decode an image completely into uint8 RGB (H x W x 3), following the module's rules.

    Raises ``ImageReadError`` naming the file and the fix for a missing file, a directory, an
    empty file, a file that is not an image, truncated or corrupt data, and a zero-sized image;
    ``ImageTooLargeError`` (read from the header, before decoding) when ``max_pixels`` is given
    and the image has more pixels.
    """
    image = _open_fully(path, max_pixels)
    try:
        return _to_rgb8(image, path)
    finally:
        image.close()


def load_mask(
    path: PathLike, shape: tuple[int, int], *, image_path: PathLike | None = None
) -> np.ndarray:
    """Read a defect mask as a bool (H x W) array: any nonzero channel of a pixel is defect.

    ``shape`` is the (height, width) of the image the mask belongs to; a mask of another size
    raises ``ImageReadError`` naming both sizes (and ``image_path`` when given). Alpha channels
    are ignored, palette masks are judged by their colours, not their palette indices.
    """
    image = _open_fully(path)
    try:
        if image.mode == "P" or image.mode == "PA":
            image = image.convert("RGB")
        array = np.asarray(image)
    finally:
        image.close()
    if array.ndim == 3:
        colour = array[..., :3] if array.shape[2] >= 3 else array[..., :1]
        mask = np.any(colour != 0, axis=2)
    else:
        mask = array != 0
    expected = (int(shape[0]), int(shape[1]))
    if mask.shape != expected:
        owner = f"image {image_path}" if image_path is not None else "its image"
        raise ImageReadError(
            path,
            f"mask is {_hw(mask.shape)} (height x width) but {owner} is {_hw(expected)}",
            "save the mask at the image's size, or fix the mask/image pairing",
        )
    return mask


def image_size(path: PathLike) -> tuple[int, int]:
    """Return (height, width) from the file header only: cheap, does not decode the pixels."""
    _check_file(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:  # Pillow raises many types for bad headers
        raise _unreadable(path, error) from error
    _check_size(path, width, height)
    return height, width


def _open_fully(path: PathLike, max_pixels: int | None = None) -> Image.Image:
    """Open and decode every pixel now, so truncation surfaces here and not later."""
    _check_file(path)
    try:
        image = Image.open(path)
    except Exception as error:  # UnidentifiedImageError, SyntaxError, ValueError, ...
        raise _unreadable(path, error) from error
    try:
        _check_size(path, image.width, image.height)
        if max_pixels is not None and image.width * image.height > max_pixels:
            raise ImageTooLargeError(path, image.width * image.height, max_pixels,
                                     "resize the image, or raise the limit (--max-pixels)")
        _check_single_frame(path, image)
        image_format = image.format
        if image_format not in READ_FORMATS:
            raise ImageReadError(
                path, f"holds a {image_format} image, a format not read here (read: "
                f"{', '.join(sorted(READ_FORMATS - {'MPO'}))}), whatever its name says",
                "convert it to PNG")
        image.load()
        if image_format == "PNG":
            _verify_png_checksums(path)
        elif image_format == "JPEG":
            _check_jpeg_warnings(path)
    except ImageReadError:
        image.close()
        raise
    except Exception as error:  # truncated stream, bad checksum, decoder error
        image.close()
        raise ImageReadError(
            path, f"image data is truncated or corrupt ({error})", _FIX_REPLACE
        ) from error
    return image


def jpeg_decoder_warnings(path: PathLike) -> list[str]:
    """Decode a JPEG with OpenCV's libjpeg and return the warning lines it wrote to stderr.

    libjpeg reports damaged scan data only as warnings and substitutes grey pixels; no Python
    decoder here raises on them, so the process's file descriptor 2 is redirected to a temporary
    file for the duration of one decode. The lock makes concurrent calls wait for each other;
    anything another thread writes to stderr during that moment lands in the capture and is
    written back to stderr afterwards (only libjpeg's own lines are returned).
    """
    encoded = np.fromfile(os.fspath(path), dtype=np.uint8)
    with _STDERR_CAPTURE, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(sink.fileno(), 2)
            decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        text = sink.read().decode("utf-8", errors="replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    warnings = [line for line in lines if _is_jpeg_corruption(line)]
    others = [line for line in lines if line not in warnings]
    if others:  # not ours to swallow
        print("\n".join(others), file=sys.stderr)
    if decoded is None and not warnings:
        warnings.append("OpenCV's JPEG decoder could not decode the file")
    return warnings


def _is_jpeg_corruption(line: str) -> bool:
    lowered = line.lower()
    return any(marker in lowered for marker in _JPEG_CORRUPTION_MARKERS)


def _check_jpeg_warnings(path: PathLike) -> None:
    warnings = jpeg_decoder_warnings(path)
    if warnings:
        raise ImageReadError(
            path, f"JPEG scan data is corrupt (libjpeg: {'; '.join(warnings[:3])}); the decoder "
            "would fill the damaged part with grey", _FIX_REPLACE)


def _verify_png_checksums(path: PathLike) -> None:
    try:
        with Image.open(path) as fresh:
            fresh.verify()  # CRC of every chunk, IDAT included
    except Exception as error:  # SyntaxError("broken PNG file ...") and relatives
        raise ImageReadError(
            path, f"PNG data fails its checksum ({error})", _FIX_REPLACE) from error
    problem = png_structure_problem(path)
    if problem is not None:
        raise ImageReadError(path, f"PNG is incomplete: {problem}", _FIX_REPLACE)


def _check_single_frame(path: PathLike, image: Image.Image) -> None:
    frames = int(getattr(image, "n_frames", 1) or 1)
    if frames > 1:
        raise ImageReadError(
            path, f"file holds {frames} frames ({image.format}); only single-frame images are "
            "inspected, since judging the first frame would hide the others",
            "save each frame as its own image file")


def _to_rgb8(image: Image.Image, path: PathLike) -> np.ndarray:
    mode = image.mode
    if mode in _INTEGER_MODES:
        wide = np.asarray(image).astype(np.float64)
        gray = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
    elif mode == "F":
        raise ImageReadError(
            path,
            "32-bit float images are not supported (their value range is unknown)",
            "convert the image to 8-bit or 16-bit integers",
        )
    elif mode in ("L", "1"):
        gray = np.asarray(image.convert("L"))
    else:
        try:
            rgb = image if mode == "RGB" else image.convert("RGB")
        except Exception as error:  # a mode Pillow cannot convert (e.g. LAB)
            raise ImageReadError(
                path, f"cannot convert image mode {mode!r} to RGB ({error})", _FIX_REPLACE
            ) from error
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _check_file(path: PathLike) -> None:
    target = Path(path)
    if not target.exists():
        raise ImageReadError(path, "file does not exist", "check the path")
    if target.is_dir():
        raise ImageReadError(path, "is a directory, not an image file", "pass an image file")
    if target.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)", _FIX_REPLACE)


def _check_size(path: PathLike, width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageReadError(path, f"image has zero size ({width}x{height})", _FIX_REPLACE)


def _unreadable(path: PathLike, error: Exception) -> ImageReadError:
    return ImageReadError(
        path,
        f"not a readable image ({type(error).__name__}: {error})",
        "check that the file really is an image in a supported format; " + _FIX_REPLACE,
    )


def _hw(shape: tuple[int, ...]) -> str:
    return f"{shape[0]}x{shape[1]}"
