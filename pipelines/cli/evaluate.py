"""``remoteclip-explorer evaluate``: the paper's evaluation protocols on any dataset, and the full report.

remoteclip-explorer evaluate zero-shot --data my-scenes --out zs.json                 # every image
remoteclip-explorer evaluate zero-shot --data ../shared/data/rsscn7 --split rsscn7   # its held-out 20 %
remoteclip-explorer evaluate retrieval --model ViT-B-32 --weights RemoteCLIP-ViT-B-32.pt --data caps.csv
remoteclip-explorer evaluate counting --data ../shared/data/airbus-aircraft --object airplane --chip-px 512
remoteclip-explorer evaluate all --out-dir docs/evaluation

A shared dataset's fixed held-out split (pipelines/datasets/splits.py) is used only when ``--split NAME`` asks for
it (``evaluate all`` asks for it on each of its sets), never because the ``--data`` folder is named like one.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

from pipelines.cli.options import (
    backend_option,
    device_option,
    echo_json,
    model_option,
    output_format_option,
    overwrite_option,
    weights_option,
)
from pipelines.evaluation.runner import (
    CLASSIFICATION_TASKS,
    TASK_SPLITS,
    TASKS,
    read_suite,
    read_task_data,
    run_suite,
    run_task,
)

DEFAULT_DATA_ROOT = Path("../shared/data")

CLASS_FOLDERS = "Folder with one subfolder per class (or train/ and test/ folders of them)."
#: task -> (what it measures, what --data must be)
TASK_HELP: dict[str, tuple[str, str]] = {
    "zero-shot": ('Zero-shot top-1 with the prompt "a satellite photo of {}." per class.', CLASS_FOLDERS),
    "linear-probe": (
        "Logistic regression on frozen features, C chosen on a validation split.",
        CLASS_FOLDERS,
    ),
    "knn": ("Weighted k-NN (k = 20, T = 0.07) on frozen features.", CLASS_FOLDERS),
    "few-shot": (
        "Linear probe on 1, 2, 4, 8, 16, 32 images per class; mean and spread over 5 seeds.",
        CLASS_FOLDERS,
    ),
    "retrieval": (
        "Image-text retrieval: R@1/5/10 both ways and their mean mR (0..100).",
        "CSV/TSV with columns filepath,caption; a folder with a Karpathy dataset_*.json; or ucm-captions.",
    ),
    "counting": (
        "RemoteCount top-1..10 accuracy on chips with 1..10 objects, and the MAE of area counts.",
        "Folder of images with boxes: annotations.csv (Airbus), annotations/*.xml (VOC) or labelTxt/ (DOTA).",
    ),
}


#: task -> what --split does for it, and what it does without
SPLIT_HELP: dict[str, str] = {
    **dict.fromkeys(
        CLASSIFICATION_TASKS,
        "zero-shot scores only its held-out 20 % of each class; the probes and few-shot train on the other "
        "80 %. Default: "
        "the data's own train/ and test/ folders if it has them; else zero-shot scores every image and the "
        "probes hold out 20 % of each class by hash.",
    ),
    "retrieval": "only its held-out 20 % of each class is scored. Default: every image given (a Karpathy JSON: "
    "its test split).",
    "counting": "only its held-out images are counted (airbus-aircraft: valid/; ships-google-earth: 20 %). "
    "Default: every annotated image (Airbus-style train/ + valid/ folders: valid/).",
}


def _split_option(task: str) -> Callable[[F], F]:
    names = TASK_SPLITS[task]
    return click.option(
        "--split",
        "split",
        metavar="NAME",
        default=None,
        help=(
            f"Use the fixed held-out split of the shared dataset NAME ({', '.join(names)}; see "
            f"pipelines/datasets/splits.py), applied to the --data folder whatever its name: {SPLIT_HELP[task]} "
            "A folder's name never chooses a split."
        ),
    )


def _data_root_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--data-root",
        type=click.Path(exists=True, file_okay=False, path_type=Path),
        default=DEFAULT_DATA_ROOT,
        show_default=True,
        help=help_text,
    )


def _load(model_name: str | None, weights: Path | None, device: str, backend: str | None) -> Any:
    from remoteclip.factory import load_model

    return load_model(model_name, weights=weights, device=device, backend=backend)


def _check_output(path: Path | None, overwrite: bool, option: str) -> None:
    if path is not None and path.exists() and not overwrite:
        raise click.BadParameter(f"{path} exists; pass --overwrite to replace it", param_hint=option)


def _report(result: dict[str, Any], out: Path | None, output_format: str) -> None:
    """Write ``result`` as JSON to ``out`` if given, and print it (JSON) or its one-line summary."""
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1))
    if output_format == "json":
        echo_json(result)
    else:
        click.echo(_summary(result))


def _summary(result: dict[str, Any]) -> str:
    numbers = {k: v for k, v in result["metrics"].items() if isinstance(v, float)}
    shown = ", ".join(f"{k}={v:.4g}" for k, v in numbers.items())
    return f"{result['task']} on {result['dataset']} (n={result['n']}, model {result['model']}): {shown}"


@click.group()
def evaluate() -> None:
    """Evaluate a model with the RemoteCLIP paper's protocols (JSON keeps every prediction)."""


