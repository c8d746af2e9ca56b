"""Robust image loading: one decoded RGB array per file, whatever the file's mode."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import warnings
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ._errors import UnknownFormatError

#: Pillow format names decoded by default (``Image.format`` values).
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")

#: Largest image (width x height) decoded by default: Pillow's own default limit.
DEFAULT_MAX_PIXELS = 89_478_485

_PILLOW_LIMIT_LOCK = threading.RLock()
if hasattr(os, "register_at_fork"):  # a fork (DataLoader workers) waits for the section to end, so a
    # child never inherits the lock held by a thread it does not have, nor the section's Pillow state
    os.register_at_fork(
        before=_PILLOW_LIMIT_LOCK.acquire,
        after_in_parent=_PILLOW_LIMIT_LOCK.release,
        after_in_child=_PILLOW_LIMIT_LOCK.release,
    )


class ImageLoadError(ValueError):
    """A file that cannot be used as an image: ``kind`` says why, the message names the file.

    ``kind`` is one of ``"corrupt"`` (empty, or cannot be parsed or fully decoded),
    ``"truncated"``, ``"format"`` (an image format outside the allow-list) or
    ``"too-large"`` (more pixels than ``max_pixels``: a decompression bomb, or too
    large to decode in memory).
    """

    def __init__(self, path: str, kind: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:  # pickled by worker processes: rebuilt from what it names
        return type(self), (self.path, self.kind, self.reason), self.__dict__


#: Common spellings of Pillow format names (file extensions), accepted in ``formats``.
_FORMAT_ALIASES = {"JPG": "JPEG", "TIF": "TIFF"}


def check_formats(formats: Iterable[str] | None) -> list[str] | None:
    """Pillow format names from ``formats`` (upper-cased, aliases resolved), or ``None`` for all.

    Raises:
        UnknownFormatError: a name is not a format Pillow can open (a typo would otherwise
            refuse every file); a ``ValueError``.

    Example:
        >>> check_formats(["jpg", "png"])
        ['JPEG', 'PNG']
    """
    if formats is None:
        return None
    given = [formats] if isinstance(formats, str) else list(formats)
    names = [_FORMAT_ALIASES.get(str(f).strip().upper(), str(f).strip().upper()) for f in given]
    Image.init()
    unknown = [f for f in names if f not in Image.OPEN]
    if unknown:
        raise UnknownFormatError(unknown, given)
    return names




def load_rgb(
    path: str | os.PathLike[str],
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` ``uint8`` RGB array.

    A plain JPEG (8-bit, 1 or 3 components, no orientation metadata) is decoded by
    Pillow's JPEG decoder without Pillow's Python header parser (the same pixels, 2x
    faster for small images); everything else takes Pillow's full path.
    EXIF orientation is applied; palette, RGBA and LA images are composited onto
    ``background``; 16-bit images (``I;16``, ``I``) are scaled to 8 bits
    (``round(v / 257)``, so 65535 -> 255, not clipped); CMYK and other colour
    spaces are converted; grayscale and 1-bit are expanded to RGB. Only the first
    frame of animated files is read.

    Args:
        path: the image file.
        background: RGB colour under transparent pixels.
        max_pixels: refuse images with more pixels (decompression bombs); ``None``
            for no limit. Pillow's global ``Image.MAX_IMAGE_PIXELS`` is set to it
            only inside a lock while the header is parsed, then restored.
        formats: Pillow format names allowed (``None``: every format Pillow reads);
            ``JPG`` and ``TIF`` are read as ``JPEG`` and ``TIFF``.

    Raises:
        ImageLoadError: the file is empty, corrupt, truncated, too large or not an
            allowed format; the message names the file. Whatever a decoder raised
            (``TypeError``, ``struct.error``, ``SyntaxError``, ``MemoryError``, ...) is
            its ``__cause__``; no Pillow warning escapes.
        ValueError: ``formats`` names a format Pillow does not know.

    Example:
        >>> import tempfile, os
        >>> from PIL import Image
        >>> p = os.path.join(tempfile.mkdtemp(), "x.png")
        >>> Image.new("LA", (4, 2), (0, 0)).save(p)
        >>> load_rgb(p).shape, load_rgb(p)[0, 0].tolist()
        ((2, 4, 3), [255, 255, 255])
    """
    name = os.fspath(path)
    with open(name, "rb") as fh:
        if fh.read(3) == _JPEG_SOI:  # the common case, without Pillow's Python header parser
            plain = plain_jpeg(_JPEG_SOI + fh.read(), max_pixels=max_pixels, formats=formats)
            if plain is not None:
                pixels = np.array(plain, dtype=np.uint8)
                return np.repeat(pixels[:, :, None], 3, axis=2) if plain.mode == "L" else pixels
        fh.seek(0)
        im = open_image(fh, name, max_pixels=max_pixels, formats=formats)
        with im:
            decode(im, name)
            try:
                return to_rgb(im, background=background)
            except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
                raise _load_error(name, exc, "cannot convert image to RGB") from exc


