"""``remoteclip-explorer ingest``: cut rasters into chips, embed them and write them to the chip index."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from shapely.geometry import box
from shapely.geometry.base import BaseGeometry
from tqdm import tqdm

from pipelines.cli.options import (
    backend_option,
    db_option,
    device_option,
    echo_json,
    locator_option,
    min_valid_option,
    model_option,
    output_format_option,
    parse_int_list,
    storage_options_option,
    weights_option,
)
from pipelines.ingest.local import COMMIT_ROWS, ingest_paths
from pipelines.ingest.objects import run_scenes
from pipelines.ingest.read import DEFAULT_WORKERS, start_reader_server
from pipelines.ingest.stac import stac_scenes
from pipelines.services.object_store import object_name, store_objects
from remoteclip.factory import load_model
from remoteclip.locator import load_locator
from remoteclip.prompts import plural
from tiles.aoi import load_aoi
from tiles.grid import ChipSpec
from tiles.index.chip_index import index_for_model
from tiles.index.schema import TABLE_NAME


def _parse_levels(ctx: click.Context, param: click.Parameter, value: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``."""
    levels = tuple(parse_int_list(value, "1,2,4"))
    if not levels:
        raise click.BadParameter("give at least one level, such as 1 or 1,2,4")
    return levels


def _parse_nouns(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, ...]:
    """``"airplane, Ships"`` -> ``("airplane", "ship")`` (normalised, each once)."""
    if value is None:
        return ()
    nouns = tuple(dict.fromkeys(object_name(n) for n in value.split(",") if n.strip()))
    if not nouns:
        raise click.BadParameter("give at least one object, such as airplane or airplane,ship")
    return nouns


