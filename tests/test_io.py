"""ImageFolderLoader reads every file as a viewer shows it, or raises an error naming it.

The reading of plain 8-bit files, resizing, threads and containers of paths are tested
with the pipelines that use them, in ``test_workflows.py``.
"""

import os
import warnings

import numpy as np
import pytest
from PIL import Image

from skssl.io import ImageFolderLoader

RAMP = np.arange(48).reshape(6, 8)  # distinct values, 6 rows by 8 columns


def _save(path, image, **options):
    image.save(path, **options)
    return path


def _read(path, mode="L", **params):
    return ImageFolderLoader(mode=mode, **params).transform([path])[0]


# -- depth: scaled to 0..255, never clipped ---------------------------------------------


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    values = (RAMP * 1365).astype(np.uint16)  # 0 .. 64155
    expected = np.rint(values * (255 / 65535)).astype(np.uint8)
    png = _save(tmp_path / "16bit.png", Image.fromarray(values))
    assert Image.open(png).mode == "I;16"
    np.testing.assert_array_equal(_read(png), expected)
    np.testing.assert_array_equal(_read(png, "RGB"), np.repeat(expected[..., None], 3, axis=2))
    as_int32 = _save(tmp_path / "32bit.tif", Image.fromarray(values.astype(np.int32)))
    assert Image.open(as_int32).mode == "I"
    np.testing.assert_array_equal(_read(as_int32), expected)


def test_float_images_are_scaled_from_0_1(tmp_path):
    values = (RAMP / 47).astype(np.float32)
    tif = _save(tmp_path / "float.tif", Image.fromarray(values))
    assert Image.open(tif).mode == "F"
    np.testing.assert_array_equal(_read(tif), np.rint(values.astype(np.float64) * 255).astype(np.uint8))


@pytest.mark.parametrize(
    "values, message",
    [
        (RAMP.astype(np.float32) * 2, r"float values in \[0, 94\].*outside the range \[0, 1\]"),
        (RAMP.astype(np.int32) - 1, r"integer values in \[-1, 46\].*outside the range \[0, 65535\]"),
        (RAMP.astype(np.int32) * 10**6, r"integer values in \[0, 4.7e\+07\]"),
    ],
    ids=["float-above-1", "negative-int", "int-above-65535"],
)
def test_high_depth_values_out_of_range_are_refused(tmp_path, values, message):
    tif = _save(tmp_path / "deep.tif", Image.fromarray(values))
    with pytest.raises(ValueError, match="deep.tif' holds " + message):
        _read(tif)


# -- palette, transparency, orientation -------------------------------------------------


def _palette_image(transparent=None):
    image = Image.new("P", (8, 6))
    image.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.putdata((RAMP % 3).ravel().tolist())
    if transparent is not None:
        image.info["transparency"] = transparent
    return image


def test_palette_images_give_their_colours(tmp_path):
    png = _save(tmp_path / "palette.png", _palette_image())
    colours = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(_read(png, "RGB"), colours[RAMP % 3])
    np.testing.assert_array_equal(_read(png, "L"), np.array([76, 150, 29], dtype=np.uint8)[RAMP % 3])  # ITU-R 601
    transparent = _save(tmp_path / "palette_alpha.png", _palette_image(transparent=1))  # green is see-through
    colours[1] = 255
    np.testing.assert_array_equal(_read(transparent, "RGB"), colours[RAMP % 3])


def test_transparent_pixels_are_composited_on_white(tmp_path):
    alpha = RAMP * 255 // 47  # 0 (transparent) .. 255 (opaque)
    colour = np.zeros((6, 8, 4), dtype=np.uint8)
    colour[..., 0], colour[..., 3] = 200, alpha
    opacity = alpha / 255
    expected = np.stack([200 * opacity + 255 * (1 - opacity)] + [255 * (1 - opacity)] * 2, axis=-1)
    rgba = _save(tmp_path / "rgba.png", Image.fromarray(colour))
    np.testing.assert_allclose(_read(rgba, "RGB"), expected, atol=1)
    assert _read(rgba, "RGB")[0, 0].tolist() == [255, 255, 255]  # fully transparent: white, not the stored red
    gray_alpha = np.stack([np.full((6, 8), 40), alpha], axis=-1).astype(np.uint8)
    gray = _save(tmp_path / "la.png", Image.fromarray(gray_alpha, "LA"))
    np.testing.assert_allclose(_read(gray), 40 * opacity + 255 * (1 - opacity), atol=1)


