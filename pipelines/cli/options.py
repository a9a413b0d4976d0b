"""Options shared by several subcommands (like rasterio's ``rio/options.py``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipelines.services.settings import DEFAULT_DB
from tiles.grid import ChipSpec
from tiles.index.location import is_object_store_uri

F = TypeVar("F", bound=Callable[..., Any])


def parse_int_list(value: str, example: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]``; anything else is a usage error naming ``example``."""
    try:
        return [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a comma-separated list of integers such as {example}"
        ) from None


def output_format_option(*choices: str) -> Callable[[F], F]:
    """``--format`` with these choices, the first being the default."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=choices[0],
        show_default=True,
        help=f"Output format; {' and '.join(choices[1:])} {'are' if len(choices) > 2 else 'is'} for scripts.",
    )


class DbLocation(click.ParamType):
    """A LanceDB folder (as a ``Path``) or an object-store URI such as ``s3://bucket/lib`` (a ``str``)."""

    name = "FOLDER|URI"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Path | str:
        if isinstance(value, Path) or not is_object_store_uri(value):
            path = Path(value).expanduser()
            if path.exists() and not path.is_dir():
                self.fail(f"{str(value)!r} is a file; give a folder or an object-store URI", param, ctx)
            return path
        return str(value)


def _parse_storage_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """``("aws_region=eu-west-1", ...)`` -> ``{"aws_region": "eu-west-1", ...}``."""
    options = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE, such as aws_region=eu-west-1")
        options[key.strip()] = value
    return options


format_option = output_format_option("table", "json", "geojson")
db_option = click.option(
    "--db",
    type=DbLocation(),
    default=DEFAULT_DB,
    show_default=True,
    help="Chip index: a LanceDB folder, or an object-store URI (s3://bucket/library, gs://..., az://...).",
)
storage_options_option = click.option(
    "--storage-option",
    "storage_options",
    multiple=True,
    metavar="KEY=VALUE",
    callback=_parse_storage_options,
    help="Object-store option for an --db URI, repeatable (e.g. aws_endpoint=http://minio:9000, "
    "aws_region=eu-west-1); the AWS_*/GOOGLE_*/AZURE_* environment variables are read as well.",
)
model_option = click.option(
    "--model",
    "model_name",
    default=None,
    help="Model registry name, weights file or model folder (default: the project's own model).",
)
weights_option = click.option(
    "--weights",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    help="Local weights file for --model, or the folder of a Hub repo for a folder model such as Git-RSCLIP "
    "(skips the download).",
)
aoi_option = click.option(
    "--aoi",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="GeoJSON file (EPSG:4326) restricting results to an area of interest.",
)
locator_option = click.option(
    "--locator",
    "locator_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Object locator weights (from `train-locator`) [default: the one shipped for the model].",
)
device_option = click.option(
    "--device", default="cpu", show_default=True, help="Torch device for the model: cpu, cuda, cuda:1."
)
#: what runs the model's embedding towers (as ``remoteclip.onnx_backend.BACKENDS``, not imported: it loads torch)
BACKENDS = ("auto", "torch", "onnx", "onnx-int8")
backend_option = click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default=None,
    help="What runs the model's image and text towers: auto (ONNX Runtime on the CPU, PyTorch on CUDA), "
    "torch or onnx; the vectors are the same (to 1e-5). onnx-int8: the image tower quantised to int8, "
    "calibrated on the images of $REMOTECLIP_INT8_CALIBRATION; close to, not equal to, fp32's vectors "
    "[default: $REMOTECLIP_BACKEND, else auto].",
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace existing output files.")
export_out_option = click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the geojson, csv or gpkg export to this file instead of stdout (needed for gpkg).",
)


def check_export_out(output_format: str, out: Path | None, overwrite: bool) -> None:
    """Refuse ``--out`` with a printed format, a GeoPackage without ``--out``, and an existing ``--out``
    without ``--overwrite`` (before any work is done)."""
    if out is not None and output_format in ("table", "json"):
        raise click.BadParameter(
            f"--out takes an export format (geojson, csv, gpkg), not {output_format}", param_hint="--out"
        )
    if output_format == "gpkg" and out is None:
        raise click.BadParameter("a GeoPackage is binary: give a file to write it to", param_hint="--out")
    if out is not None and out.exists() and not overwrite:
        raise click.BadParameter(f"{out} exists; pass --overwrite to replace it", param_hint="--out")


def emit_export(data: bytes, out: Path | None, summary: str) -> None:
    """Print a text export on stdout, or write it to ``out`` and say ``wrote {summary} to {out}`` on stderr."""
    if out is None:
        text = data.decode()
        click.echo(text, nl=not text.endswith("\n"))
    else:
        out.write_bytes(data)
        click.echo(f"wrote {summary} to {out}", err=True)


def echo_json(payload: Any) -> None:
    """Print ``payload`` as JSON on stdout (for ``--format json``)."""
    click.echo(json.dumps(payload, indent=2, default=str))


#: the empty-chip rule's share, shared by ``ingest`` and ``prune-empty``
min_valid_option = click.option(
    "--min-valid",
    type=click.FloatRange(0, 1),
    default=ChipSpec().min_valid,
    show_default=True,
    help="Skip chips whose share of valid pixels (not nodata, transparent or a black/white border) is lower.",
)