_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_SOF = {0xC0, 0xC1, 0xC2}  # Huffman-coded baseline, extended and progressive frames
_JPEG_OTHER_SOF = {0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}  # lossless, arithmetic, hierarchical


def _jpeg_frame(data: bytes) -> tuple[str, int, int] | None:
    """``(mode, width, height)`` of a JPEG that ``plain_jpeg`` may decode, else ``None``.

    Walks the marker segments from SOI to the first SOS strictly (no junk between segments,
    each segment inside the file, whole quantisation tables: what Pillow's header parser
    refuses is refused here too) and accepts one 8-bit Huffman frame of 1 or 3 components
    and no APP1 (EXIF or XMP: either may carry an orientation) or MPF (multi-picture) segment.

    Example:
        >>> import io
        >>> from PIL import Image
        >>> buf = io.BytesIO(); Image.new("RGB", (5, 3)).save(buf, "JPEG")
        >>> _jpeg_frame(buf.getvalue()), _jpeg_frame(bytes.fromhex("ffd8ffd9"))
        (('RGB', 5, 3), None)
    """
    if not data.startswith(_JPEG_SOI):
        return None
    frame, at, end = None, 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # a fill byte before a marker
            at += 1
            continue
        if marker == 0xDA:  # start of scan: the header is complete
            return frame
        length = data[at + 2] << 8 | data[at + 3]
        body = data[at + 4 : at + 2 + length]
        if length < 2 or at + 2 + length > end:
            return None
        if marker in _JPEG_SOF:
            if frame is not None or len(body) < 6 or body[0] != 8 or body[5] not in (1, 3):
                return None
            height, width = body[1] << 8 | body[2], body[3] << 8 | body[4]
            if not width or not height or len(body) != 6 + 3 * body[5]:
                return None
            frame = ("L" if body[5] == 1 else "RGB", width, height)
        elif marker == 0xDB:  # quantisation tables: whole ones only (Pillow's "bad quantization table marker")
            while body:
                size = 1 + (64 if body[0] < 16 else 128)
                if len(body) < size:
                    return None
                body = body[size:]
        elif marker in _JPEG_OTHER_SOF or marker in (0xC8, 0xCC, 0xD8, 0xD9, 0x01) or 0xD0 <= marker <= 0xD7:
            return None
        elif marker == 0xE1 or (marker == 0xE2 and body.startswith(b"MPF\0")):
            return None
        at += 2 + length
    return None


