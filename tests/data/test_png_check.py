"""PNG structure checks: data length from the header (plain and Adam7), missing palette."""

from __future__ import annotations

import numpy as np
from PIL import Image

from defectscope.data.png_check import expected_data_length, png_structure_problem


def test_expected_length_plain_and_interlaced():
    assert expected_data_length(16, 4, 8, 0, False) == 4 * 17
    assert expected_data_length(3, 2, 16, 2, False) == 2 * (1 + 18)
    assert expected_data_length(1, 1, 8, 2, True) == 4  # only the first Adam7 pass has a pixel
    assert expected_data_length(8, 8, 1, 0, True) == sum(  # seven passes of 1-bit rows
        rows * (1 + (cols + 7) // 8) for cols, rows in
        ((1, 1), (1, 1), (2, 1), (2, 2), (4, 2), (4, 4), (8, 4)))


def test_good_pngs_pass_plain_interlaced_palette_and_16_bit(tmp_path):
    rng = np.random.default_rng(0)
    images = {
        "rgb.png": (Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)), {}),
        "grey16.png": (Image.fromarray(rng.integers(0, 65535, (20, 30), dtype=np.uint16)), {}),
        "palette.png": (Image.fromarray(rng.integers(0, 256, (9, 11, 3), dtype=np.uint8))
                        .convert("P"), {}),
    }
    for name, (image, options) in images.items():
        image.save(tmp_path / name, **options)
        assert png_structure_problem(tmp_path / name) is None, name
    interlaced = tmp_path / "interlaced.png"
    pixels = rng.integers(0, 256, (13, 29), dtype=np.uint8)
    interlaced.write_bytes(_interlaced_grey_png(pixels))
    assert np.array_equal(np.asarray(Image.open(interlaced)), pixels)  # a real interlaced PNG
    assert png_structure_problem(interlaced) is None


def _interlaced_grey_png(pixels: np.ndarray) -> bytes:
    """An Adam7-interlaced 8-bit grey PNG (Pillow writes none), every row unfiltered."""
    import struct
    import zlib

    from defectscope.data.png_check import ADAM7

    height, width = pixels.shape
    raw = b"".join(b"\x00" + pixels[y, x0::dx].tobytes()
                   for x0, y0, dx, dy in ADAM7 if width > x0
                   for y in range(y0, height, dy))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (struct.pack(">I", len(payload)) + kind + payload
                + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 1)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def test_missing_rows_and_missing_palette_are_named(tmp_path):
    from tests.broken_corpus import broken_files

    corpus = broken_files()
    (tmp_path / "short.png").write_bytes(corpus["png_idat_too_short.png"])
    (tmp_path / "noplte.png").write_bytes(corpus["png_palette_without_plte.png"])
    assert "rows are missing" in png_structure_problem(tmp_path / "short.png")
    assert "without a PLTE" in png_structure_problem(tmp_path / "noplte.png")
