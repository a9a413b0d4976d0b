"""Objects stored at ingest (``ingest --objects``) and read back for an AOI count over a whole library.

:func:`store_objects` runs :func:`pipelines.services.locate.locate_objects` on whole scenes, down to a low
score floor (:func:`pipelines.services.locate.score_floor`), with the Count page's chip span, and writes the objects to the
``objects`` table (:class:`tiles.index.object_table.ObjectTable`). :func:`stored_in_aoi` answers an AOI from
that table when every scene meeting it was searched for the object with the same model, locator, chip span
and a floor at most the score asked for; otherwise it answers None and the caller locates on demand.
Objects are located with their normalised name (:func:`object_name`), so ``Airplanes`` and ``airplane`` are
one stored object.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from shapely.geometry.base import BaseGeometry

from pipelines.services.locate import DEFAULT_SPAN_PX, locate_objects, object_query, score_floor
from remoteclip.factory import LoadedModel
from remoteclip.locator import ObjectLocator
from remoteclip.prompts import singular
from tiles.index.chip_index import ChipIndex, SceneSummary
from tiles.index.object_table import ObjectPoint, ObjectTable, StoredObject


def object_name(noun: str) -> str:
    """The stored name of an object: lower case, singular (``Airplanes`` -> ``airplane``)."""
    return singular(" ".join(noun.strip().lower().split()))


def locator_id(locator: ObjectLocator) -> str:
    """A fingerprint of the locator's weights and threshold (stored objects name the locator that found them)."""
    digest = hashlib.blake2b(digest_size=10)
    digest.update(locator.model_id.encode())
    for name, tensor in sorted(locator.head.state_dict().items()):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(tensor.detach().cpu().numpy()).tobytes())
    return digest.hexdigest()


def store_objects(
    index: ChipIndex,
    model: LoadedModel,
    locator: ObjectLocator,
    nouns: Sequence[str],
    scenes: Sequence[SceneSummary],
    *,
    span_px: int = DEFAULT_SPAN_PX,
    on_scene: Callable[[str, str, int], None] | None = None,
) -> dict[str, int]:
    """Locate each noun in each (georeferenced) scene and store its objects; objects stored per noun.

    ``on_scene(noun, scene_path, objects)`` is called after each scene is written.
    """
    index.check_model(model.model_id)
    table = ObjectTable(index)
    floor = score_floor(locator)
    fingerprint = locator_id(locator)
    stored: dict[str, int] = {}
    for noun in dict.fromkeys(object_name(n) for n in nouns if n.strip()):
        query = object_query(model, locator, noun, threshold=floor)
        stored[noun] = 0
        for scene in scenes:
            if scene.pixel_space:
                continue
            found = locate_objects(model, locator, scene.scene_path, query, span_px=span_px)
            rows = [
                ObjectPoint(o.col, o.row, o.lon, o.lat, o.score)
                for o in found.objects
                if o.lon is not None and o.lat is not None
            ]
            n = table.replace_scene(
                scene.scene_id, noun, rows, scene_path=scene.scene_path, model_id=model.model_id,
                threshold_floor=floor, locator_id=fingerprint, span_px=span_px,
            )
            stored[noun] += n
            if on_scene is not None:
                on_scene(noun, scene.scene_path, n)
    return stored


def stored_in_aoi(
    index: ChipIndex,
    model: LoadedModel,
    locator: ObjectLocator,
    noun: str,
    aoi: BaseGeometry,
    scenes: Sequence[SceneSummary],
    *,
    min_score: float,
    span_px: int = DEFAULT_SPAN_PX,
) -> list[StoredObject] | None:
    """The stored ``noun`` objects of ``scenes`` in ``aoi`` scoring at least ``min_score``, or None unless
    every one of ``scenes`` was searched for it as asked (same model, locator and span; floor <= min_score)."""
    table = ObjectTable(index)
    name = object_name(noun)
    located = table.located(name, [s.scene_id for s in scenes])
    fingerprint = locator_id(locator)
    for scene in scenes:
        record = located.get(scene.scene_id)
        if (
            record is None
            or record.model_id != model.model_id
            or record.locator_id != fingerprint
            or record.span_px != span_px
            or record.threshold_floor > min_score + 1e-6
        ):
            return None
    wanted = {s.scene_id for s in scenes}
    return [o for o in table.in_aoi(name, aoi, min_score) if o.scene_id in wanted]
