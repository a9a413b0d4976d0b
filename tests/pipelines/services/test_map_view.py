"""Where a map of the library opens: all its scenes when they lie together, the biggest when they are far apart."""

from __future__ import annotations

import pytest

from pipelines.services.map_view import library_view
from tiles.index.chip_index import SceneSummary


def scene(
    name: str, minx: float, miny: float, size: float, chips: int, pixel_space: bool = False
) -> SceneSummary:
    return SceneSummary(
        scene_id=name,
        scene_path=f"/data/{name}.tif",
        chips=chips,
        crs=None if pixel_space else "EPSG:32615",
        gsd_m=None if pixel_space else 0.5,
        extent=(minx, miny, minx + size, miny + size),
        pixel_space=pixel_space,
        levels=(1,),
    )


def test_neighbouring_scenes_are_fitted_together() -> None:
    view = library_view([scene("a", -94.5, 37.0, 0.01, 10), scene("b", -94.49, 37.0, 0.01, 50)])
    assert view is not None and view.focus is None
    assert view.bounds == pytest.approx((-94.5, 37.0, -94.48, 37.01))


def test_scenes_on_two_continents_open_on_the_one_with_most_chips() -> None:
    joplin, paris = scene("joplin", -94.5, 37.0, 0.02, 10), scene("paris", 2.3, 48.8, 0.05, 400)
    view = library_view([joplin, paris, scene("plain", 0, -512, 512, 999, pixel_space=True)])
    assert view is not None and view.focus == paris and view.bounds == paris.extent


def test_pixel_space_scenes_have_no_view() -> None:
    assert library_view([scene("plain", 0, -512, 512, 4, pixel_space=True)]) is None
    assert library_view([]) is None
    lone = scene("lone", 10.0, 10.0, 0.001, 1)
    assert library_view([lone]) == library_view([lone, scene("plain", 0, -512, 512, 4, pixel_space=True)])
