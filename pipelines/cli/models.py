"""``models``, ``embed``, ``classify`` and ``count``: the model library from the command line.

``count`` cuts each image into non-overlapping chips (``tiles``), ranks the RemoteCount captions per chip and
sums the per-chip counts, each weighted by the share of the chip inside ``--aoi`` when one is given.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import click
import numpy as np
from PIL import Image, UnidentifiedImageError
from shapely.geometry.base import BaseGeometry

from pipelines.cli.options import (
    aoi_option,
    device_option,
    echo_json,
    model_option,
    output_format_option,
    weights_option,
)
from remoteclip.counting import aggregate_counts, build_count_captions, estimate_counts
from remoteclip.encode import encode_images
from remoteclip.errors import InputError
from remoteclip.factory import LoadedModel, load_model
from remoteclip.pretrained import ALIASES, REGISTRY, cached_weights
from remoteclip.prompts import PAPER_TEMPLATE, ZEROSHOT_TEMPLATES, plural, singular
from remoteclip.zeroshot import build_classifier, top_k
from tiles.aoi import load_aoi
from tiles.errors import RasterReadError
from tiles.georef import chip_georef
from tiles.grid import ChipSpec, ChipWindow, iter_windows
from tiles.reader import open_scene

batch_size_option = click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per model batch."
)
images_argument = click.argument(
    "images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)


def read_image(path: Path) -> Image.Image:
    """A whole image file as RGB (what ``embed`` and ``classify`` feed the model's preprocessing)."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise RasterReadError(
            f"{path}: not an image Pillow can read ({exc}); for multi-band or 16-bit rasters "
            f"use `remoteclip-explorer ingest`"
        ) from exc


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
            f"{name:<32} {row['arch']:<16} {'cached' if row['cached'] else 'not cached':<11} {row['source']}"
        )


@click.command()
@images_argument
@model_option
@weights_option
@device_option
@batch_size_option
@output_format_option("json", "table")
def embed(
    images: tuple[Path, ...],
    model_name: str | None,
    weights: Path | None,
    device: str,
    batch_size: int,
    output_format: str,
) -> None:
    """Print one L2-normalised embedding per IMAGE (through the model's own preprocessing)."""
    model = load_model(model_name, weights=weights, device=device)
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
    labels = [label.strip() for label in value.split(",") if label.strip()]
    if len(labels) < 2:
        raise click.BadParameter(f"{value!r} names fewer than two labels; give e.g. 'forest,river,airport'")
    return labels


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
@output_format_option("table", "json")
def classify(
    images: tuple[Path, ...],
    labels: list[str],
    templates: str,
    k: int,
    model_name: str | None,
    weights: Path | None,
    device: str,
    output_format: str,
) -> None:
    """Label each IMAGE with the most probable of --labels (zero-shot)."""
    model = load_model(model_name, weights=weights, device=device)
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


@dataclass
class ChipCount:
    """One chip's window, its best count and the share of it inside the AOI."""

    col_off: int
    row_off: int
    width: int
    height: int
    count: int
    inside_fraction: float


@dataclass
class ImageCount:
    """Counts of one image: the weighted total and every chip that was counted."""

    path: str
    total: float
    chips: list[ChipCount] = field(default_factory=list)


def _aoi_chips(
    path: Path, spec: ChipSpec, aoi: BaseGeometry | None
) -> Iterator[tuple[ChipWindow, np.ndarray, float]]:
    """Non-overlapping chips of ``path`` with the share of each inside ``aoi`` (chips outside are skipped)."""
    with open_scene(path) as scene:
        if aoi is not None and not scene.georeferenced:
            raise InputError(
                f"{path} has no georeference, so --aoi cannot be applied; drop --aoi or use a GeoTIFF"
            )
        for window in iter_windows(scene.width, scene.height, spec):
            fraction = 1.0
            if aoi is not None:
                footprint = chip_georef(window, scene.transform, scene.crs).footprint
                fraction = min(1.0, footprint.intersection(aoi).area / footprint.area)
                if fraction == 0.0:
                    continue
            chip = scene.read_chip(window, spec.chip_px, min_valid=spec.min_valid)
            if chip is not None:
                yield window, chip, fraction


def count_image(
    model: LoadedModel,
    path: Path,
    caption_embeddings: np.ndarray,
    chip_px: int = 256,
    aoi: BaseGeometry | None = None,
    batch_size: int = 64,
) -> ImageCount:
    """Count objects in one image: RemoteCount per non-overlapping chip, summed with AOI weights.

    Chips are read and encoded ``batch_size`` at a time, so memory does not grow with the image.
    """
    chips = _aoi_chips(path, ChipSpec(chip_px=chip_px, overlap_px=0, levels=(1,)), aoi)
    counted: list[ChipCount] = []
    while batch := list(islice(chips, batch_size)):
        embeddings = encode_images(model, [chip for _, chip, _ in batch], batch_size=batch_size)
        estimates = estimate_counts(embeddings, caption_embeddings, model.logit_scale)
        counted += [
            ChipCount(w.col_off, w.row_off, w.width, w.height, e.count, round(fraction, 4))
            for (w, _, fraction), e in zip(batch, estimates)
        ]
    total = aggregate_counts([c.count for c in counted], [c.inside_fraction for c in counted])
    return ImageCount(path=str(path), total=round(total, 2), chips=counted)


@click.command()
@images_argument
@click.option("--object", "noun", required=True, help="What to count, a noun such as airplane, ship, car.")
@aoi_option
@click.option(
    "--chip-size",
    "chip_px",
    type=click.IntRange(min=8),
    default=256,
    show_default=True,
    help="Side of the non-overlapping chips, in pixels (RemoteCount ranks 0-10 objects per chip).",
)
@batch_size_option
@model_option
@weights_option
@device_option
@output_format_option("table", "json")
def count(
    images: tuple[Path, ...],
    noun: str,
    aoi: Path | None,
    chip_px: int,
    batch_size: int,
    model_name: str | None,
    weights: Path | None,
    device: str,
    output_format: str,
) -> None:
    """Count --object in each IMAGE by ranking "a satellite photo of {n} {objects}." per chip."""
    area = load_aoi(aoi) if aoi is not None else None
    model = load_model(model_name, weights=weights, device=device)
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
                "chip_px": chip_px,
                "total": total,
                "images": [asdict(result) for result in results],
            }
        )
        return
    objects = plural(singular(noun))
    for result in results:
        click.echo(f"{result.path}\t{result.total:g} {objects} in {len(result.chips)} chips")
    click.echo(f"total\t{total:g} {objects}")
