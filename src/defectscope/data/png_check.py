"""PNG structure checks that Pillow's decoder does not make.

Pillow accepts a PNG whose compressed image data ends early (it stops at the end of the zlib
stream and leaves the remaining rows blank, no error) and a palette image without its palette
(it substitutes a grey ramp). Both would be inspected as if they were the real part, so they are
refused here: the IDAT stream is decompressed chunk by chunk, counting bytes without keeping
them, and compared with the length the header implies (every Adam7 pass, when interlaced).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by colour type
# Adam7 passes: (first column, first row, column step, row step)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
         (0, 1, 1, 2))


def expected_data_length(width: int, height: int, depth: int, colour: int,
                         interlaced: bool) -> int:
    """Bytes of filtered scanlines (one filter byte per row) the header implies.

    >>> expected_data_length(16, 4, 8, 0, False)
    68
    >>> expected_data_length(1, 1, 8, 2, True)
    4
    """
    bits = depth * CHANNELS[colour]

    def rows_bytes(columns: int, rows: int) -> int:
        return 0 if columns == 0 or rows == 0 else rows * (1 + (columns * bits + 7) // 8)

    if not interlaced:
        return rows_bytes(width, height)
    total = 0
    for x0, y0, dx, dy in ADAM7:
        columns = (width - x0 + dx - 1) // dx if width > x0 else 0
        rows = (height - y0 + dy - 1) // dy if height > y0 else 0
        total += rows_bytes(columns, rows)
    return total


def png_structure_problem(path: str | Path) -> str | None:
    """What is wrong with the PNG at ``path`` that decoding would hide, or ``None``.

    Checks: a palette image has its PLTE before the image data, and the image data decompresses
    to exactly the length the header implies. (Chunk CRCs are checked by Pillow's ``verify``.)
    """
    with open(path, "rb") as stream:
        if stream.read(8) != SIGNATURE:
            return "not a PNG file"
        header = None
        seen_palette = False
        inflater = zlib.decompressobj()
        produced = 0
        while True:
            head = stream.read(8)
            if len(head) < 8:
                return "file ends before the IEND chunk"
            length, kind = struct.unpack(">I4s", head)
            if kind == b"IHDR":
                payload = stream.read(length)
                if len(payload) < 13:
                    return "IHDR chunk is too short"
                width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB",
                                                                             payload[:13])
                if colour not in CHANNELS:
                    return f"unknown colour type {colour}"
                header = (width, height, depth, colour, interlace == 1)
            elif kind == b"PLTE":
                seen_palette = True
                stream.seek(length, 1)
            elif kind == b"IDAT":
                if header is None:
                    return "image data before the IHDR chunk"
                if header[3] == 3 and not seen_palette:
                    return "palette image without a PLTE chunk (its colours are unknown)"
                remaining = length
                while remaining:
                    block = stream.read(min(remaining, 1 << 20))
                    if not block:
                        return "file ends inside an IDAT chunk"
                    remaining -= len(block)
                    try:
                        produced += len(inflater.decompress(block, 1 << 24))
                        while inflater.unconsumed_tail:
                            produced += len(inflater.decompress(inflater.unconsumed_tail,
                                                                1 << 24))
                    except zlib.error as error:
                        return f"image data does not decompress ({error})"
            elif kind == b"IEND":
                break
            else:
                stream.seek(length, 1)
            stream.seek(4, 1)  # the CRC
        if header is None:
            return "no IHDR chunk"
        expected = expected_data_length(*header)
        if not inflater.eof:
            return (f"image data ends early: its compressed stream is cut off after {produced:,} "
                    f"of {expected:,} bytes")
        if produced != expected:
            return (f"image data holds {produced:,} bytes where its {header[0]}x{header[1]} "
                    f"header needs {expected:,}: rows are missing")
    return None