def _check_ray_address(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--ray-address``: ``auto`` or ``HOST:PORT`` (the head's GCS address); a ``ray://`` address is refused."""
    if value is not None:
        from pipelines.ingest.ray_executor import check_ray_address
        from remoteclip.errors import InputError

        try:
            check_ray_address(value)
        except InputError as exc:
            raise click.BadParameter(str(exc)) from exc
    return value


def _report_failure(path: str, reason: str) -> None:
    tqdm.write(f"failed: {path}: {reason}", file=sys.stderr)


def _parse_bbox(ctx: click.Context, param: click.Parameter, value: str | None) -> BaseGeometry | None:
    """``"W,S,E,N"`` (EPSG:4326 degrees) -> a box."""
    if value is None:
        return None
    try:
        west, south, east, north = (float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not W,S,E,N in degrees, such as 32.5,0.2,32.7,0.4") from None
    if not (-180 <= west < east <= 180 and -90 <= south < north <= 90):
        raise click.BadParameter(f"{value!r} is not W,S,E,N with W < E in [-180, 180] and S < N in [-90, 90]")
    return box(west, south, east, north)


def _read_path_list(ctx: click.Context, param: click.Parameter, value: Path | None) -> tuple[str, ...]:
    """The paths and URLs of a text file, one a line (blank lines and ``#`` comments left out)."""
    if value is None:
        return ()
    lines = (line.strip() for line in value.read_text(encoding="utf-8").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


@click.command()
@click.argument("paths", nargs=-1)
@click.option(
    "--paths-from",
    "listed",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    callback=_read_path_list,
    help="A text file of more PATHs or URLs, one a line.",
)
@click.option(
    "--stac",
    metavar="URL_OR_FILE",
    default=None,
    help="Ingest the items of a STAC API (searched) or static catalog (walked): each item's RGB COG.",
)
@click.option(
    "--collection",
    "collections",
    multiple=True,
    help="With --stac: only items of this collection (repeatable).",
)
@click.option(
    "--datetime",
    "datetime_range",
    metavar="RANGE",
    default=None,
    help="With --stac: only items acquired in RANGE (2020-01-01/2020-12-31, 2021-06, ../2022-01-01).",
)
@click.option(
    "--asset",
    default=None,
    help="With --stac: the asset to ingest (default: 'visual', else the RGB one, else the first COG).",
)
@click.option(
    "--max-items", type=click.IntRange(min=1), default=None, help="With --stac: at most this many items."
)
@click.option(
    "--aoi",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="GeoJSON file (EPSG:4326): ingest only the chips meeting this area (of a remote file, only they are "
    "fetched; with --stac, only the items meeting it).",
)
@click.option(
    "--bbox",
    metavar="W,S,E,N",
    default=None,
    callback=_parse_bbox,
    help="The area as a box in degrees instead of --aoi.",
)
@db_option
@storage_options_option
@click.option("--chip-size", type=int, default=256, show_default=True, help="Chip side in output pixels.")
@click.option(
    "--overlap", type=int, default=0, show_default=True, help="Overlap of neighbouring chips in pixels."
)
@click.option(
    "--levels",
    default="1",
    show_default=True,
    callback=_parse_levels,
    help="Scales: a level-L chip covers L x chip-size source pixels (e.g. 1,2,4).",
)
@min_valid_option
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=64, show_default=True, help="Chips per encoder batch."
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=DEFAULT_WORKERS,
    show_default=True,
    help="Reader processes cutting chips while the model encodes (0: read in this process).",
)
@click.option(
    "--commit-rows",
    type=click.IntRange(min=1),
    default=COMMIT_ROWS,
    show_default=True,
    help="Small scenes are written together, whole, until they hold this many rows (1: a commit per scene).",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="local: this machine; ray: Ray Data on a local instance or the cluster named by --ray-address.",
)
@click.option(
    "--ray-address",
    default=None,
    envvar="RAY_ADDRESS",
    callback=_check_ray_address,
    help="Ray cluster to run --engine ray on, from one of its nodes: auto or the head's HOST:PORT (6379 unless "
    "`ray start --head --port` said otherwise); not ray:// (default: a local instance).",
)
@click.option(
    "--ray-encoders",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Model actors of --engine ray (one GPU each when the cluster has GPUs).",
)
@click.option(
    "--objects",
    "nouns",
    default=None,
    callback=_parse_nouns,
    help="Also find these objects (e.g. airplane,ship) in every georeferenced scene of the run with the object "
    "locator and store them in the `objects` table, so AOI counts over the library are a spatial query.",
)
@locator_option
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json")
def ingest(
    paths: tuple[str, ...],
    listed: tuple[str, ...],
    stac: str | None,
    collections: tuple[str, ...],
    datetime_range: str | None,
    asset: str | None,
    max_items: int | None,
    aoi: Path | None,
    bbox: BaseGeometry | None,
    db: Path | str,
    storage_options: dict[str, str],
    chip_size: int,
    overlap: int,
    levels: tuple[int, ...],
    min_valid: float,
    batch_size: int,
    workers: int,
    commit_rows: int,
    engine: str,
    ray_address: str | None,
    ray_encoders: int,
    nouns: tuple[str, ...],
    locator_path: Path | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
) -> None:
    """Ingest PATH... (files, folders, globs: GeoTIFF, COG, VRT, JPEG, PNG; or COG URLs: https://, s3://,
    gs://, and quoted globs of s3:// and gs:// URLs) and the items of --stac into the chip index at --db.

    Exits 1 if any file failed; the others are ingested all the same.
    """
    if aoi is not None and bbox is not None:
        raise click.UsageError("give --aoi or --bbox, not both")
    if stac is None and (collections or datetime_range or asset or max_items):
        raise click.UsageError("--collection, --datetime, --asset and --max-items choose items of --stac URL")
    area = load_aoi(aoi) if aoi is not None else bbox
    sources: list[str | Path] = [*paths, *listed]
    items = None
    if stac is not None:
        found = stac_scenes(
            stac,
            collections=collections,
            aoi=area,
            datetime_range=datetime_range,
            asset=asset,
            max_items=max_items,
        )
        for item, reason in found.skipped:
            click.echo(f"skipped: {item}: {reason}", err=True)
        sources += [scene.source for scene in found.scenes]
        items = found.items()
        click.echo(f"{len(found.scenes)} items found in {stac}", err=True)
    elif not sources:
        raise click.UsageError("give at least one PATH, --paths-from FILE or --stac URL")
    spec = ChipSpec(chip_px=chip_size, overlap_px=overlap, levels=levels, min_valid=min_valid)
    if engine == "local" and workers:
        start_reader_server()  # its imports overlap the model's loading
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    locator = load_locator(model, locator_path) if nouns else None  # before the ingest: fail early
    # a library embedded by another model: these vectors go into a table of their own beside the old one
    index = index_for_model(db, model.model_id, storage_options)
    if index.table_name != TABLE_NAME and index.table is None:
        click.echo(
            f"{db} holds another model's vectors: embedding with {model.model_id} into a new table "
            f"{index.table_name} beside them (both stay; search with either model)",
            err=True,
        )
    if engine == "ray":
        from pipelines.ingest.ray_executor import ray_ingest_paths

        summary = ray_ingest_paths(
            sources,
            index,
            model,
            model_name,
            weights,
            spec,
            batch_size=batch_size,
            encoders=ray_encoders,
            address=ray_address,
            on_failure=_report_failure,
            aoi=area,
            items=items,
        )
    else:
        summary = ingest_paths(
            sources,
            index,
            model,
            spec,
            batch_size=batch_size,
            workers=workers,
            commit_rows=commit_rows,
            on_failure=_report_failure,
            aoi=area,
            items=items,
        )
    stored: dict[str, int] = {}
    if locator is not None:
        stored = store_objects(index, model, locator, nouns, run_scenes(index, sources))
    if output_format == "json":
        extra = {"objects": stored} if nouns else {}
        echo_json({"db": str(db), "model_id": model.model_id, **summary.to_dict(), **extra})
    else:
        for path, same in summary.duplicates:
            click.echo(f"duplicate: {path} is the same file as {same}; ingested once", err=True)
        copies = f"{len(summary.duplicates)} duplicates skipped, " if summary.duplicates else ""
        click.echo(
            f"{summary.scenes} scenes, {summary.chips} chips ({summary.skipped_text()}), "
            f"{summary.unchanged} scenes already done, {copies}"
            f"{len(summary.failed)} failed, {summary.chips_per_s:.1f} chips/s in {summary.seconds:.1f} s "
            f"-> {db}"
        )
        for noun, n in stored.items():
            click.echo(f"{n} {plural(noun) if n != 1 else noun} stored in the objects table")
    if summary.failed:
        raise click.exceptions.Exit(1)
