"""``evaluate compare``: the same tasks for several models, one table (JSON, markdown, CSV) and one plot.

Each model is loaded in turn (:class:`ModelSpec`: a registry name, a folder or a weights file, and optionally a
local weights file), runs every ``(task, dataset)`` through :func:`pipelines.evaluation.runner.run_task` with one
image cache, and is released before the next. A row of the table is one model on one dataset with the task's
headline figures (:data:`HEADLINES`); the JSON keeps every result, predictions included.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipelines.evaluation.runner import EvalData, ImageEmbedder, run_task
from remoteclip.factory import LoadedModel

#: the tasks a comparison runs
COMPARE_TASKS: tuple[str, ...] = ("zero-shot", "retrieval", "counting")
#: task -> (metric key, column label, is a fraction in 0..1 shown as %); the first is the one plotted
HEADLINES: dict[str, tuple[tuple[str, str, bool], ...]] = {
    "zero-shot": (("top1", "top-1 %", True), ("mean_per_class", "mean per class %", True)),
    "retrieval": (
        ("mR", "mR", False), ("i2t_R@1", "image→text R@1", False), ("t2i_R@1", "text→image R@1", False)
    ),
    "counting": (("top1", "RemoteCount top-1 %", True), ("area_mae", "count MAE", False),
                 ("locator_mae", "locator MAE", False)),
}
FILES = ("compare.json", "compare.md", "compare.csv", "compare.png")


@dataclass(frozen=True)
class ModelSpec:
    """A model to compare: what ``load_model`` is given, and a local weights file or folder."""

    name: str
    weights: Path | None = None

    def label(self, model: LoadedModel) -> str:
        """How the table names ``model`` loaded from this spec: its name (a folder's: the folder's name), and
        the local weights' name when given."""
        name = model.model_id.rsplit("@", 1)[0]
        return name if self.weights is None else f"{name} ({self.weights.name})"


def compare_models(
    specs: Sequence[ModelSpec],
    jobs: Sequence[tuple[str, EvalData]],
    load: Callable[[ModelSpec], LoadedModel],
) -> list[dict[str, Any]]:
    """Every job for every model (loaded by ``load``, one at a time); each result names its ``label``."""
    results = []
    for spec in specs:
        model = load(spec)
        embed = ImageEmbedder(model)
        label = spec.label(model)
        results += [run_task(model, task, dataset, embed) | {"label": label} for task, dataset in jobs]
        del model, embed
    return results


def comparison_rows(results: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per result: model, task, dataset, n and the task's headline figures (``None`` where absent)."""
    rows = []
    for result in results:
        row: dict[str, Any] = {"model": result["label"], "model_id": result["model"], "task": result["task"],
                               "dataset": result["dataset"], "n": result["n"]}
        for key, label, fraction in HEADLINES[result["task"]]:
            value = result["metrics"].get(key)
            row[label] = None if value is None else round(100 * value if fraction else value, 2)
        rows.append(row)
    return rows


def _columns(rows: Sequence[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table (``–`` where a task has no such figure)."""
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [
            "–" if row.get(c) is None else f"`{row[c]}`" if c == "model_id" else str(row[c]) for c in columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as CSV (empty cells where a task has no such figure)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def plot_comparison(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """One panel per task and dataset: each model's headline figure (the task's first) as a bar."""
    panels = list(dict.fromkeys((row["task"], row["dataset"]) for row in rows))
    models = list(dict.fromkeys(row["model"] for row in rows))
    fig = Figure(figsize=(max(4.0, 3.2 * len(panels)), 3.6))
    for i, (task, dataset) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        label = HEADLINES[task][0][1]
        values = {row["model"]: row[label] for row in rows if (row["task"], row["dataset"]) == (task, dataset)}
        heights = [values.get(model) or 0.0 for model in models]
        bars = ax.bar(np.arange(len(models)), heights, color=[f"C{j}" for j in range(len(models))])
        ax.bar_label(bars, fmt="%.1f", fontsize=8)
        ax.set_xticks(np.arange(len(models)), models, rotation=30, ha="right", fontsize=8)
        ax.set_ylabel(label)
        ax.set_ylim(0, 100 if label.endswith("%") or task == "retrieval" else max(1.0, 1.2 * max(heights)))
        ax.set_title(f"{task} · {dataset}", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_comparison(results: Sequence[dict[str, Any]], out_dir: Path, command: str) -> dict[str, Path]:
    """``compare.json`` (every result), ``compare.md`` / ``compare.csv`` (the table) and ``compare.png``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = comparison_rows(results)
    paths = {name: out_dir / name for name in FILES}
    report = {"command": command, "rows": rows, "results": list(results)}
    paths["compare.json"].write_text(json.dumps(report, indent=1))
    paths["compare.md"].write_text(f"# Model comparison\n\n`{command}`\n\n{markdown_table(rows)}")
    paths["compare.csv"].write_text(csv_table(rows))
    plot_comparison(rows, paths["compare.png"])
    return paths