def plain_jpeg(data: bytes, *, max_pixels: int | None, formats: Iterable[str] | None) -> Image.Image | None:
    """A plain JPEG (see ``_jpeg_frame``) decoded by Pillow's own JPEG decoder, else ``None``.

    Pillow opens a JPEG by parsing its markers in Python, then runs its libjpeg decoder with
    ``(mode, "")`` over the file; this runs the same decoder with the same arguments over
    the same bytes (``Image.frombytes``), so the image is Pillow's, without ~70 us of
    parsing per small image. ``None`` sends everything else (other frames, orientation, a
    pixel count over ``max_pixels``, formats without JPEG, any decoder error) down the one
    full path (``open_image`` and ``decode``), which reads and reports it. ``load_rgb`` and
    ``scan`` take this first.

    Example:
        >>> import io
        >>> buf = io.BytesIO(); Image.new("L", (4, 2), 7).save(buf, "JPEG")
        >>> im = plain_jpeg(buf.getvalue(), max_pixels=None, formats=["JPEG"])
        >>> im.mode, im.size, plain_jpeg(buf.getvalue(), max_pixels=None, formats=["PNG"])
        ('L', (4, 2), None)
    """
    frame = _jpeg_frame(data)
    if frame is None:
        return None
    mode, width, height = frame
    if max_pixels is not None and width * height > max_pixels:
        return None
    if formats is not None and "JPEG" not in check_formats(formats):
        return None
    try:
        return Image.frombytes(mode, (width, height), data, "jpeg", mode, "")
    except Exception:  # noqa: BLE001 - truncated, corrupt: the full path names what is wrong
        return None


