"""Text that is not valid UTF-8: file names and manifest fields decoded with ``surrogateescape``.

On Linux a file name is bytes; Python decodes the bytes that are not UTF-8 as lone
surrogates (``b"b\\xe9te"`` -> ``"b\\udce9te"``), which no UTF-8 file (a manifest, a
report, ``summary.json``) can hold. The data layer refuses such names where it meets
them and shows them with ``printable`` / ``shown``.

>>> is_utf8("bête"), is_utf8("b\\udce9te")
(True, False)
>>> print(printable("b\\udce9te"), shown("b\\udce9te"))
b\\xe9te b'b\\xe9te'
"""

from __future__ import annotations

from ._index import Problem


def is_utf8(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8 (it holds no lone surrogate).

    >>> is_utf8("café.jpg"), is_utf8("caf\\udce9.jpg")
    (True, False)
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """``text`` with each undecodable byte shown as ``\\xNN`` (any other lone surrogate as ``\\uNNNN``).

    The result is valid UTF-8, so printing it or writing it to a report never raises;
    valid text comes back unchanged.

    >>> print(printable("b\\udce9te/001.jpg"), printable("bête"), printable("\\ud800"))
    b\\xe9te/001.jpg bête \\ud800
    """
    if is_utf8(text):
        return text
    return "".join(_escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
        return f"\\x{code - 0xDC00:02x}"
    if 0xD800 <= code <= 0xDFFF:  # a lone surrogate from elsewhere (a JSON "\\ud800" escape)
        return f"\\u{code:04x}"
    return char


def shown(text: str) -> str:
    """``text`` as the bytes it stands for, for a message: ``b'caf\\xe9.jpg'``.

    >>> print(shown("caf\\udce9.jpg"))
    b'caf\\xe9.jpg'
    """
    try:
        return repr(text.encode("utf-8", "surrogateescape"))
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return repr(printable(text))


def printable_problem(problem: Problem) -> Problem:
    """``problem`` with its path and reason made ``printable`` (the same object when they are).

    >>> printable_problem(Problem("a/.\\udce9", "hidden", "hidden entry skipped")).path
    'a/.\\\\xe9'
    """
    if is_utf8(problem.path) and is_utf8(problem.reason):
        return problem
    return Problem(printable(problem.path), problem.kind, printable(problem.reason))
