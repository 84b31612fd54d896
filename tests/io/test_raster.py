"""PNG / TIFF / JPEG reading and writing."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import tifffile
from PIL import Image

from medsr import meta as mk
from medsr.errors import InputError
from medsr.io import load_image, save_image


def _random(dtype, shape=(37, 53), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_roundtrip_exact(tmp_path, dtype):
    arr = _random(dtype)
    Image.fromarray(arr).save(tmp_path / "in.png")
    img = load_image(tmp_path / "in.png")
    assert img.shape == (1, 53, 37)  # (X, Y): columns x rows
    np.testing.assert_array_equal(img[0].numpy(), arr.T.astype(np.float32))
    m = img.meta
    assert m[mk.FORMAT] == "png" and m[mk.MODALITY] == "xray" and m[mk.SPACING_SOURCE] == "none"
    assert m[mk.BITS_STORED] == 8 * np.dtype(dtype).itemsize
    out = save_image(img, tmp_path / "out.png")
    back = np.asarray(Image.open(out))
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_roundtrip_exact(tmp_path, dtype):
    arr = _random(dtype, seed=1)
    tifffile.imwrite(tmp_path / "in.tif", arr)
    img = load_image(tmp_path / "in.tif")
    assert img.meta[mk.FORMAT] == "tiff"
    out = save_image(img, tmp_path / "out.tiff")
    back = tifffile.imread(out)
    assert back.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(back, arr)


def test_round_and_clip_on_write(tmp_path):
    Image.fromarray(np.full((4, 5), 100, np.uint8)).save(tmp_path / "in.png")
    img = load_image(tmp_path / "in.png")
    img[0, 0, 0], img[0, 1, 0], img[0, 2, 0] = -20.0, 300.0, 41.6
    back = np.asarray(Image.open(save_image(img, tmp_path / "out.png")))
    assert (back[0, 0], back[0, 1], back[0, 2]) == (0, 255, 42)


def test_sample_png_x2(sample, tmp_path, upscale):
    img = load_image(sample / "cxr_hannover_006f3a8a.png")
    assert img.shape == (1, 640, 599)
    out = save_image(upscale(img, (2, 2)), tmp_path / "cxr_sr2x.png")
    back = Image.open(out)
    assert back.size == (1280, 1198) and back.mode == "L"


def test_jpeg_written_as_jpeg(tmp_path):
    y, x = np.mgrid[0:64, 0:80]
    arr = (100 + 60 * np.sin(x / 9.0) * np.cos(y / 7.0)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "in.jpg", quality=95)
    img = load_image(tmp_path / "in.jpg")
    assert img.meta[mk.FORMAT] == "jpeg"
    out = save_image(img, tmp_path / "out.jpeg")
    back = Image.open(out)
    assert back.format == "JPEG" and back.mode == "L"
    assert np.abs(np.asarray(back, dtype=float) - img[0].numpy().T).mean() < 2.0


def test_grey_saved_as_rgb_is_read_as_grey(tmp_path):
    arr = _random(np.uint8, seed=2)
    Image.fromarray(np.stack([arr] * 3, axis=-1)).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgb.png")[0].numpy(), arr.T)


@pytest.mark.parametrize("name", ["rgb.png", "rgb.tif"])
def test_colour_read_as_rgb_and_written_back(tmp_path, name):
    rgb = _random(np.uint8, shape=(11, 7, 3), seed=5)
    if name.endswith(".png"):
        Image.fromarray(rgb).save(tmp_path / name)
    else:
        tifffile.imwrite(tmp_path / name, rgb, photometric="rgb")
    img = load_image(tmp_path / name)
    assert img.shape == (3, 7, 11)  # channel-first (C, X, Y): columns x rows
    assert img.meta[mk.PHOTOMETRIC] == "RGB"
    np.testing.assert_array_equal(img.numpy(), rgb.transpose(2, 1, 0).astype(np.float32))
    out = tmp_path / f"out_{name}"
    save_image(img, out)
    back = np.asarray(Image.open(out)) if name.endswith(".png") else tifffile.imread(out)
    np.testing.assert_array_equal(back, rgb)


def test_colour_with_transparency_refused(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 100
    Image.fromarray(rgba).save(tmp_path / "red.png")
    with pytest.raises(InputError, match="transparency"):
        load_image(tmp_path / "red.png")


def test_truncated_png(sample, tmp_path):
    data = (sample / "cxr_hannover_006f3a8a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated or corrupt"):
        load_image(tmp_path / "cut.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.png"]


def test_huge_declared_png(tmp_path):
    """A PNG whose header claims 100000 x 100000 pixels is refused before any allocation."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b"")
    (tmp_path / "bomb.png").write_bytes(png)
    with pytest.raises(InputError, match="limit"):
        load_image(tmp_path / "bomb.png")


def test_multipage_tiff_refused(tmp_path):
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((3, 8, 8), np.uint16), photometric="minisblack")
    with pytest.raises(InputError, match="multi-page"):
        load_image(tmp_path / "stack.tif")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_encoding_block_by_block_equals_one_shot(monkeypatch, dtype):
    from medsr.io import raster

    rng = np.random.default_rng(0)
    values = (rng.random((37, 23), dtype=np.float32) * 80000 - 10000).T  # a transposed view, as the writer passes
    monkeypatch.setattr(raster, "_ENCODE_CHUNK", 50)  # blocks of 2 rows: the last block is partial
    got = raster._encode(values, np.dtype(dtype))
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        want = np.clip(np.rint(values.astype(np.float64)), info.min, info.max).astype(dtype)
    else:
        want = values.astype(dtype)
    assert got.flags.c_contiguous and got.dtype == dtype
    np.testing.assert_array_equal(got, want)
