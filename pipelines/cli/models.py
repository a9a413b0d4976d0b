"""``models``, ``embed``, ``classify`` and ``count``: the model library from the command line.

``count`` counts each image with :func:`pipelines.services.count.count_image`: RemoteCount per non-overlapping
chip, summed with each chip weighted by its share inside ``--aoi`` when one is given.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import click
from shapely.geometry.base import BaseGeometry

from pipelines.cli.options import (
    aoi_option,
    backend_option,
    device_option,
    echo_json,
    locator_option,
    model_option,
    output_format_option,
    weights_option,
)
from pipelines.services.classify import parse_labels
from pipelines.services.count import count_image
from pipelines.services.locate import (
    DEFAULT_SPAN_PX,
    LARGE_IMAGE_PX,
    SMALL_SPAN_PX,
    locate_objects,
    object_query,
    objects_geojson,
)
from remoteclip.counting import build_count_captions
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.locator import load_locator
from remoteclip.pretrained import ALIASES, REGISTRY, cached_weights
from remoteclip.prompts import PAPER_TEMPLATE, ZEROSHOT_TEMPLATES, plural, singular
from remoteclip.zeroshot import build_classifier, top_k
from tiles.aoi import load_aoi
from tiles.reader import read_image

batch_size_option = click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per model batch."
)
images_argument = click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


@click.command()
@output_format_option("table", "json")
def models(output_format: str) -> None:
    """List the model registry and which weights are already on this machine."""
    aliases = {target: alias for alias, target in ALIASES.items()}
    rows = []
    for entry in REGISTRY.values():
        cached = cached_weights(entry)
        rows.append(
            {
                "name": entry.name,
                "alias": aliases.get(entry.name),
                "arch": entry.arch,
                "source": entry.location,
                "cached": str(cached) if cached else None,
                "description": entry.description,
            }
        )
    if output_format == "json":
        echo_json(rows)
        return
    for row in rows:
        name = f"{row['name']} ({row['alias']})" if row["alias"] else row["name"]
        click.echo(
            f"{name:<32} {row['arch']:<26} {'cached' if row['cached'] else 'not cached':<11} {row['source']}"
        )


@click.command()
@images_argument
@model_option
@weights_option
@device_option
@backend_option
@batch_size_option
@output_format_option("json", "table")
def embed(
    images: tuple[Path, ...],
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    batch_size: int,
    output_format: str,
) -> None:
    """Print one L2-normalised embedding per IMAGE (through the model's own preprocessing)."""
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    vectors = encode_images(model, [read_image(path) for path in images], batch_size=batch_size)
    if output_format == "json":
        echo_json(
            {
                "model_id": model.model_id,
                "dim": model.embed_dim,
                "images": [
                    {"path": str(path), "vector": vector.tolist()} for path, vector in zip(images, vectors)
                ],
            }
        )
        return
    for path, vector in zip(images, vectors):
        click.echo(
            f"{path}\t{model.model_id}\t[{', '.join(f'{v:.4f}' for v in vector[:4])}, …] ({len(vector)})"
        )


def _parse_labels(ctx: click.Context, param: click.Parameter, value: str) -> list[str]:
    """``--labels`` through :func:`parse_labels`; its InputError becomes a usage error naming the option."""
    try:
        return parse_labels(value)
    except InputError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@click.command()
@images_argument
@click.option("--labels", required=True, callback=_parse_labels, help="Comma-separated class names.")
@click.option(
    "--templates",
    type=click.Choice(["ensemble", "paper"]),
    default="ensemble",
    show_default=True,
    help="Average the remote-sensing prompt set, or only 'a satellite photo of {}.'.",
)
@click.option(
    "--top-k", "k", type=click.IntRange(min=1), default=3, show_default=True, help="Labels shown per image."
)
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json")
def classify(
    images: tuple[Path, ...],
    labels: list[str],
    templates: str,
    k: int,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
) -> None:
    """Label each IMAGE with the most probable of --labels (zero-shot)."""
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    class_weights = build_classifier(
        model, labels, ZEROSHOT_TEMPLATES if templates == "ensemble" else (PAPER_TEMPLATE,)
    )
    vectors = encode_images(model, [read_image(path) for path in images])
    ranked = top_k(vectors, class_weights, labels, model.logit_scale, k=k)
    if output_format == "json":
        echo_json(
            {
                "model_id": model.model_id,
                "labels": labels,
                "templates": templates,
                "images": [
                    {"path": str(path), "top": [asdict(p) for p in predictions]}
                    for path, predictions in zip(images, ranked)
                ],
            }
        )
        return
    for path, predictions in zip(images, ranked):
        click.echo(f"{path}\t" + ", ".join(f"{p.label} {p.probability:.1%}" for p in predictions))


@click.command()
@images_argument
@click.option("--object", "noun", required=True, help="What to count, a noun such as airplane, ship, car.")
@aoi_option
@click.option(
    "--method",
    type=click.Choice(["locator", "remotecount"]),
    default="locator",
    show_default=True,
    help="locator: find each object (a count is the objects found); remotecount: the paper's protocol, "
    'ranking "a satellite photo of {n} {objects}." (0-10) per non-overlapping chip.',
)
@click.option(
    "--chip-size",
    "chip_px",
    type=click.IntRange(min=8),
    default=None,
    help=f"Source pixels a chip spans [locator: {DEFAULT_SPAN_PX} in images of {LARGE_IMAGE_PX} px or more, "
    f"else {SMALL_SPAN_PX}, read at 256 px; remotecount: 256].",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    help="Locator score an object needs [default: the one chosen on held-out images, printed].",
)
@locator_option
@batch_size_option
@model_option
@weights_option
@device_option
@backend_option
@output_format_option("table", "json", "geojson")
def count(
    images: tuple[Path, ...],
    noun: str,
    aoi: Path | None,
    method: str,
    chip_px: int | None,
    threshold: float | None,
    locator_path: Path | None,
    batch_size: int,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    output_format: str,
) -> None:
    """Count --object in each IMAGE: the objects the locator finds, or RemoteCount per chip."""
    area = load_aoi(aoi) if aoi is not None else None
    model = load_model(model_name, weights=weights, device=device, backend=backend)
    objects = plural(singular(noun))
    if method == "remotecount":
        if output_format == "geojson":
            raise click.UsageError("--format geojson lists found objects; use it with --method locator")
        _count_remotecount(model, images, noun, area, chip_px or 256, batch_size, output_format, objects)
        return
    locator = load_locator(model, locator_path)
    query = object_query(model, locator, noun, threshold)
    if query.warning:
        click.echo(f"Warning: {query.warning}", err=True)
    results = [
        locate_objects(model, locator, path, query, span_px=chip_px, aoi=area, batch_size=batch_size)
        for path in images
    ]
    total = sum(result.total for result in results)
    if output_format == "geojson":
        echo_json(objects_geojson(results, query.noun))
    elif output_format == "json":
        echo_json(
            {
                "model_id": model.model_id,
                "object": noun,
                "method": "locator",
                "threshold": query.threshold,
                "chip_px": chip_px or "auto",
                "warning": query.warning,
                "total": total,
                "images": [result.as_dict() for result in results],
            }
        )
    else:
        for result in results:
            click.echo(f"{result.path}\t{result.total} {objects}")
        click.echo(f"total\t{total} {objects} (locator score >= {query.threshold:g})")


def _count_remotecount(
    model: LoadedModel,
    images: tuple[Path, ...],
    noun: str,
    area: BaseGeometry | None,
    chip_px: int,
    batch_size: int,
    output_format: str,
    objects: str,
) -> None:
    """``count --method remotecount``: RemoteCount per non-overlapping chip, summed with AOI weights."""
    captions = build_count_captions(model, noun)
    results = [
        count_image(model, path, captions, chip_px=chip_px, aoi=area, batch_size=batch_size)
        for path in images
    ]
    total = round(sum(result.total for result in results), 2)
    if output_format == "json":
        echo_json(
            {
                "model_id": model.model_id,
                "object": noun,
                "method": "remotecount",
                "chip_px": chip_px,
                "total": total,
                "images": [result.as_dict() for result in results],
            }
        )
        return
    for result in results:
        click.echo(f"{result.path}\t{result.total:g} {objects} in {len(result.chips)} chips")
    click.echo(f"total\t{total:g} {objects}")
