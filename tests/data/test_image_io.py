"""Tests for defectscope.data.image_io (strict decoding and conversion rules)."""

import struct
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image, ImageFile

from defectscope.data.image_io import (
    IMAGE_EXTENSIONS,
    image_size,
    is_image_file,
    jpeg_decoder_warnings,
    load_image,
    load_mask,
)
from defectscope.errors import DataError, ImageReadError
from tests.fakes import write_corrupt_jpeg


def test_rgb_png_round_trip(tmp_path, image_writer):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    path = image_writer(tmp_path / "a.png", array)
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    np.testing.assert_array_equal(out, array)


def test_grayscale_is_replicated_to_three_channels(tmp_path, image_writer):
    gray = np.arange(20, dtype=np.uint8).reshape(4, 5)
    out = load_image(image_writer(tmp_path / "g.png", gray))
    assert out.shape == (4, 5, 3)
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_16bit_is_scaled_by_257(tmp_path):
    wide = np.array([[0, 257, 65535, 1000]], dtype=np.uint16)
    path = tmp_path / "w.png"
    Image.fromarray(wide).save(path)
    out = load_image(path)
    assert out[0, :, 0].tolist() == [0, 1, 255, round(1000 / 257)]


def test_32bit_integer_mode_uses_same_rule(tmp_path):
    path = tmp_path / "i.tif"
    Image.fromarray(np.array([[0, 514, 70000]], dtype=np.int32)).save(path)
    out = load_image(path)
    assert out[0, :, 1].tolist() == [0, 2, 255]


def test_palette_image_becomes_rgb(tmp_path):
    image = Image.new("P", (3, 2))
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    image.putpixel((1, 0), 1)
    image.putpixel((2, 1), 2)
    path = tmp_path / "p.png"
    image.save(path)
    out = load_image(path)
    assert out.shape == (2, 3, 3)
    assert out[0, 1].tolist() == [255, 0, 0] and out[1, 2].tolist() == [0, 255, 0]


