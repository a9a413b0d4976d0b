"""Which library scenes an ingest run covers, for storing their objects (``ingest --objects``).

Locating the objects is a service (:mod:`pipelines.services.object_store`); this module only says which
scenes of the run (ingested now or already in the library) are georeferenced library scenes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipelines.ingest.plan import expand_sources
from tiles.index.chip_index import ChipIndex, SceneSummary


def run_scenes(index: ChipIndex, paths: Iterable[str | Path]) -> list[SceneSummary]:
    """The georeferenced scenes of the library whose files ``paths`` name (files, folders, globs, and URLs or
    globs of ``s3://`` / ``gs://`` URLs: a remote scene is stored under its URL)."""
    sources, _missing = expand_sources(paths)
    wanted = {source if isinstance(source, str) else str(source.resolve()) for source in sources}
    return [s for s in index.scenes() if s.scene_path in wanted and not s.pixel_space]
