"""Robust image loading: one decoded RGB array per file, whatever the file's mode."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Iterable
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

from ._errors import UnknownFormatError

#: Pillow format names decoded by default (``Image.format`` values).
DEFAULT_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "GIF", "TIFF", "WEBP")

#: Largest image (width x height) decoded by default: Pillow's own default limit.
DEFAULT_MAX_PIXELS = 89_478_485

_PILLOW_LIMIT_LOCK = threading.Lock()


class ImageLoadError(ValueError):
    """A file that cannot be used as an image: ``kind`` says why, the message names the file.

    ``kind`` is one of ``"corrupt"`` (cannot be parsed or fully decoded),
    ``"truncated"``, ``"format"`` (an image format outside the allow-list) or
    ``"too-large"`` (more pixels than ``max_pixels``: a decompression bomb).
    """

    def __init__(self, path: str, kind: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.kind = kind
        self.reason = reason


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


_allowed_formats = check_formats  # the private name, kept for callers inside the package


def load_rgb(
    path: str | os.PathLike[str],
    *,
    background: tuple[int, int, int] = (255, 255, 255),
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> np.ndarray:
    """Decode ``path`` to an ``(H, W, 3)`` ``uint8`` RGB array.

    EXIF orientation is applied; palette, RGBA and LA images are composited onto
    ``background``; 16-bit images (``I;16``, ``I``) are scaled to 8 bits
    (``round(v / 257)``, so 65535 -> 255, not clipped); CMYK and other colour
    spaces are converted; grayscale and 1-bit are expanded to RGB. Only the first
    frame of animated files is read.

    Args:
        path: the image file.
        background: RGB colour under transparent pixels.
        max_pixels: refuse images with more pixels (decompression bombs); ``None``
            for no limit. Pillow's global ``Image.MAX_IMAGE_PIXELS`` is not changed.
        formats: Pillow format names allowed (``None``: every format Pillow reads);
            ``JPG`` and ``TIF`` are read as ``JPEG`` and ``TIFF``.

    Raises:
        ImageLoadError: the file is corrupt, truncated, too large or not an allowed
            format; the message names the file.
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
        im = open_image(fh, name, max_pixels=max_pixels, formats=formats)
        with im:
            decode(im, name)
            return to_rgb(im, background=background)


def open_image(
    fp: BinaryIO,
    name: str,
    *,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    formats: Iterable[str] | None = DEFAULT_FORMATS,
) -> Image.Image:
    """Open (parse the header of) an image, checking its format and pixel count.

    Raises:
        ImageLoadError: with kind ``"format"``, ``"too-large"`` or ``"corrupt"``.
    """
    allowed = _allowed_formats(formats)
    try:
        im = _open_within_limit(fp, allowed, max_pixels)
    except Image.DecompressionBombError as exc:
        raise ImageLoadError(name, "too-large", f"decompression bomb refused: {exc}") from None
    except Image.UnidentifiedImageError:
        kind, reason = "corrupt", "not a readable image (cannot identify its format)"
        if allowed is not None:
            fp.seek(0)
            try:
                with Image.open(fp) as other:
                    kind, reason = "format", f"image format {other.format} is not allowed (allowed: {', '.join(allowed)})"
            except Exception:  # noqa: BLE001 - any failure means "not an image" here
                pass
        raise ImageLoadError(name, kind, reason) from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageLoadError(name, kind, f"cannot parse image header: {exc}") from None
    width, height = im.size
    if max_pixels is not None and width * height > max_pixels:
        im.close()
        raise ImageLoadError(
            name,
            "too-large",
            f"image has {width}x{height} = {width * height} pixels, over the limit of "
            f"max_pixels={max_pixels} (decompression-bomb guard)",
        )
    return im


def _open_within_limit(fp: BinaryIO, allowed: list[str] | None, max_pixels: int | None) -> Image.Image:
    pillow_limit = Image.MAX_IMAGE_PIXELS
    if pillow_limit is not None and (max_pixels is None or max_pixels > pillow_limit):
        # Our limit is looser than Pillow's: lift Pillow's check for this call only.
        with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = None
            try:
                return Image.open(fp, formats=allowed)
            finally:
                Image.MAX_IMAGE_PIXELS = pillow_limit
    return Image.open(fp, formats=allowed)


def decode(im: Image.Image, name: str) -> None:
    """Fully decode the (first frame of the) image, turning failures into ``ImageLoadError``.

    A full decode is what detects truncated files: header parsing alone does not.
    """
    try:
        im.load()
    except OSError as exc:
        kind = "truncated" if "truncated" in str(exc).lower() else "corrupt"
        raise ImageLoadError(name, kind, f"cannot decode image: {exc}") from None
    except (ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise ImageLoadError(name, "corrupt", f"cannot decode image: {exc}") from None


def to_rgb(im: Image.Image, *, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Convert a decoded Pillow image to an ``(H, W, 3)`` ``uint8`` array (see ``load_rgb``)."""
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
