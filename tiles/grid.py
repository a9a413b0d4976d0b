"""Chip grids: which source-pixel windows a raster is cut into, at one or more scales.

All sizes here are in source **pixels** (``*_px``). A level-``L`` chip covers ``L * chip_px`` source pixels on
each side and is resampled to ``chip_px`` output pixels, so levels 1, 2, 4 give chips 1x, 2x, 4x as large on
the ground at the same output size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from rasterio.windows import Window

from remoteclip.errors import InputError


@dataclass(frozen=True)
class ChipSpec:
    """How to cut a raster into chips."""

    #: side of an output chip, in pixels
    chip_px: int = 256
    #: overlap between neighbouring chips, in output pixels (scaled by the level in source pixels)
    overlap_px: int = 0
    #: scale levels: a level-L chip covers L * chip_px source pixels
    levels: tuple[int, ...] = (1,)
    #: chips whose share of valid (not nodata / not transparent) pixels is below this are skipped
    min_valid: float = 0.5

    def __post_init__(self) -> None:
        if self.chip_px < 8:
            raise InputError(
                f"chip size {self.chip_px} px is too small; use at least 8 (e.g. --chip-size 256)"
            )
        if not 0 <= self.overlap_px < self.chip_px:
            raise InputError(
                f"overlap {self.overlap_px} px must be >= 0 and smaller than the chip size {self.chip_px} px"
            )
        if (
            not self.levels
            or any(level < 1 for level in self.levels)
            or len(set(self.levels)) != len(self.levels)
        ):
            raise InputError(f"levels {self.levels} must be distinct integers >= 1 (e.g. --levels 1,2,4)")
        if not 0.0 <= self.min_valid <= 1.0:
            raise InputError(f"min_valid {self.min_valid} must lie between 0 and 1")

    def span_px(self, level: int) -> int:
        """Source pixels covered by one side of a level-``level`` chip."""
        return level * self.chip_px

    def stride_px(self, level: int) -> int:
        """Source pixels between the origins of neighbouring level-``level`` chips."""
        return level * (self.chip_px - self.overlap_px)


@dataclass(frozen=True)
class ChipWindow:
    """One chip's window in the source raster (pixels), clipped at the raster's right and bottom edges."""

    level: int
    col_off: int
    row_off: int
    width: int
    height: int
    #: nominal side of the window before clipping (``level * chip_px``)
    span_px: int

    @property
    def window(self) -> Window:
        """The rasterio window to read."""
        return Window(self.col_off, self.row_off, self.width, self.height)

    def out_shape(self, out_px: int) -> tuple[int, int]:
        """(rows, cols) of this window resampled so that a full ``span_px`` window becomes ``out_px``."""
        scale = out_px / self.span_px
        return max(1, round(self.height * scale)), max(1, round(self.width * scale))


def chip_count(size_px: int, span_px: int, stride_px: int) -> int:
    """Number of chips along one axis: ``ceil((size - span) / stride) + 1``, at least 1.

    Rounding up means the last chip reaches the raster's edge; it is clipped there (not shifted back), so at
    zero overlap the chips of one level partition the raster and every pixel lies in exactly one chip.
    """
    if size_px <= span_px:
        return 1
    return math.ceil((size_px - span_px) / stride_px) + 1


def iter_windows(width: int, height: int, spec: ChipSpec) -> Iterator[ChipWindow]:
    """Yield every chip window of a ``width`` x ``height`` raster, level by level, row-major."""
    if width < 1 or height < 1:
        raise InputError(f"raster size {width}x{height} has no pixels to cut into chips")
    for level in spec.levels:
        span, stride = spec.span_px(level), spec.stride_px(level)
        for row in range(chip_count(height, span, stride)):
            row_off = row * stride
            for col in range(chip_count(width, span, stride)):
                col_off = col * stride
                yield ChipWindow(
                    level=level,
                    col_off=col_off,
                    row_off=row_off,
                    width=min(span, width - col_off),
                    height=min(span, height - row_off),
                    span_px=span,
                )
