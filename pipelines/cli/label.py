"""``remoteclip-explorer label``: a label layer over the library, from the stored embeddings.

Every chip of ``--db`` (inside ``--aoi``) gets one of the ``--classes`` (zero-shot) or of the saved
``--detector`` s, or "uncertain" (:mod:`pipelines.services.label_layer`). Prints the chips and km² per class;
``--out`` writes the layer (GeoJSON, CSV or GeoPackage, by the file's suffix) through
:mod:`pipelines.services.export`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from tabulate import tabulate

from pipelines.cli.model_table import library_index, stored_model_id
from pipelines.cli.options import (
    aoi_option,
    backend_option,
    check_export_out,
    db_option,
    device_option,
    echo_json,
    emit_export,
    model_option,
    output_format_option,
    overwrite_option,
    storage_options_option,
    weights_option,
)
from pipelines.services.detectors import get_detector
from pipelines.services.label_layer import LabelLayer, label_library, layer_classes
from remoteclip.factory import load_model
from tiles.aoi import load_aoi
from tiles.index.chip_index import ChipIndex

#: ``--out`` suffix -> export format
SUFFIXES = {".geojson": "geojson", ".json": "geojson", ".csv": "csv", ".gpkg": "gpkg"}


def _out_format(out: Path | None, overwrite: bool) -> str | None:
    """The export format of ``--out`` by its suffix (None without ``--out``); refuses an existing file."""
    if out is None:
        return None
    found = SUFFIXES.get(out.suffix.lower())
    if found is None:
        raise click.BadParameter(
            f"{out.name} has no export suffix; end it in {', '.join(SUFFIXES)}", param_hint="--out"
        )
    check_export_out(found, out, overwrite)
    return found


def _table(layer: LabelLayer) -> str:
    """Chips and km² per class, the covered total last."""
    rows = [[r["class"], r["kind"], r["chips"], f"{r['km2']:.4f}", f"{r['share']:.1%}"] for r in layer.rows()]
    rows.append(["total", "", len(layer.chips), f"{layer.covered_km2:.4f}", ""])
    return tabulate(rows, headers=["class", "kind", "chips", "km²", "share"])


def _notes(layer: LabelLayer) -> list[str]:
    """What the reader of the table must know: an uncalibrated model, chips without km²."""
    notes = []
    if layer.calibrated is False:
        notes.append(
            "this model has no fitted calibration (`remoteclip-explorer evaluate calibration`): no typed class "
            "is cut off as uncertain"
        )
    if layer.pixel_space_chips:
        notes.append(f"{layer.pixel_space_chips} chips are in images without a georeference: labelled, no km²")
    return notes


@click.command()
@click.option(
    "--classes",
    "classes_text",
    default="",
    help="Classes to label with, comma separated (e.g. 'forest, farmland, water'); at least two unless "
    "--detector is given.",
)
@click.option(
    "--detector",
    "detector_names",
    metavar="NAME",
    multiple=True,
    help="A saved detector as a class (repeatable); it labels the chips at or above its threshold first.",
)
@db_option
@storage_options_option
@aoi_option
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the layer to this file: .geojson, .csv or .gpkg (one feature per chip, with its label).",
)
@overwrite_option
def label(
    classes_text: str,
    detector_names: tuple[str, ...],
    db: Path | str,
    storage_options: dict[str, str],
    aoi: Path | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
    out: Path | None,
    overwrite: bool,
) -> None:
    """Label every chip of --db (inside --aoi) from its stored embedding; print chips and km² per class.

    In a library two models embedded, the chips are those of --model's table; with saved detectors alone,
    --model may also be a model id the library holds (default: the first detector's model).
    """
    export_format = _out_format(out, overwrite)
    classes = layer_classes(classes_text, detector_names)
    area = load_aoi(aoi) if aoi is not None else None
    model = load_model(model_name, weights=weights, device=device, backend=backend) if classes else None
    if model is not None:
        model_id = model.model_id
    else:  # detectors alone: no model to load
        first = get_detector(ChipIndex(db, storage_options=storage_options), detector_names[0])
        model_id = stored_model_id(db, model_name, weights, storage_options) or first.model_id
    index = library_index(db, model_id, storage_options)
    layer = label_library(index, classes, detector_names, model=model, aoi=area)
    if output_format == "json":
        echo_json(
            {
                "classes": [asdict(c) for c in layer.classes],
                "covered_km2": layer.covered_km2,
                "chips": len(layer.chips),
                "pixel_space_chips": layer.pixel_space_chips,
                "calibrated": layer.calibrated,
                "model_id": layer.model_id,
            }
        )
    else:
        click.echo(_table(layer))
        for note in _notes(layer):
            click.echo(f"note: {note}", err=True)
    if export_format is not None:
        table = layer.table()
        emit_export(table.encode(export_format, layer.context()), out, f"{len(table.rows)} labelled chips")
