import os

import numpy as np
import pytest
from PIL import Image

from augbal.data import DEFAULT_MAX_PIXELS, ImageLoadError, load_rgb


def _gradient(w=8, h=6):
    x = np.arange(w * h * 3, dtype=np.uint8).reshape(h, w, 3)
    return Image.fromarray(x, "RGB")


def test_rgb_png_roundtrip_exact(tmp_path):
    im = _gradient()
    im.save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (6, 8, 3)
    assert np.array_equal(out, np.asarray(im))


def test_exif_orientation_is_applied(tmp_path):
    im = Image.new("RGB", (8, 4), (0, 0, 0))
    im.putpixel((0, 0), (255, 255, 255))
    exif = im.getexif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    im.save(tmp_path / "o.jpg", exif=exif, quality=100)
    out = load_rgb(tmp_path / "o.jpg")
    assert out.shape == (8, 4, 3)
    # the stored top-left pixel ends at the top-right after a clockwise turn
    assert out[0, 3].min() > 200 and out[0, 0].max() < 60


def test_rgba_la_and_palette_transparency_use_background(tmp_path):
    rgba = Image.new("RGBA", (3, 2), (255, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    rgba.save(tmp_path / "rgba.png")
    out = load_rgb(tmp_path / "rgba.png", background=(0, 0, 255))
    assert out[0, 0].tolist() == [255, 0, 0] and out[1, 2].tolist() == [0, 0, 255]
    half = Image.new("RGBA", (1, 1), (255, 255, 255, 128))
    half.save(tmp_path / "half.png")
    assert load_rgb(tmp_path / "half.png", background=(0, 0, 0))[0, 0].tolist() == [128, 128, 128]

    Image.new("LA", (2, 2), (200, 0)).save(tmp_path / "la.png")
    assert load_rgb(tmp_path / "la.png")[0, 0].tolist() == [255, 255, 255]

    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 255, 0] + [9, 9, 9] * 255)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "pal.png", transparency=0)
    out = load_rgb(tmp_path / "pal.png", background=(10, 20, 30))
    assert out[0, 0].tolist() == [10, 20, 30] and out[0, 1].tolist() == [9, 9, 9]


def test_palette_without_transparency_and_gif(tmp_path):
    pal = Image.new("P", (2, 1))
    pal.putpalette([0, 255, 0, 1, 2, 3] + [0, 0, 0] * 254)
    pal.putpixel((1, 0), 1)
    pal.save(tmp_path / "p.gif")
    assert load_rgb(tmp_path / "p.gif").tolist() == [[[0, 255, 0], [1, 2, 3]]]


def test_16_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 30000, 65535]], dtype=np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    out = load_rgb(tmp_path / "deep.png")
    assert out[0, :, 0].tolist() == [0, 1, 117, 255]
    assert np.array_equal(out[..., 0], out[..., 2])
    Image.fromarray(values).save(tmp_path / "deep.tif")
    assert load_rgb(tmp_path / "deep.tif")[0, :, 1].tolist() == [0, 1, 117, 255]


