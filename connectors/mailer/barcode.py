"""Code 128 barcodes as PNG images: the member number the register scans from the welcome email.

Written here rather than taken from python-barcode: its newest release on PyPI (0.16.1) drops a
leading "99" digit pair from Code 128 (upstream issue #251), and a barcode that scans as another
member's number is the one failure this image must never have. Subset C carries digit pairs (the
16-digit member number), subset B any other printable ASCII (a walk-in's existing customer code).
The PNG is written with zlib alone: 8-bit greyscale, every row the same.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

# Bar/space widths in modules of symbol values 0-105, bar first (ISO/IEC 15417, table 1).
_PATTERN_TABLE = """
    212222 222122 222221 121223 121322 131222 122213 122312 132212 221213 221312 231212
    112232 122132 122231 113222 123122 123221 223211 221132 221231 213212 223112 312131
    311222 321122 321221 312212 322112 322211 212123 212321 232121 111323 131123 131321
    112313 132113 132311 211313 231113 231311 112133 112331 132131 113123 113321 133121
    313121 211331 231131 213113 213311 213131 311123 311321 331121 312113 312311 332111
    314111 221411 431111 111224 111422 121124 121421 141122 141221 112214 112412 122114
    122411 142112 142211 241211 221114 413111 241112 134111 111242 121142 121241 114212
    124112 124211 411212 421112 421211 212141 214121 412121 111143 111341 131141 114113
    114311 411113 411311 113141 114131 311141 411131 211412 211214 211232
"""
PATTERNS: tuple[str, ...] = tuple(_PATTERN_TABLE.split())
STOP = "2331112"
CODE_B, START_B, START_C = 100, 104, 105
# The standard asks for at least ten modules of white on either side for a scanner to lock on.
QUIET_ZONE_MODULES = 10
# Mail clients show about 600 px across; the widest module that fits keeps the bars crisp.
MAX_WIDTH_PX = 600
MAX_MODULE_PX = 4
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class BarcodeImage:
    """A rendered barcode: PNG bytes and their size in pixels."""

    png: bytes
    width: int
    height: int


def code128_values(text: str) -> list[int]:
    """The symbol values for `text`: start code, data, check symbol (the stop pattern is not a value)."""
    if not text or not all(" " <= char <= "~" for char in text):
        raise ValueError("a Code 128 barcode here carries one or more printable ASCII characters")
    if len(text) >= 2 and all("0" <= char <= "9" for char in text):
        paired = len(text) - len(text) % 2
        values = [START_C, *(int(text[index : index + 2]) for index in range(0, paired, 2))]
        if paired < len(text):
            # An odd digit out is cheaper in subset B than a leading subset B digit and a switch.
            values += [CODE_B, ord(text[-1]) - 32]
    else:
        values = [START_B, *(ord(char) - 32 for char in text)]
    check = (values[0] + sum(position * value for position, value in enumerate(values) if position)) % 103
    return [*values, check]


def code128_modules(text: str) -> str:
    """The symbol as modules, "1" a bar and "0" a space, without quiet zones."""
    widths = "".join(PATTERNS[value] for value in code128_values(text)) + STOP
    # Every pattern has an even number of elements, so bars and spaces alternate throughout.
    return "".join(("1" if index % 2 == 0 else "0") * int(width) for index, width in enumerate(widths))


def code128_png(text: str, *, module_px: int | None = None, height_px: int = 100) -> BarcodeImage:
    """Render `text` as a Code 128 PNG, black bars on white with quiet zones on both sides."""
    quiet = "0" * QUIET_ZONE_MODULES
    modules = quiet + code128_modules(text) + quiet
    scale = module_px or max(1, min(MAX_MODULE_PX, MAX_WIDTH_PX // len(modules)))
    row = bytes(0 if module == "1" else 255 for module in modules for _ in range(scale))
    return BarcodeImage(png=_greyscale_png(row, height_px), width=len(row), height=height_px)


def _greyscale_png(row: bytes, height: int) -> bytes:
    """An 8-bit greyscale PNG of `height` copies of one row of pixels."""
    header = struct.pack(">IIBBBBB", len(row), height, 8, 0, 0, 0, 0)
    # Each scanline starts with its filter type; 0 is "none", and zlib folds the repeats away.
    pixels = zlib.compress((b"\x00" + row) * height, 9)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", pixels) + _chunk(b"IEND", b"")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
