"""Window maths of tiles.grid: coverage, clipping and counts, checked with hypothesis."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from remoteclip.errors import InputError
from tiles.grid import ChipSpec, ChipWindow, chip_count, iter_windows

sizes = st.integers(min_value=1, max_value=300)
chip_sizes = st.integers(min_value=8, max_value=64)


@st.composite
def specs(draw: st.DrawFn) -> ChipSpec:
    chip_px = draw(chip_sizes)
    overlap = draw(st.integers(min_value=0, max_value=chip_px - 1))
    levels = draw(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=3, unique=True))
    return ChipSpec(chip_px=chip_px, overlap_px=overlap, levels=tuple(levels))


@given(width=sizes, height=sizes, spec=specs())
def test_windows_cover_every_pixel_and_stay_inside(width: int, height: int, spec: ChipSpec) -> None:
    for level in spec.levels:
        coverage = np.zeros((height, width), dtype=np.int32)
        for w in (w for w in iter_windows(width, height, spec) if w.level == level):
            assert w.col_off >= 0 and w.row_off >= 0 and w.width >= 1 and w.height >= 1
            assert w.col_off + w.width <= width and w.row_off + w.height <= height
            assert w.width <= w.span_px == spec.span_px(level) and w.height <= w.span_px
            coverage[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
        assert coverage.min() >= 1
        if spec.overlap_px == 0:
            assert coverage.max() == 1  # chips of one level partition the raster


@given(width=sizes, height=sizes, spec=specs())
def test_window_count_matches_formula(width: int, height: int, spec: ChipSpec) -> None:
    windows = list(iter_windows(width, height, spec))
    expected = sum(
        chip_count(width, spec.span_px(lv), spec.stride_px(lv))
        * chip_count(height, spec.span_px(lv), spec.stride_px(lv))
        for lv in spec.levels
    )
    assert len(windows) == expected
    assert len(set(windows)) == len(windows)


@given(size=st.integers(1, 10_000), span=st.integers(1, 512), data=st.data())
def test_chip_count_is_the_fewest_that_reach_the_edge(size: int, span: int, data: st.DataObject) -> None:
    stride = data.draw(st.integers(1, span))
    n = chip_count(size, span, stride)
    assert (n - 1) * stride + span >= size  # the last chip reaches the edge
    assert n == 1 or (n - 2) * stride + span < size  # one fewer would not


def test_full_and_clipped_windows_of_a_small_raster() -> None:
    windows = list(iter_windows(40, 24, ChipSpec(chip_px=16, levels=(1, 2))))
    level1 = [(w.col_off, w.row_off, w.width, w.height) for w in windows if w.level == 1]
    assert level1 == [
        (0, 0, 16, 16),
        (16, 0, 16, 16),
        (32, 0, 8, 16),
        (0, 16, 16, 8),
        (16, 16, 16, 8),
        (32, 16, 8, 8),
    ]
    level2 = [(w.col_off, w.row_off, w.width, w.height, w.span_px) for w in windows if w.level == 2]
    assert level2 == [(0, 0, 32, 24, 32), (32, 0, 8, 24, 32)]


def test_out_shape_scales_clipped_windows_with_the_level() -> None:
    assert ChipWindow(2, 0, 0, 512, 512, 512).out_shape(256) == (256, 256)
    assert ChipWindow(2, 512, 0, 100, 512, 512).out_shape(256) == (256, 50)
    assert ChipWindow(1, 0, 0, 1, 1, 256).out_shape(256) == (1, 1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"chip_px": 4}, "chip size 4"),
        ({"overlap_px": 256}, "overlap 256"),
        ({"overlap_px": -1}, "overlap -1"),
        ({"levels": ()}, "levels"),
        ({"levels": (1, 1)}, "levels"),
        ({"levels": (0,)}, "levels"),
        ({"min_valid": 1.5}, "min_valid 1.5"),
    ],
)
def test_bad_specs_name_the_bad_value(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(InputError, match=match):
        ChipSpec(**kwargs)  # type: ignore[arg-type]


def test_empty_raster_is_refused() -> None:
    with pytest.raises(InputError, match="0x5"):
        list(iter_windows(0, 5, ChipSpec()))