def _task_command(task: str) -> click.Command:
    @click.option(
        "--data", type=click.Path(exists=True, path_type=Path), required=True, help=TASK_HELP[task][1]
    )
    @_split_option(task)
    @model_option
    @weights_option
    @device_option
    @backend_option
    @click.option(
        "--out",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Write the result (metrics and every prediction) as JSON here.",
    )
    @overwrite_option
    @output_format_option("table", "json")
    def command(
        data: Path,
        model_name: str | None,
        weights: Path | None,
        device: str,
        backend: str | None,
        out: Path | None,
        overwrite: bool,
        output_format: str,
        split: str | None,
        **counting_options: Any,
    ) -> None:
        _check_output(out, overwrite, "--out")
        dataset = read_task_data(task, data, split=split, **counting_options)
        _report(run_task(_load(model_name, weights, device, backend), task, dataset), out, output_format)

    if task == "counting":
        command = click.option(
            "--object",
            "object_name",
            default=None,
            help="Box label to count (airplane, boat, ship, …); default: the most common.",
        )(command)
        command = click.option(
            "--chip-px",
            type=click.IntRange(min=8),
            default=None,
            help="Side of the square chips in pixels; default: whole images.",
        )(command)
    summary, data_help = TASK_HELP[task]
    return click.command(task, help=f"{summary}\n\n--data: {data_help}", short_help=summary)(command)


for _task in TASKS:
    evaluate.add_command(_task_command(_task))


@evaluate.command("all")
@model_option
@weights_option
@device_option
@backend_option
@_data_root_option("The shared data folder with the held-out sets.")
@click.option(
    "--source-dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="build-trainset's --source-dir: adds zero-shot on its datasets kept out of training whole.",
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for README.md, the PNG plots and results.json.",
)
@overwrite_option
def evaluate_all(
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    data_root: Path,
    source_dir: Path | None,
    out_dir: Path,
    overwrite: bool,
) -> None:
    """Every task on the default held-out sets of ../shared/data, written up as a markdown report + plots."""
    from pipelines.evaluation.report import write_report

    _check_output(out_dir / "README.md", overwrite, "--out-dir")
    jobs = read_suite(data_root, source_root=source_dir)
    results = run_suite(_load(model_name, weights, device, backend), jobs)
    argv = [
        "remoteclip-explorer",
        "evaluate",
        "all",
        "--data-root",
        str(data_root),
        *(["--source-dir", str(source_dir)] if source_dir is not None else []),
        "--out-dir",
        str(out_dir),
    ]
    argv += ["--model", model_name] if model_name else []
    argv += ["--weights", str(weights)] if weights else []
    path = write_report(results, out_dir, shlex.join(argv))
    for result in results:
        click.echo(_summary(result))
    click.echo(f"report: {path}")


@evaluate.command("calibration")
@model_option
@weights_option
@device_option
@backend_option
@_data_root_option("The shared data folder: the held-out splits of rsscn7 and ucm-captions are used.")
@click.option(
    "--write",
    "write_to",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the fitted calibration JSON here (the app reads remoteclip/weights/<model>-calibration.json).",
)
@overwrite_option
@output_format_option("table", "json")
def evaluate_calibration_command(
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    data_root: Path,
    write_to: Path | None,
    overwrite: bool,
    output_format: str,
) -> None:
    """Fit search's strong/weak bands, Classify's "none of these" and its temperature on held-out imagery."""
    from pipelines.evaluation.calibration import CALIBRATION_SPLITS, evaluate_calibration
    from pipelines.evaluation.readers import read_classification
    from pipelines.evaluation.runner import ImageEmbedder
    from remoteclip.calibration import save_calibration

    _check_output(write_to, overwrite, "--write")
    sets = [read_classification(data_root / name, name) for name in CALIBRATION_SPLITS]
    model = _load(model_name, weights, device, backend)
    calibration, report = evaluate_calibration(model, sets, ImageEmbedder(model))
    if write_to is not None:
        save_calibration(calibration, write_to)
    if output_format == "json":
        echo_json({"model": model.model_id, **report})
    else:
        for key, value in report.items():
            click.echo(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")


@evaluate.command("feedback")
@click.option("--data", type=click.Path(exists=True, path_type=Path), required=True, help=CLASS_FOLDERS)
@click.option(
    "--per-class", type=click.IntRange(min=1), default=None, help="At most this many images per class."
)
@model_option
@weights_option
@device_option
@backend_option
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the JSON here."
)
@click.option(
    "--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="Draw precision@20 per round and class to this PNG.",
)
@overwrite_option
@output_format_option("table", "json")
def evaluate_feedback_command(
    data: Path,
    per_class: int | None,
    model_name: str | None,
    weights: Path | None,
    device: str,
    backend: str | None,
    out: Path | None,
    plot: Path | None,
    overwrite: bool,
    output_format: str,
) -> None:
    """A simulated analyst marks 5 of the top 20 per round; precision@20 after rounds 0-3, per class."""
    from pipelines.evaluation.feedback import evaluate_feedback
    from pipelines.evaluation.readers import limit_per_class, read_classification
    from pipelines.evaluation.runner import ImageEmbedder

    _check_output(out, overwrite, "--out")
    _check_output(plot, overwrite, "--plot")
    dataset = read_classification(data)
    if per_class is not None:
        dataset = limit_per_class(dataset, per_class)
    model = _load(model_name, weights, device, backend)
    result = evaluate_feedback(model, dataset, ImageEmbedder(model))
    _report(result, out, output_format)
    if plot is not None:
        from pipelines.evaluation.report import plot_feedback

        plot_feedback(result, plot)
    if output_format != "json":
        for row in result["predictions"]:
            click.echo(f"  {row['class']}: " + " -> ".join(f"{v:.2f}" for v in row["precision_at_20"]))


