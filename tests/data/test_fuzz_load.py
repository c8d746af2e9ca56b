"""Fuzz ``load_rgb`` with seeded mutations of small images in every decoded format.

Every outcome must be an ``(H, W, 3)`` ``uint8`` array or an ``ImageLoadError`` naming
the file; anything else escaping is a defect. ``benchmarks/fuzz_load_rgb.py`` runs the
same mutations for much longer (it imports ``seed_images`` and ``mutate`` from here).
"""

from __future__ import annotations

import functools
import io
import os
import struct

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin

from augbal.data import ImageLoadError, load_rgb

#: Small values that make integer header fields interesting (sizes, offsets, type codes).
_INTERESTING = (0, 1, 2, 3, 4, 5, 7, 8, 10, 11, 12, 16, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF,
                0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


@functools.lru_cache(maxsize=1)
def seed_images() -> dict[str, bytes]:
    """One small, deterministic file per format and mode worth fuzzing (name -> bytes)."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8))
    out: dict[str, bytes] = {}

    def save(name: str, im: Image.Image, fmt: str, **kw) -> None:
        buf = io.BytesIO()
        im.save(buf, fmt, **kw)
        out[name] = buf.getvalue()

    save("rgb.jpg", rgb, "JPEG", quality=80)
    exif = rgb.getexif()
    exif[0x0112] = 6  # orientation: exif_transpose parses it
    exif[0x011A] = TiffImagePlugin.IFDRational(72, 1)
    save("exif.jpg", rgb, "JPEG", exif=exif)
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    save("rgb.png", rgb, "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    gray16 = Image.fromarray(rng.integers(0, 65536, (12, 16), dtype=np.uint16))
    save("gray16.png", gray16, "PNG")
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette.png", pal, "PNG", transparency=0)
    save("rgb.webp", rgb, "WEBP", quality=70)
    save("rgba.webp", rgb.convert("RGBA"), "WEBP", lossless=True)
    save("rgb.bmp", rgb, "BMP")
    save("palette.bmp", pal, "BMP")
    save("palette.gif", pal, "GIF", transparency=0)
    frames = [pal, pal.rotate(90)]
    save("anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    # multi-strip TIFF (rows_per_strip) with rational resolution tags
    save("strips.tif", rgb, "TIFF", dpi=(72.5, 96.25), tiffinfo={278: 3}, compression="raw")
    save("lzw.tif", rgb.convert("CMYK"), "TIFF", compression="tiff_lzw", dpi=(300, 300))
    save("gray16.tif", gray16, "TIFF")
    return out


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One seeded mutation of ``data``: bit flips, byte overwrites, truncation, insertion,
    duplication, an interesting integer written over a header field, or (TIFF) a directory
    entry given another type or count."""
    buf = bytearray(data)
    n = len(buf)
    op = int(rng.integers(0, 8))
    if op == 7:  # TIFF: retype or recount one entry of the first directory (rational/ASCII offsets, ...)
        if buf[:4] not in (b"II*\x00", b"MM\x00*"):
            op = 0
        else:
            order = "<" if buf[:2] == b"II" else ">"
            (ifd,) = struct.unpack_from(order + "I", buf, 4)
            if ifd + 2 > n:
                op = 0
            else:
                (count,) = struct.unpack_from(order + "H", buf, ifd)
                entry = ifd + 2 + 12 * int(rng.integers(0, max(1, count)))
                if entry + 12 > n:
                    op = 0
                elif rng.integers(0, 2):
                    struct.pack_into(order + "H", buf, entry + 2, int(rng.integers(1, 13)))
                else:
                    value = _INTERESTING[int(rng.integers(0, len(_INTERESTING)))]
                    struct.pack_into(order + "I", buf, entry + 4, value)
                return bytes(buf)
    if op == 0:  # flip 1-8 bits anywhere
        for _ in range(int(rng.integers(1, 9))):
            i = int(rng.integers(0, n))
            buf[i] ^= 1 << int(rng.integers(0, 8))
    elif op == 1:  # overwrite 1-4 bytes with random values
        for _ in range(int(rng.integers(1, 5))):
            buf[int(rng.integers(0, n))] = int(rng.integers(0, 256))
    elif op == 2:  # truncate (possibly to nothing)
        buf = buf[: int(rng.integers(0, n))]
    elif op == 3:  # insert a chunk of random bytes
        i = int(rng.integers(0, n + 1))
        buf[i:i] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif op == 4:  # duplicate a slice somewhere else
        i, j = sorted(int(v) for v in rng.integers(0, n, 2))
        k = int(rng.integers(0, n))
        buf[k:k] = buf[i : j + 1][:256]
    else:  # an interesting 1/2/4-byte integer over a header field (first 256 bytes)
        size = (1, 2, 4)[int(rng.integers(0, 3))]
        value = _INTERESTING[int(rng.integers(0, len(_INTERESTING)))] & ((1 << (8 * size)) - 1)
        order = "<>"[int(rng.integers(0, 2))]
        i = int(rng.integers(0, max(1, min(n, 256) - size + 1)))
        buf[i : i + size] = struct.pack(order + {1: "B", 2: "H", 4: "I"}[size], value)
    return bytes(buf)


def check_one(path: str) -> str:
    """Load ``path``; return ``"ok"`` or the ``ImageLoadError`` kind; raise on a contract breach."""
    try:
        out = load_rgb(path, formats=None)
    except ImageLoadError as exc:
        if path not in str(exc):
            raise AssertionError(f"ImageLoadError does not name the file: {exc}") from exc
        return exc.kind
    if not (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3):
        raise AssertionError(f"{path}: load_rgb returned {type(out)} {getattr(out, 'shape', None)}")
    return "ok"


def test_seed_images_decode(tmp_path):
    for name, data in seed_images().items():
        p = tmp_path / name
        p.write_bytes(data)
        assert check_one(str(p)) == "ok", name


#: Mutations per seed image in `make test` (about 2 s in all); the benchmark runs far more.
_PER_SEED = 300

SEED_NAMES = ("anim.gif", "cmyk.jpg", "exif.jpg", "gray16.png", "gray16.tif", "lzw.tif", "palette.bmp", "palette.gif",
              "palette.png", "progressive.jpg", "rgb.bmp", "rgb.jpg", "rgb.png", "rgb.webp", "rgba.png", "rgba.webp",
              "strips.tif")


def test_seed_names_cover_the_seed_images():
    assert sorted(seed_images()) == list(SEED_NAMES)


@pytest.mark.parametrize("name", SEED_NAMES)
def test_mutated_files_load_or_raise_image_load_error(tmp_path, name):
    data = seed_images()[name]
    rng = np.random.default_rng([8, sum(name.encode())])
    outcomes: dict[str, int] = {}
    path = str(tmp_path / name)
    for _ in range(_PER_SEED):
        with open(path, "wb") as fh:
            fh.write(mutate(data, rng))
        kind = check_one(path)
        outcomes[kind] = outcomes.get(kind, 0) + 1
    assert sum(outcomes.values()) == _PER_SEED
    assert set(outcomes) <= {"ok", "corrupt", "truncated", "too-large", "format"}


def test_known_escapes_are_image_load_errors(tmp_path):
    # A TIFF whose StripOffsets tag is retyped RATIONAL: Pillow's decoder raised TypeError
    # ("'IFDRational' object cannot be interpreted as an integer") straight out of load_rgb.
    im = Image.new("RGB", (4, 4), (1, 2, 3))
    buf = io.BytesIO()
    im.save(buf, "TIFF", compression="raw")
    data = bytearray(buf.getvalue())
    (ifd,) = struct.unpack_from("<I", data, 4)
    (count,) = struct.unpack_from("<H", data, ifd)
    for k in range(count):
        entry = ifd + 2 + 12 * k
        tag, _typ = struct.unpack_from("<HH", data, entry)
        if tag == 273:  # StripOffsets
            struct.pack_into("<H", data, entry + 2, 5)  # RATIONAL
    p = tmp_path / "rational.tif"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError) as info:
        load_rgb(p)
    assert str(p) in str(info.value) and info.value.kind == "corrupt"
    assert info.value.__cause__ is not None


