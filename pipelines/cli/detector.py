"""``remoteclip-explorer detector``: save a refine probe under a name, list, show, apply and delete it.

``save`` fits the probe as ``search QUERY --positive ... --negative ...`` does and keeps it in the library;
``apply`` needs no model (the embeddings are stored) and prints or exports every chip at or above the
threshold, as ``search`` exports its hits (:mod:`pipelines.services.export`).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from tabulate import tabulate

from pipelines.cli.model_table import library_index, stored_model_id, stored_model_option
from pipelines.cli.options import (
    aoi_option,
    backend_option,
    check_export_out,
    db_option,
    device_option,
    echo_json,
    emit_export,
    export_out_option,
    model_option,
    output_format_option,
    overwrite_option,
    storage_options_option,
    weights_option,
)
from pipelines.services.detectors import (
    DEFAULT_THRESHOLD,
    Detection,
    apply_detector,
    delete_detector,
    detections_table,
    get_detector,
    list_detectors,
    make_detector,
    save_detector,
    scenes_since_saved,
)
from pipelines.services.export import FORMATS, ExportContext, hit_record, scene_name
from pipelines.services.refine import fit_library_probe
from remoteclip.factory import load_model
from tiles.aoi import load_aoi
from tiles.index.chip_index import ChipIndex

probability_type = click.FloatRange(0, 1, min_open=True, max_open=True)


@click.group()
def detector() -> None:
    """Detectors that last: a refined search saved under a name, applied to the library again later."""


@detector.command()
@click.argument("name")
@click.argument("query")
@click.option(
    "--positive", "positives", metavar="CHIP_ID", multiple=True, help="A chip that is right (repeatable)."
)
@click.option(
    "--negative", "negatives", metavar="CHIP_ID", multiple=True, help="A chip that is wrong (repeatable)."
)
@click.option(
    "--threshold",
    type=probability_type,
    default=DEFAULT_THRESHOLD,
    show_default=True,
    help="Probability a chip's detection starts at.",
)
@db_option
@storage_options_option
@model_option
@weights_option
@device_option
@backend_option
def save(
    name: str,
    query: str,
    positives: tuple[str, ...],
    negatives: tuple[str, ...],
    threshold: float,
    db: Path | str,
    storage_options: dict[str, str],
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
) -> None:
    """Fit a probe on QUERY and the marked chips of --db and save it as NAME (replacing one of that name)."""
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    index = library_index(db, model.model_id, storage_options)
    probe = fit_library_probe(index, model, query, positives, negatives)
    saved = make_detector(name, query, probe, positives, negatives, model.model_id, threshold)
    save_detector(index, saved)
    click.echo(
        f"saved detector {saved.name!r} ({len(positives)} right, {len(negatives)} wrong; "
        f"threshold {saved.threshold:g}) in {index.uri}"
    )


@detector.command("list")
@db_option
@storage_options_option
@output_format_option("table", "json")
def list_command(db: Path | str, storage_options: dict[str, str], output_format: str) -> None:
    """The detectors saved in --db."""
    summaries = list_detectors(ChipIndex(db, storage_options=storage_options))
    if output_format == "json":
        echo_json([asdict(s) for s in summaries])
    elif not summaries:
        click.echo("no detectors saved")
    else:
        rows = [
            [s.name, s.query, s.positives, s.negatives, f"{s.threshold:g}", s.model_id, s.created_at]
            for s in summaries
        ]
        click.echo(
            tabulate(rows, headers=["name", "query", "right", "wrong", "threshold", "model", "created"])
        )


@detector.command()
@click.argument("name")
@db_option
@storage_options_option
def show(name: str, db: Path | str, storage_options: dict[str, str]) -> None:
    """Detector NAME as JSON: query, marks, probe (scale, bias, dimensions), threshold, model."""
    found = get_detector(ChipIndex(db, storage_options=storage_options), name)
    echo_json(
        {
            "name": found.name,
            "query": found.query,
            "positive_ids": list(found.positive_ids),
            "negative_ids": list(found.negative_ids),
            "threshold": found.threshold,
            "scale": found.scale,
            "bias": found.bias,
            "dimensions": int(found.direction.shape[0]),
            "exemplars": len(found.exemplars),
            "exemplar_weight": found.exemplar_weight,
            "score_at_threshold": round(found.probe.score_at(found.threshold), 6),
            "model_id": found.model_id,
            "created_at": found.created_at,
        }
    )


def _table(detections: list[Detection]) -> str:
    """Detections as a text table: probability, probe score, scene, window, chip id."""
    rows = [
        [
            rank,
            f"{d.probability:.4f}",
            f"{d.hit.score:.4f}",
            scene_name(d.hit.scene_path),
            d.hit.level,
            f"{d.hit.col_off},{d.hit.row_off} {d.hit.width}x{d.hit.height}",
            d.hit.chip_id,
        ]
        for rank, d in enumerate(detections, start=1)
    ]
    return tabulate(
        rows, headers=["#", "probability", "score", "scene", "level", "window (col,row wxh)", "chip_id"]
    )


def _scene_ids(index: ChipIndex, names: tuple[str, ...]) -> list[str]:
    """The ids of the library's scenes named by path (as ingested, or resolved) or by id."""
    ids: list[str] = []
    scenes = index.scenes()
    for name in names:
        resolved = str(Path(name).expanduser().resolve())
        match = [s.scene_id for s in scenes if name in (s.scene_id, s.scene_path) or s.scene_path == resolved]
        if not match:
            raise click.BadParameter(f"{name!r} is not a scene of {index.uri}", param_hint="--scene")
        ids += match
    return ids


