"""``load_rgb``'s plain-JPEG path: Pillow's decoder without Pillow's Python header parser.

A plain JPEG (one 8-bit Huffman frame of 1 or 3 components, no orientation-carrying APP1,
not multi-picture) is decoded by ``Image.frombytes(..., "jpeg", mode, "")``: the decoder
and arguments ``Image.open`` + ``load`` use. These tests hold it to the full path's pixels
on every variant Pillow writes and on mutated files, and check that what it declines
(orientation, CMYK, MPO, pixel limits, disallowed formats, truncation) still gets the full
path's result or error.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from augbal.data import ImageLoadError, load_rgb
from augbal.data._io import _jpeg_frame, decode, open_image, plain_jpeg, to_rgb
from tests.data.test_fuzz_load import mutate

_RNG = np.random.default_rng(3)
_RGB = Image.fromarray(_RNG.integers(0, 256, (12, 17, 3), dtype=np.uint8))


def _jpeg(im: Image.Image, fmt: str = "JPEG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _plain(data: bytes) -> np.ndarray | None:
    """The plain path's pixels, as ``load_rgb`` returns them (or None: declined)."""
    im = plain_jpeg(data, max_pixels=None, formats=None)
    return None if im is None else np.array(im.convert("RGB"))


def _full_path(data: bytes) -> np.ndarray:
    """What ``load_rgb`` returned before the plain path: Pillow parses, decodes, converts."""
    with open_image(io.BytesIO(data), "x.jpg", max_pixels=None, formats=None) as im:
        decode(im, "x.jpg")
        return to_rgb(im)


PLAIN = {
    "baseline 4:2:0": _jpeg(_RGB),
    "4:4:4": _jpeg(_RGB, subsampling=0),
    "4:2:2 quality 30": _jpeg(_RGB, subsampling=1, quality=30),
    "progressive": _jpeg(_RGB, progressive=True),
    "restart markers": _jpeg(_RGB, restart_marker_blocks=1),
    "optimized tables": _jpeg(_RGB, optimize=True),
    "grayscale": _jpeg(_RGB.convert("L")),
    "1x1": _jpeg(_RGB.resize((1, 1))),
    "comment and ICC profile": _jpeg(_RGB, comment=b"made by a test", icc_profile=b"\0" * 300),
}


@pytest.mark.parametrize("name", list(PLAIN))
def test_plain_jpegs_decode_to_the_full_paths_pixels(tmp_path, name):
    data = PLAIN[name]
    fast = _plain(data)
    assert fast is not None, "a plain JPEG takes the plain path"
    want = _full_path(data)
    assert fast.dtype == np.uint8 and fast.shape == want.shape
    assert np.array_equal(fast, want)
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    got = load_rgb(path)
    assert np.array_equal(got, want) and got.flags.writeable


def _exif_rotated() -> bytes:
    exif = _RGB.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    return _jpeg(_RGB, exif=exif)


def _xmp_rotated() -> bytes:
    xmp = (b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" tiff:Orientation="6"/></rdf:RDF></x:xmpmeta>')
    return _jpeg(_RGB, xmp=xmp)


DECLINED = {
    "EXIF orientation": _exif_rotated,
    "XMP orientation": _xmp_rotated,
    "CMYK": lambda: _jpeg(_RGB.convert("CMYK")),
    "MPO": lambda: _jpeg(_RGB, "MPO", save_all=True, append_images=[_RGB.rotate(90)]),
}


@pytest.mark.parametrize("name", list(DECLINED))
def test_jpegs_the_plain_path_declines_get_the_full_path(tmp_path, name):
    data = DECLINED[name]()
    assert _jpeg_frame(data) is None
    path = tmp_path / "x.jpg"
    path.write_bytes(data)
    got, want = load_rgb(path), _full_path(data)
    assert np.array_equal(got, want)
    if "orientation" in name:  # the full path applied it: 17 wide, 12 high -> 12 wide, 17 high
        assert got.shape == (17, 12, 3)


def test_limits_formats_and_truncation_still_say_what_is_wrong(tmp_path):
    path = tmp_path / "x.jpg"
    data = PLAIN["baseline 4:2:0"]
    path.write_bytes(data)
    with pytest.raises(ImageLoadError, match="over the limit of max_pixels=100") as too_large:
        load_rgb(path, max_pixels=100)
    with pytest.raises(ImageLoadError, match="image format JPEG is not allowed") as fmt:
        load_rgb(path, formats=["PNG"])
    assert load_rgb(path, formats=["jpg"]).shape == (12, 17, 3)
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(ImageLoadError) as truncated:
        load_rgb(path)
    assert [e.value.kind for e in (too_large, fmt, truncated)] == ["too-large", "format", "truncated"]
    assert all(str(path) in str(e.value) for e in (too_large, fmt, truncated))


@pytest.mark.parametrize("name", ["baseline 4:2:0", "progressive", "grayscale", "restart markers"])
def test_mutated_jpegs_decode_on_the_plain_path_only_as_the_full_path_does(name):
    """Whenever the plain path returns pixels for a mutated file, the full path returns the
    same pixels (it never accepts what Pillow refuses, nor decodes it differently)."""
    data, rng = PLAIN[name], np.random.default_rng([11, len(name)])
    plain = 0
    for _ in range(400):
        bad = mutate(data, rng)
        fast = _plain(bad)
        if fast is None:
            continue
        plain += 1
        assert np.array_equal(fast, _full_path(bad))
    assert plain >= 40  # the plain path was exercised (flips in the scan data still decode)


def test_scan_records_the_same_index_and_problems_through_the_plain_path(tmp_path, monkeypatch):
    import augbal.data._scan as scan_module
    from augbal.data import scan

    for i, (name, data) in enumerate({**PLAIN, "exif": _exif_rotated(), "cmyk": DECLINED["CMYK"]()}.items()):
        folder = tmp_path / "src" / ("a", "b")[i % 2]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:02d}.jpg").write_bytes(data)
    (tmp_path / "src" / "a" / "cut.jpg").write_bytes(PLAIN["progressive"][:-30])  # truncated
    (tmp_path / "src" / "b" / "flipped.jpg").write_bytes(mutate(PLAIN["baseline 4:2:0"], np.random.default_rng(5)))
    taken = []
    real = scan_module.plain_jpeg
    monkeypatch.setattr(scan_module, "plain_jpeg", lambda data, **kw: taken.append(real(data, **kw)) or taken[-1])
    fast = scan(tmp_path / "src", near_duplicates=True, workers=1)
    assert sum(im is not None for im in taken) >= len(PLAIN)  # the plain path was taken
    monkeypatch.setattr(scan_module, "plain_jpeg", lambda data, **kw: None)
    full = scan(tmp_path / "src", near_duplicates=True, workers=1)
    for field in ("paths", "labels", "nbytes", "hashes", "widths", "heights", "modes", "phashes", "groups"):
        assert getattr(fast, field).tolist() == getattr(full, field).tolist(), field
    assert [(p.path, p.kind) for p in fast.problems] == [(p.path, p.kind) for p in full.problems]
    assert any(p.kind == "truncated" and p.path.endswith("cut.jpg") for p in fast.problems)
