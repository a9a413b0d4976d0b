"""B2C captions for hand-made box sets, M2B boxes against the mask's components, scene captions."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.datasets.boxes import Box
from pipelines.training.captions import b2c_captions, empty_captions, m2b_boxes, scene_captions
from remoteclip.prompts import count_phrase, plural


def box(cx: float, cy: float, label: str, half: float = 2.0) -> Box:
    return Box(cx - half, cy - half, cx + half, cy + half, label)


def test_b2c_five_captions_centre_elsewhere_and_counts() -> None:
    boxes = [box(50, 50, "airplane"), box(60, 40, "airplane"), box(5, 5, "ship"),
             box(95, 50, "ship"), box(50, 95, "ship")]
    assert b2c_captions(boxes, 100, 100) == [
        "Two airplanes in the center of the image.",
        "Three ships away from the center of the image.",
        "There are three ships and two airplanes in the image.",
        "An aerial image with three ships and two airplanes.",
        "A satellite photo of 3 ships and 2 airplanes.",
    ]


def test_b2c_says_many_above_ten_and_ten_at_ten() -> None:
    eleven = [box(5 + 8 * i, 5, "car", half=1) for i in range(11)]
    ten = eleven[:10]
    assert b2c_captions(eleven, 100, 100)[2:] == [
        "There are many cars in the image.",
        "An aerial image with many cars.",
        "A satellite photo of many cars.",
    ]
    assert b2c_captions(ten, 100, 100)[2] == "There are ten cars in the image."
    assert b2c_captions(ten, 100, 100)[4] == "A satellite photo of 10 cars."


def test_b2c_single_object_uses_article_and_is() -> None:
    captions = b2c_captions([box(50, 50, "airplane")], 100, 100)
    assert captions == [
        "An airplane in the center of the image.",
        "Nothing else in the image.",
        "There is an airplane in the image.",
        "An aerial image with an airplane.",
        "A satellite photo of 1 airplane.",
    ]


def test_b2c_nothing_in_centre_and_central_region_boundary() -> None:
    # the central region is the middle half on each axis: centres at x in [25, 75] count
    assert b2c_captions([box(10, 50, "tree")], 100, 100)[:2] == [
        "Nothing in the center of the image.",
        "A tree away from the center of the image.",
    ]
    assert b2c_captions([box(75, 75, "tree")], 100, 100)[0] == "A tree in the center of the image."
    assert b2c_captions([box(76, 50, "tree")], 100, 100)[0] == "Nothing in the center of the image."
    # a non-square image uses its own width and height
    assert b2c_captions([box(151, 20, "tree")], 200, 40)[0] == "Nothing in the center of the image."
    assert b2c_captions([box(150, 20, "tree")], 200, 40)[0] == "A tree in the center of the image."


def test_b2c_needs_a_box() -> None:
    with pytest.raises(ValueError):
        b2c_captions([], 100, 100)


def test_empty_captions_state_the_absence_in_the_b2c_slots() -> None:
    assert empty_captions(["airplane"]) == [
        "Nothing in the center of the image.",
        "Nothing else in the image.",
        "There are no airplanes in the image.",
        "An aerial image with no airplanes.",
        "A satellite photo of no airplanes.",
    ]
    assert empty_captions(["ship", "harbor", "ship", "small vehicle"])[2] == (
        "There are no harbors, ships or small vehicles in the image.")
    with pytest.raises(ValueError):
        empty_captions([])


def test_plurals_and_count_phrases() -> None:
    assert plural("small vehicle") == "small vehicles"
    assert plural("bus") == "buses"
    assert plural("storage tank") == "storage tanks"
    assert count_phrase("harbor", 1) == "a harbor"
    assert count_phrase("harbor", 3) == "three harbors"
    assert count_phrase("harbor", 11, digits=True) == "many harbors"


def test_m2b_boxes_match_mask_components() -> None:
    mask = np.zeros((20, 30), dtype=np.uint8)
    mask[2:5, 3:9] = 1            # a rectangle
    mask[10:14, 20:22] = 255      # another value still counts as foreground
    mask[14, 22] = 1              # touches the second one diagonally: same component (8-connectivity)
    mask[18, 0] = 1               # a single pixel, dropped by min_area_px
    boxes = m2b_boxes(mask, "building", min_area_px=2)
    assert boxes == [Box(3, 2, 9, 5, "building"), Box(20, 10, 23, 15, "building")]
    assert len(m2b_boxes(mask, "building")) == 3
    assert m2b_boxes(np.zeros((8, 8)), "building") == []


def test_m2b_then_b2c_counts_buildings() -> None:
    mask = np.zeros((100, 100), dtype=bool)
    for i in range(4):
        mask[10 + 20 * i: 15 + 20 * i, 10:15] = True
    assert b2c_captions(m2b_boxes(mask, "building"), 100, 100)[4] == "A satellite photo of 4 buildings."


def test_scene_captions() -> None:
    captions = scene_captions("forest", "a forest")
    assert len(captions) == 5
    assert captions[0] == "A satellite photo of forest."
    assert all("forest" in caption for caption in captions)