@detector.command()
@click.argument("name")
@db_option
@storage_options_option
@aoi_option
@click.option(
    "--threshold",
    type=probability_type,
    default=None,
    help="Probability to start at [default: the detector's].",
)
@click.option("--new", "new_scenes", is_flag=True, help="Only the scenes ingested since the detector was saved.")
@click.option("--scene", "scenes", multiple=True, metavar="PATH|ID",
              help="Only this scene of the library, by its path or id (repeatable).")
@stored_model_option("the detector's model")
@weights_option
@output_format_option("table", "json", *(f.name for f in FORMATS))
@export_out_option
@overwrite_option
def apply(
    name: str,
    db: Path | str,
    storage_options: dict[str, str],
    aoi: Path | None,
    threshold: float | None,
    new_scenes: bool,
    scenes: tuple[str, ...],
    model_name: str | None,
    weights: Path | None,
    output_format: str,
    out: Path | None,
    overwrite: bool,
) -> None:
    """Every chip of --db (inside --aoi, of --scene or --new scenes) that detector NAME finds, most probable
    first; in a library two models embedded, among the vectors of --model (default: the detector's model)."""
    check_export_out(output_format, out, overwrite)
    found = get_detector(ChipIndex(db, storage_options=storage_options), name)
    model_id = stored_model_id(db, model_name, weights, storage_options) or found.model_id
    index = library_index(db, model_id, storage_options)
    area = load_aoi(aoi) if aoi is not None else None
    scene_ids = _scene_ids(index, scenes) if scenes else None
    if new_scenes:
        added = scenes_since_saved(index, found)
        scene_ids = added if scene_ids is None else [s for s in scene_ids if s in set(added)]
        click.echo(f"{len(added)} scenes ingested since {found.name} was saved ({found.created_at})", err=True)
    detections = apply_detector(index, found, aoi=area, threshold=threshold, scene_ids=scene_ids)
    if output_format == "json":
        echo_json(
            [
                {**hit_record(d.hit, rank), "probability": round(d.probability, 6)}
                for rank, d in enumerate(detections, start=1)
            ]
        )
    elif output_format == "table":
        click.echo(_table(detections) if detections else "no chips found")
    else:
        cut = found.threshold if threshold is None else threshold
        context = ExportContext.now(
            f"detector {found.name}: {found.query}", found.model_id, threshold=cut, aoi=area
        )
        emit_export(
            detections_table(detections).encode(output_format, context), out, f"{len(detections)} detections"
        )


@detector.command()
@click.argument("name")
@db_option
@storage_options_option
def delete(name: str, db: Path | str, storage_options: dict[str, str]) -> None:
    """Delete detector NAME from --db."""
    index = ChipIndex(db, storage_options=storage_options)
    delete_detector(index, name)
    click.echo(f"deleted detector {name!r} from {index.uri}")
