"""A corpus of broken and hostile image files: at least 30 kinds, each a name and its bytes.

Every kind must be refused with a clear error wherever an image enters the system (``predict``,
``serve``, ``run``) and never judged OK. The names carry image extensions so that nothing is
skipped for its name alone. Built in memory from a few good images, deterministically.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _part(seed: int = 0, size: tuple[int, int] = (96, 128)) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = (rng.random((*size, 3)) * 60 + 90).astype(np.uint8)
    return Image.fromarray(pixels)


def _chunk(kind: bytes, payload: bytes, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF if crc is None else crc
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _png(width: int, height: int, idat: bytes, *, depth: int = 8, colour: int = 0,
         ihdr_crc: int | None = None, extra: bytes = b"") -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr, ihdr_crc) + extra
            + _chunk(b"IDAT", idat) + _chunk(b"IEND", b""))


def _grey_rows(width: int, height: int) -> bytes:
    return zlib.compress(b"".join(b"\x00" + bytes([120]) * width for _ in range(height)))


def _png_with_bad_idat_crc() -> bytes:
    data = bytearray(_encode(_part(1), "PNG"))
    start = data.index(b"IDAT")
    length = struct.unpack(">I", data[start - 4:start])[0]
    data[start + 4 + length] ^= 0xFF  # the chunk's CRC, not its data
    return bytes(data)


def _jpeg_scan_zeroed() -> bytes:
    data = bytearray(_encode(_part(2, (200, 200)), "JPEG", quality=95))
    start = data.index(b"\xff\xda") + 200
    data[start:start + 1500] = bytes(1500)
    return bytes(data)


def _jpeg_progressive_cut() -> bytes:
    data = _encode(_part(3, (200, 200)), "JPEG", progressive=True, quality=90)
    return data[: len(data) * 2 // 3]


def _multi_frame(fmt: str) -> bytes:
    frames = [_part(4), _part(5)]
    return _encode(frames[0], fmt, save_all=True, append_images=frames[1:])


def _tiff_bad_offsets() -> bytes:
    data = bytearray(_encode(_part(6), "TIFF"))
    # point the strip offsets past the end of the file: tag 273 (StripOffsets), type LONG
    index = data.index(struct.pack("<HH", 273, 4))
    data[index + 8:index + 12] = struct.pack("<I", 10_000_000)
    return bytes(data)


def _bmp_claims(width: int, height: int) -> bytes:
    data = bytearray(_encode(_part(7, (8, 8)), "BMP"))
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _zip_bytes() -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("part.png", _encode(_part(8), "PNG"))
    return buffer.getvalue()


def broken_files() -> dict[str, bytes]:
    """``{file name: bytes}`` for every kind; the name says what is wrong."""
    png = _encode(_part(9), "PNG")
    jpeg = _encode(_part(10, (200, 200)), "JPEG", quality=90)
    tiff = _encode(_part(11), "TIFF")
    bmp = _encode(_part(12), "BMP")
    webp = _encode(_part(13), "WEBP", quality=80)
    rng = np.random.default_rng(14)
    noise = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    corpus = {
        "empty.png": b"",
        "empty_named.jpg": b"",
        "text_named.png": b"hello, I am a text file and not an image\n",
        "html_named.jpg": b"<html><body><img src=x onerror=alert(1)></body></html>",
        "svg_named.png": b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "gif_named.png": _encode(_part(15), "GIF"),
        "zip_named.png": _zip_bytes(),
        "png_signature_then_noise.png": b"\x89PNG\r\n\x1a\n" + noise,
        "jpeg_signature_then_noise.jpg": b"\xff\xd8\xff\xe0" + noise,
        "png_truncated_half.png": png[: len(png) // 2],
        "png_header_only.png": png[:33],
        "png_no_iend.png": png[:-12],
        "png_bad_idat_crc.png": _png_with_bad_idat_crc(),
        "png_bad_ihdr_crc.png": _png(16, 16, _grey_rows(16, 16), ihdr_crc=0),
        "png_idat_not_zlib.png": _png(16, 16, b"\x00" * 64),
        "png_idat_too_short.png": _png(64, 64, _grey_rows(64, 4)),
        "png_zero_width.png": _png(0, 16, _grey_rows(0, 16)),
        "png_bad_bit_depth.png": _png(16, 16, _grey_rows(16, 16), depth=7),
        "png_palette_without_plte.png": _png(16, 16, _grey_rows(16, 16), colour=3),
        "png_bomb_20000x20000.png": _png(20_000, 20_000, zlib.compress(b"\x00" * 1000)),
        "jpeg_truncated_half.jpg": jpeg[: len(jpeg) // 2],
        "jpeg_soi_only.jpg": b"\xff\xd8",
        "jpeg_headers_only.jpg": jpeg[: jpeg.index(b"\xff\xda")],
        "jpeg_scan_zeroed.jpg": _jpeg_scan_zeroed(),
        "jpeg_progressive_cut.jpg": _jpeg_progressive_cut(),
        "tiff_truncated.tif": tiff[: len(tiff) // 2],
        "tiff_multi_frame.tif": _multi_frame("TIFF"),
        "tiff_strip_offsets_past_end.tif": _tiff_bad_offsets(),
        "bmp_truncated.bmp": bmp[: len(bmp) // 2],
        "bmp_claims_huge.bmp": _bmp_claims(30_000, 30_000),
        "bmp_zero_width.bmp": _bmp_claims(0, 8),
        "webp_truncated.webp": webp[: len(webp) // 2],
        "webp_multi_frame.webp": _multi_frame("WEBP"),
    }
    return corpus