def test_rgba_alpha_is_dropped(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = 0
    path = tmp_path / "a.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    out = load_image(path)
    assert out.shape == (2, 2, 3) and (out[..., 0] == 200).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    Image.new("CMYK", (4, 3), (0, 0, 0, 0)).save(path)
    out = load_image(path)
    assert out.shape == (3, 4, 3) and out.min() > 240


def test_float_image_is_refused(tmp_path):
    path = tmp_path / "f.tif"
    Image.fromarray(np.ones((2, 2), dtype=np.float32)).save(path)
    with pytest.raises(ImageReadError, match="float"):
        load_image(path)


def test_exif_orientation_is_ignored(tmp_path):
    array = np.zeros((4, 8, 3), dtype=np.uint8)
    image = Image.fromarray(array)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": a viewer would show 8x4
    path = tmp_path / "rot.jpg"
    image.save(path, exif=exif)
    assert load_image(path).shape == (4, 8, 3)


def test_truncated_jpeg_raises(tmp_path, image_writer):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    path = image_writer(tmp_path / "t.jpg", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="truncated") as info:
        load_image(path)
    assert str(path) in str(info.value)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False  # never changed behind the caller's back


def test_truncated_png_raises(tmp_path, image_writer):
    path = image_writer(tmp_path / "t.png", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError):
        load_image(path)


def test_text_file_named_jpg_raises(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not an image")
    with pytest.raises(ImageReadError, match="not a readable image") as info:
        load_image(path)
    assert info.value.path == str(path) and info.value.fix


@pytest.mark.parametrize("kind", ["missing", "directory", "empty"])
def test_bad_paths_raise_with_path_and_fix(tmp_path, kind):
    path = tmp_path / "x.png"
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert str(path) in str(info.value) and info.value.fix
    assert isinstance(info.value, DataError)


def test_zero_width_png_raises(tmp_path):
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", 0, 10, 8, 0, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    path = tmp_path / "zero.png"
    path.write_bytes(png)
    with pytest.raises(ImageReadError):
        load_image(path)
    with pytest.raises(ImageReadError):
        image_size(path)


def test_image_size_reads_header(tmp_path, image_writer):
    assert image_size(image_writer(tmp_path / "s.jpg", size=(9, 13))) == (9, 13)


def test_load_mask_nonzero_is_defect(tmp_path, mask_writer):
    mask = load_mask(mask_writer(tmp_path / "m.png", size=(12, 16)), (12, 16))
    assert mask.dtype == bool and mask.shape == (12, 16)
    assert mask.sum() == 12 and mask[3, 4]


def test_load_mask_any_channel_counts(tmp_path, image_writer):
    rgb = np.zeros((3, 3, 3), dtype=np.uint8)
    rgb[1, 1, 2] = 1
    mask = load_mask(image_writer(tmp_path / "m.png", rgb), (3, 3))
    assert mask.sum() == 1 and mask[1, 1]


def test_load_mask_ignores_alpha(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 3] = 255
    rgba[0, 0, 0] = 9
    path = tmp_path / "m.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    assert load_mask(path, (2, 2)).sum() == 1


def test_load_mask_size_mismatch_names_both_sizes_and_image(tmp_path, mask_writer):
    path = mask_writer(tmp_path / "m.png", size=(12, 16))
    with pytest.raises(ImageReadError) as info:
        load_mask(path, (10, 16), image_path="img.jpg")
    message = str(info.value)
    assert (
        "12x16" in message and "10x16" in message and "img.jpg" in message and str(path) in message
    )


def test_extensions_case_insensitive():
    assert ".jpg" in IMAGE_EXTENSIONS and ".webp" in IMAGE_EXTENSIONS
    assert is_image_file("A.JPG") and is_image_file("b.Tiff") and not is_image_file("c.txt")


def test_jpeg_with_corrupt_scan_data_is_refused(tmp_path):
    path = write_corrupt_jpeg(tmp_path / "band.jpg")
    with Image.open(path) as lenient:
        lenient.load()  # Pillow alone accepts it: the reason for the second, strict decode
    with pytest.raises(ImageReadError, match="JPEG scan data is corrupt") as info:
        load_image(path)
    assert "Corrupt JPEG data" in str(info.value)


def test_good_jpeg_has_no_decoder_warnings(tmp_path, image_writer):
    path = image_writer(tmp_path / "ok.jpg", size=(64, 64))
    assert jpeg_decoder_warnings(path) == []
    assert load_image(path).shape == (64, 64, 3)


def test_strict_jpeg_decoding_is_safe_across_threads(tmp_path, image_writer):
    good = image_writer(tmp_path / "ok.jpg", size=(128, 128))
    bad = write_corrupt_jpeg(tmp_path / "band.jpg")

    def judge(path):
        try:
            load_image(path)
            return "ok"
        except ImageReadError:
            return "refused"

    with ThreadPoolExecutor(max_workers=4) as pool:
        verdicts = list(pool.map(judge, [good, bad] * 10))
    assert verdicts == ["ok", "refused"] * 10


def test_png_with_bad_idat_checksum_is_refused(tmp_path, image_writer):
    path = image_writer(tmp_path / "crc.png", size=(32, 32))
    data = bytearray(path.read_bytes())
    idat = data.find(b"IDAT")
    length = struct.unpack(">I", data[idat - 4:idat])[0]
    crc_at = idat + 4 + length
    data[crc_at] ^= 0xFF  # the pixels still inflate; only the checksum says they are damaged
    path.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="checksum"):
        load_image(path)


@pytest.mark.parametrize("suffix", [".tif", ".webp"])
def test_multi_frame_file_is_refused(tmp_path, suffix):
    frames = [Image.fromarray(np.full((16, 16, 3), value, np.uint8)) for value in (10, 200)]
    path = tmp_path / f"pages{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match="2 frames"):
        load_image(path)


def test_single_frame_tiff_is_read(tmp_path):
    path = tmp_path / "one.tif"
    Image.fromarray(np.full((8, 8, 3), 7, np.uint8)).save(path)
    assert load_image(path)[0, 0].tolist() == [7, 7, 7]