def open_image(
    fp: BinaryIO,
    name: str,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> Image.Image:
    """Open (parse the header of) an image, checking its format and pixel count.

    This and ``decode`` are the one decoding path of ``scan`` and of ``load_rgb`` (which
    decodes plain JPEGs with the same decoder, skipping this header parse).
    Pillow's own pixel limit is not applied (``max_pixels`` is, and the message
    names the file and that limit) and Pillow's warnings while parsing the header
    (decompression bomb, corrupt EXIF) are silenced: the outcome is an image or an
    ``ImageLoadError``.

    Raises:
        ImageLoadError: with kind ``"format"``, ``"too-large"`` or ``"corrupt"``
            (``"truncated"``); any exception from Pillow is its ``__cause__``.
    """
    allowed = check_formats(formats)
    if _is_empty(fp):
        raise ImageLoadError(name, "corrupt", "empty file (0 bytes)")
    try:
        with _pillow_unchecked(max_pixels):
            im = Image.open(fp, formats=allowed)
    except Image.UnidentifiedImageError as exc:
        raise _unidentified(fp, name, allowed) from exc
    except Image.DecompressionBombError as exc:
        # Pillow saw a size (the image's, or a GIF frame's) over 2 x max_pixels while parsing
        raise _too_large(fp, name, exc, max_pixels) from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
        raise _load_error(name, exc, "cannot parse image header") from exc
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        im.close()
        raise ImageLoadError(name, "too-large", _over_limit(f"{width}x{height} = {width * height}", max_pixels))
    return im


def _over_limit(size: str, max_pixels: int | None) -> str:
    return f"image has {size} pixels, over the limit of max_pixels={max_pixels} (decompression-bomb guard)"


def _too_large(fp: BinaryIO, name: str, exc: Exception, max_pixels: int | None) -> ImageLoadError:
    """The "too-large" error for Pillow's ``DecompressionBombError``, with the size when the header gives it."""
    fp.seek(0)
    try:
        with _pillow_unchecked(), Image.open(fp) as im:
            width, height = im.size
        size = f"{width}x{height} = {width * height}"
    except Exception:  # noqa: BLE001 - the header does not parse without the limit: use Pillow's count
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = found.group(1) if found else "more"
    return ImageLoadError(name, "too-large", _over_limit(size, max_pixels))


def _is_empty(fp: BinaryIO) -> bool:
    pos = fp.tell()
    empty = not fp.read(1)
    fp.seek(pos)
    return empty


@contextlib.contextmanager
def _pillow_unchecked(limit: int | None = None) -> Iterator[None]:
    """Set Pillow's global ``MAX_IMAGE_PIXELS`` to ``limit`` and silence its warnings.

    Pillow then raises ``DecompressionBombError`` only over ``2 * limit`` (a plugin
    may check sizes, such as a GIF frame's, before the whole header is parsed), and
    its warning between ``limit`` and ``2 * limit`` is silenced: ``open_image`` checks
    ``limit`` itself and names the file. Both are process-wide state, so the section
    holds a lock (header parses are serialised; most decoding runs outside it) and
    restores them before it ends.
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pillow_limit = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = limit
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = pillow_limit


def _unidentified(fp: BinaryIO, name: str, allowed: list[str] | None) -> ImageLoadError:
    """``"format"`` when the file is an image outside ``allowed``; else ``"corrupt"``."""
    if allowed is not None:
        fmt = _sniff_format(fp)
        if fmt is not None and fmt not in allowed:
            return ImageLoadError(name, "format", f"image format {fmt} is not allowed (allowed: {', '.join(allowed)})")
    return ImageLoadError(name, "corrupt", "not a readable image (cannot identify its format)")


def _sniff_format(fp: BinaryIO) -> str | None:
    """The format Pillow opens ``fp`` as; else the first whose signature its first bytes carry."""
    fp.seek(0)
    try:
        with _pillow_unchecked(), Image.open(fp) as other:
            return other.format
    except Exception:  # noqa: BLE001 - a broken header still names its format by its signature
        pass
    fp.seek(0)
    prefix = fp.read(16)
    for fmt in Image.ID:
        accept = Image.OPEN[fmt][1]
        try:
            if accept is not None and accept(prefix) is True:
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's signature check failing means "not this one"
            continue
    return None


def _load_error(name: str, exc: BaseException, doing: str) -> ImageLoadError:
    """The ``ImageLoadError`` for an exception a decoder raised (raise it ``from exc``)."""
    if isinstance(exc, (Image.DecompressionBombError, MemoryError)):
        return ImageLoadError(name, "too-large", f"{doing}: too large to decode ({type(exc).__name__}: {exc})")
    text = str(exc)
    kind = "truncated" if "truncated" in text.lower() else "corrupt"
    detail = text if isinstance(exc, OSError) and text else f"{type(exc).__name__}: {text}"
    return ImageLoadError(name, kind, f"{doing}: {detail}")


def decode(im: Image.Image, name: str) -> None:
    """Fully decode the (first frame of the) image, turning any failure into ``ImageLoadError``.

    A full decode is what detects truncated files: header parsing alone does not.
    """
    try:
        with _decoding_section(im):
            im.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the file's fault
        raise _load_error(name, exc, "cannot decode image") from exc


#: Formats whose decoding neither warns nor re-checks Pillow's pixel limit: decoded
#: outside the lock, in parallel. Others (GIF frames, TIFF directories) decode inside it.
_PARALLEL_DECODE = frozenset({"JPEG", "PNG", "WEBP", "BMP"})


def _decoding_section(im: Image.Image) -> contextlib.AbstractContextManager[None]:
    return contextlib.nullcontext() if im.format in _PARALLEL_DECODE else _pillow_unchecked()


def to_rgb(im: Image.Image, *, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Convert a decoded Pillow image to an ``(H, W, 3)`` ``uint8`` array (see ``load_rgb``)."""
    # EXIF (sub-IFDs are parsed lazily here) and other formats' conversions may warn: silenced
    section = _decoding_section(im) if not im.info.get("exif") else _pillow_unchecked()
    with section:
        out = _to_rgb(im, background)
    # np.asarray of a Pillow image is a read-only view of its bytes: callers edit arrays in place
    return out if out.flags.writeable else out.copy()


def _to_rgb(im: Image.Image, background: tuple[int, int, int]) -> np.ndarray:
    im = ImageOps.exif_transpose(im)
    mode = im.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(im).astype(np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "F":
        values = np.asarray(im, dtype=np.float64)
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        gray = np.clip(np.rint(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if mode == "P" and "transparency" in im.info:
        im, mode = im.convert("RGBA"), "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, tuple(background) + (255,))
        canvas.alpha_composite(rgba)
        return np.asarray(canvas.convert("RGB"), dtype=np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)