def test_zero_byte_file_says_empty_file(tmp_path):
    p = tmp_path / "zero.png"
    p.write_bytes(b"")
    with pytest.raises(ImageLoadError, match="empty file") as info:
        load_rgb(p)
    assert info.value.kind == "corrupt" and str(p) in str(info.value)


def test_png_with_a_broken_data_stream_is_corrupt_not_half_decoded(tmp_path):
    data = bytearray(seed_images()["rgb.png"])
    idat = data.index(b"IDAT")
    data[idat + 20 : idat + 28] = b"\xff" * 8  # inside the zlib stream (the CRC is not checked)
    p = tmp_path / "broken.png"
    p.write_bytes(bytes(data))
    with pytest.raises(ImageLoadError, match="cannot decode image") as info:
        load_rgb(p)
    assert info.value.kind == "corrupt" and str(p) in str(info.value)


def test_fuzz_found_gif_whose_header_is_a_bomb_is_too_large(tmp_path):
    # mutation 41 of the benchmark's job 7 (seed 0): a GIF whose parse sees a 937306044-pixel
    # size and later fails; with Pillow's check lifted it read as "cannot identify its format"
    rng = np.random.default_rng([0, 7])
    names = sorted(seed_images())
    for i in range(42):
        data = mutate(seed_images()[names[i % len(names)]], rng)
    p = tmp_path / "bomb.gif"
    p.write_bytes(data)
    with pytest.raises(ImageLoadError) as info:
        load_rgb(p, max_pixels=1_000_000)
    assert isinstance(info.value.__cause__, Image.DecompressionBombError)
    assert str(info.value) == f"{p}: image has 937306044 pixels, over the limit of max_pixels=1000000 (decompression-bomb guard)"