def test_cmyk_grayscale_and_bilevel(tmp_path):
    Image.new("CMYK", (2, 2), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    red = load_rgb(tmp_path / "c.jpg")[0, 0]
    assert red[0] > 240 and red[1] < 15 and red[2] < 15
    Image.new("L", (2, 2), 77).save(tmp_path / "g.png")
    assert load_rgb(tmp_path / "g.png")[1, 1].tolist() == [77, 77, 77]
    Image.new("1", (2, 2), 1).save(tmp_path / "b.bmp")
    assert load_rgb(tmp_path / "b.bmp")[0, 0].tolist() == [255, 255, 255]


def test_format_allow_list(tmp_path):
    Image.new("RGB", (2, 2)).save(tmp_path / "x.ppm")
    with pytest.raises(ImageLoadError, match=r"x\.ppm.*PPM is not allowed") as info:
        load_rgb(tmp_path / "x.ppm")
    assert info.value.kind == "format"
    assert load_rgb(tmp_path / "x.ppm", formats=None).shape == (2, 2, 3)
    _gradient().save(tmp_path / "y.png")
    with pytest.raises(ImageLoadError, match="PNG is not allowed"):
        load_rgb(tmp_path / "y.png", formats=("JPEG",))


def test_decompression_bomb_is_a_clear_error_and_pillow_global_untouched(tmp_path):
    before = Image.MAX_IMAGE_PIXELS
    Image.new("1", (200, 100)).save(tmp_path / "bomb.png")
    with pytest.raises(ImageLoadError, match=r"bomb\.png.*200x100 = 20000 pixels.*max_pixels=10000") as info:
        load_rgb(tmp_path / "bomb.png", max_pixels=10_000)
    assert info.value.kind == "too-large"
    assert load_rgb(tmp_path / "bomb.png", max_pixels=20_000).shape == (100, 200, 3)
    assert Image.MAX_IMAGE_PIXELS == before and DEFAULT_MAX_PIXELS == 89_478_485


def test_looser_limit_than_pillow_is_honoured_without_changing_it(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    Image.new("L", (30, 30)).save(tmp_path / "big.png")  # 900 px > 2 * Pillow's limit
    with pytest.raises(Image.DecompressionBombError):
        Image.open(tmp_path / "big.png")
    assert load_rgb(tmp_path / "big.png", max_pixels=1000).shape == (30, 30, 3)
    assert load_rgb(tmp_path / "big.png", max_pixels=None).shape == (30, 30, 3)
    assert Image.MAX_IMAGE_PIXELS == 100


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    _gradient(32, 32).save(tmp_path / "t.jpg", quality=90)
    data = (tmp_path / "t.jpg").read_bytes()
    (tmp_path / "t.jpg").write_bytes(data[:-40])
    with Image.open(tmp_path / "t.jpg") as im:  # the header parse does not see it
        assert im.size == (32, 32)
    with pytest.raises(ImageLoadError, match=r"t\.jpg: cannot decode image: image file is truncated") as info:
        load_rgb(tmp_path / "t.jpg")
    assert info.value.kind == "truncated"
    (tmp_path / "h.jpg").write_bytes(data[:100])
    with pytest.raises(ImageLoadError, match=r"h\.jpg: cannot parse image header") as info:
        load_rgb(tmp_path / "h.jpg")
    assert info.value.kind == "truncated"
    (tmp_path / "junk.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    with pytest.raises(ImageLoadError, match=r"junk\.png") as info:
        load_rgb(tmp_path / "junk.png")
    assert info.value.kind == "corrupt"
    (tmp_path / "text.jpg").write_text("hello")
    with pytest.raises(ImageLoadError, match=r"text\.jpg: not a readable image"):
        load_rgb(tmp_path / "text.jpg")


def test_every_default_format_loads_and_animated_gif_gives_first_frame(tmp_path):
    im = _gradient()
    for ext, kwargs in ((".jpg", {"quality": 100}), (".png", {}), (".bmp", {}), (".tif", {}), (".webp", {"lossless": True})):
        im.save(tmp_path / f"x{ext}", **kwargs)
        out = load_rgb(tmp_path / f"x{ext}")
        assert out.shape == (6, 8, 3), ext
        if ext != ".jpg":
            assert np.array_equal(out, np.asarray(im)), ext
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_rgb(tmp_path / "anim.gif")[0, 0].tolist() == [255, 0, 0]


def test_unknown_format_names_are_an_error_and_jpg_tif_are_aliases(tmp_path):
    from augbal.data import scan

    Image.new("RGB", (4, 4)).save(tmp_path / "x.jpg")
    Image.new("RGB", (4, 4)).save(tmp_path / "x.tif")
    assert load_rgb(tmp_path / "x.jpg", formats=("jpg",)).shape == (4, 4, 3)
    assert load_rgb(tmp_path / "x.tif", formats="TIF").shape == (4, 4, 3)
    with pytest.raises(ValueError, match=r"unknown: BOGUS; got \['JPEG', 'bogus'\]"):
        load_rgb(tmp_path / "x.jpg", formats=("JPEG", "bogus"))
    (tmp_path / "data" / "a").mkdir(parents=True)
    for k in range(3):
        Image.new("RGB", (4, 4), (80 * k, 0, 0)).save(tmp_path / "data" / "a" / f"{k}.jpg")
    with pytest.raises(ValueError, match="unknown: JEPG"):
        scan(tmp_path / "data", formats=("JEPG",))
    index = scan(tmp_path / "data", formats=("jpg",))  # was: every file "corrupt" (KeyError: 'JPG')
    assert len(index) == 3 and index.problems == ()


def _huge_png(path, width, height):
    """A valid PNG header claiming ``width x height`` pixels, with a tiny (short) data stream."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


def test_pillow_limit_never_speaks_only_max_pixels_does(tmp_path, recwarn):
    # 144M pixels: over Pillow's warning limit (89M); 900M: over its error limit (179M)
    big = _huge_png(tmp_path / "big.png", 12000, 12000)
    huge = _huge_png(tmp_path / "huge.png", 30000, 30000)
    with pytest.raises(ImageLoadError) as info:
        load_rgb(big)
    assert str(info.value) == (
        f"{big}: image has 12000x12000 = 144000000 pixels, over the limit of max_pixels=89478485 "
        "(decompression-bomb guard)"
    )
    with pytest.raises(ImageLoadError) as info:
        load_rgb(huge, max_pixels=1_000_000)
    assert info.value.kind == "too-large"
    assert "30000x30000 = 900000000 pixels" in str(info.value) and "max_pixels=1000000" in str(info.value)
    assert "178956970" not in str(info.value)
    # a PNG refused by the allow-list is a format problem, whatever its size
    with pytest.raises(ImageLoadError, match=r"image format PNG is not allowed") as info:
        load_rgb(huge, formats=("JPEG",))
    assert info.value.kind == "format"
    assert [str(w.message) for w in recwarn] == []
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS



def test_concurrent_loads_keep_pillows_limit_and_warning_filters(tmp_path):
    import threading
    import warnings

    big = _huge_png(tmp_path / "big.png", 12000, 12000)
    _gradient().save(tmp_path / "ok.png")
    filters_before = list(warnings.filters)
    results, errors = [], []

    def work():
        try:
            for _ in range(40):
                results.append(load_rgb(tmp_path / "ok.png").shape)
                try:
                    load_rgb(big)
                except ImageLoadError as exc:
                    results.append(exc.kind)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and [str(w.message) for w in caught] == []
    assert results.count((6, 8, 3)) == 160 and results.count("too-large") == 160
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS and warnings.filters == filters_before



def test_loaded_arrays_are_writable_for_every_conversion_path(tmp_path):
    # np.asarray(pil_image) is a read-only view of Pillow's bytes: in-place edits raised
    # "assignment destination is read-only" and default_collate warned about non-writable arrays
    cases = {
        "rgb.png": Image.new("RGB", (4, 2), (1, 2, 3)),
        "gray.png": Image.new("L", (4, 2), 9),
        "rgba.png": Image.new("RGBA", (4, 2), (1, 2, 3, 4)),
        "i16.png": Image.new("I;16", (4, 2), 257),
        "f.tif": Image.new("F", (4, 2), 0.5),
        "rgb.jpg": Image.new("RGB", (4, 2), (10, 20, 30)),
    }
    for name, im in cases.items():
        im.save(tmp_path / name)
        out = load_rgb(tmp_path / name)
        assert out.flags.writeable, name
        out[0, 0] = 0  # raised ValueError: assignment destination is read-only
        assert out.dtype == np.uint8 and out.shape == (2, 4, 3), name


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_while_another_thread_parses_a_header_leaves_the_child_a_free_lock(tmp_path):
    # DataLoader workers are forked: a fork while another thread held the Pillow-limit lock
    # gave the child a lock nobody releases (its first load_rgb hung) and Pillow's limit
    # and warning filters as the section had set them
    import multiprocessing
    import threading
    import time

    from augbal.data import _io

    _gradient().save(tmp_path / "ok.png")
    inside, done = threading.Event(), threading.Event()

    def hold():
        with _io._pillow_unchecked(123):
            inside.set()
            time.sleep(0.5)
        done.set()

    holder = threading.Thread(target=hold)
    holder.start()
    inside.wait()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_load_in_child, args=(str(tmp_path / "ok.png"), queue))
    child.start()  # forked while the holder thread is inside the section
    child.join(timeout=20)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    holder.join()
    assert not hung, "the forked child's load_rgb waited forever on the Pillow-limit lock"
    assert queue.get(timeout=5) == ((6, 8, 3), DEFAULT_MAX_PIXELS)
    assert done.is_set() and Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def _load_in_child(path, queue):
    limit = Image.MAX_IMAGE_PIXELS
    queue.put((load_rgb(path).shape, limit))