def test_exif_orientation_turns_the_image_upright(tmp_path):
    stored = np.zeros((16, 24), dtype=np.uint8)  # JPEG is lossy: blocks of 8 survive it
    stored[:8, :8], stored[8:, 16:] = 255, 128
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    jpeg = _save(tmp_path / "phone.jpg", Image.fromarray(stored), exif=exif, quality=100)
    upright = _read(jpeg)
    assert upright.shape == (24, 16)
    np.testing.assert_allclose(upright, np.rot90(stored, k=-1), atol=8)
    plain = _save(tmp_path / "plain.jpg", Image.fromarray(stored), quality=100)
    assert _read(plain).shape == (16, 24)


# -- files that cannot be read: errors naming the file ----------------------------------


@pytest.fixture
def good(tmp_path):
    return _save(tmp_path / "good.png", Image.fromarray(RAMP.astype(np.uint8)))


def test_a_truncated_file_names_the_file(tmp_path, good):
    noise = np.random.default_rng(0).integers(0, 256, size=(64, 64), dtype=np.uint8)  # compresses badly
    whole = _save(tmp_path / "noise.png", Image.fromarray(noise)).read_bytes()
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match="Cannot decode .*truncated.png'.*truncated or corrupt; re-save it"):
        ImageFolderLoader().transform([good, truncated])


def test_a_file_that_is_not_an_image_names_the_file(tmp_path, good):
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="Cannot read .*notes.png' as an image: Pillow recognises no image format"):
        ImageFolderLoader(n_jobs=2).transform([good, text])


def test_a_directory_is_an_is_a_directory_error(tmp_path, good):
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.png' is a directory, not an image file; list the files"):
        ImageFolderLoader().transform([good, tmp_path / "folder.png"])


def test_a_missing_file_is_a_file_not_found_error(tmp_path, good):
    with pytest.raises(FileNotFoundError, match="missing.png'. Check the path, or pass root="):
        ImageFolderLoader().transform([good, tmp_path / "missing.png"])


def test_an_unreadable_file_is_a_permission_error(tmp_path, good, monkeypatch):
    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", os.fspath(path))

    monkeypatch.setattr(Image, "open", refuse)  # root reads any file: a chmod would not refuse it
    with pytest.raises(PermissionError, match="Permission denied reading .*good.png'; make the file readable"):
        ImageFolderLoader().transform([good])


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads unreadable files")
def test_a_file_without_read_permission(tmp_path, good):
    good.chmod(0)
    try:
        with pytest.raises(PermissionError, match="good.png"):
            ImageFolderLoader().transform([good])
    finally:
        good.chmod(0o644)


def test_an_io_error_keeps_its_class_and_names_the_file(good, monkeypatch):
    def fail(path, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(Image, "open", fail)
    with pytest.raises(OSError, match="Cannot read .*good.png': Input/output error") as raised:
        ImageFolderLoader().transform([good])
    assert raised.value.errno == 5


@pytest.mark.parametrize("limit", [40, 20], ids=["above-the-limit", "above-twice-the-limit"])
@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_decompression_bomb_is_refused(tmp_path, good, monkeypatch, limit, n_jobs):
    small = _save(tmp_path / "small.png", Image.fromarray(np.zeros((4, 4), dtype=np.uint8)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)  # good.png has 48 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # refused, not merely warned about
        with pytest.raises(
            ValueError, match=r"Refusing .*good.png' as a possible decompression bomb.*MAX_IMAGE_PIXELS"
        ):
            ImageFolderLoader(size=4, n_jobs=n_jobs).transform([small, small, good])
        assert ImageFolderLoader(n_jobs=n_jobs).transform([small, small]).shape == (2, 4, 4, 3)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow's own switch lifts the limit
    assert _read(good).shape == (6, 8)
