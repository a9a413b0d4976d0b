"""Which library scenes an ingest run covers, for storing their objects (``ingest --objects``).

Locating the objects is a service (:mod:`pipelines.services.object_store`); this module only says which
scenes of the run (ingested now or already in the library) are georeferenced library scenes.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pipelines.ingest.plan import expand_paths
from tiles.index.chip_index import ChipIndex, SceneSummary


def run_scenes(index: ChipIndex, paths: Iterable[str | Path]) -> list[SceneSummary]:
    """The georeferenced scenes of the library whose files ``paths`` name (files, folders, globs)."""
    files, _missing = expand_paths(paths)
    wanted = {str(path.resolve()) for path in files}
    return [s for s in index.scenes() if s.scene_path in wanted and not s.pixel_space]