def _parse_models(ctx: click.Context, param: click.Parameter, value: str) -> list[Any]:
    """``"A,B=weights.pt"`` -> model specs (a registry name, folder or file; ``=PATH``: its local weights)."""
    from pipelines.evaluation.compare import ModelSpec

    specs = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, _, weights = item.partition("=")
        specs.append(ModelSpec(name.strip(), Path(weights.strip()).expanduser() if weights.strip() else None))
    if not specs:
        raise click.BadParameter("name at least one model, such as explorer-small,Git-RSCLIP")
    return specs


def _parse_compare_data(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> list[tuple[str, Path]]:
    """``TASK=PATH`` (or ``PATH``: zero-shot) for each --data."""
    from pipelines.evaluation.compare import COMPARE_TASKS

    parsed = []
    for item in value:
        task, sep, path = item.partition("=")
        task, path = (task.strip(), path) if sep else ("zero-shot", item)
        if task not in COMPARE_TASKS:
            raise click.BadParameter(f"{item!r}: the task must be one of {', '.join(COMPARE_TASKS)} (TASK=PATH)")
        if not Path(path).expanduser().exists():
            raise click.BadParameter(f"{item!r}: {path} does not exist")
        parsed.append((task, Path(path).expanduser()))
    return parsed


@evaluate.command("compare")
@click.option(
    "--models",
    "specs",
    required=True,
    callback=_parse_models,
    help="Comma-separated models: registry names, model folders or weights files; NAME=PATH gives a model "
    "its local weights (e.g. explorer-small,GeoRSCLIP-ViT-B-32=RS5M_ViT-B-32.pt,Git-RSCLIP=./Git-RSCLIP).",
)
@click.option(
    "--data",
    "data",
    multiple=True,
    required=True,
    callback=_parse_compare_data,
    help="TASK=PATH, repeatable: zero-shot=class folders, retrieval=captions (CSV/TSV, Karpathy JSON), "
    "counting=images with boxes; a bare PATH is zero-shot.",
)
@click.option(
    "--object", "object_name", default=None, help="Box label the counting data counts (default: the most common)."
)
@click.option(
    "--chip-px", type=click.IntRange(min=8), default=None, help="Counting chips' side in pixels (default: whole images)."
)
@device_option
@backend_option
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for compare.json (every result), compare.md and compare.csv (the table) and compare.png.",
)
@overwrite_option
def evaluate_compare(
    specs: list[Any],
    data: list[tuple[str, Path]],
    object_name: str | None,
    chip_px: int | None,
    device: str,
    backend: str | None,
    out_dir: Path,
    overwrite: bool,
) -> None:
    """The same zero-shot, retrieval and counting tasks for each of --models: one table and one plot."""
    from pipelines.evaluation.compare import (
        FILES,
        compare_models,
        comparison_rows,
        markdown_table,
        write_comparison,
    )

    for name in FILES:
        _check_output(out_dir / name, overwrite, "--out-dir")
    jobs = [(task, read_task_data(task, path, object_name, chip_px)) for task, path in data]
    results = compare_models(specs, jobs, lambda spec: _load(spec.name, spec.weights, device, backend))
    argv = ["remoteclip-explorer", "evaluate", "compare", "--models",
            ",".join(s.name if s.weights is None else f"{s.name}={s.weights}" for s in specs)]
    for task, path in data:
        argv += ["--data", f"{task}={path}"]
    argv += [*(["--object", object_name] if object_name else []), *(["--chip-px", str(chip_px)] if chip_px else [])]
    argv += ["--out-dir", str(out_dir)]
    paths = write_comparison(results, out_dir, shlex.join(argv))
    click.echo(markdown_table(comparison_rows(results)), nl=False)
    click.echo(f"table: {paths['compare.md']}, plot: {paths['compare.png']}")
