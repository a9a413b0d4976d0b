"""Markdown evaluation report with PNG plots, from the result dicts of :mod:`pipelines.evaluation.runner`.

Plots use matplotlib's object API (``Figure`` renders with Agg; no display, no pyplot state): a confusion
matrix per zero-shot and linear-probe result, the few-shot curve, the retrieval R@k bars and the counting
top-k curve.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from pipelines.evaluation import metrics
from pipelines.evaluation.runner import CLASSIFICATION_TASKS

Result = dict[str, Any]

#: RemoteCLIP ViT-B-32 figures from the paper (arXiv 2306.11029): (figure, value, the paper's data)
PAPER_ZERO_SHOT = ("62.41", "mean top-1 over 12 scene datasets")
PAPER_RETRIEVAL = ("49.38 / 35.26 / 56.36", "RSITMD / RSICD / UCM-captions test splits")
#: where the default suite's sets come from (datasets in ../shared/data; splits in pipelines/datasets/splits.py)
DATA_NOTES: dict[str, str] = {
    "rsscn7": "RSSCN7 scenes, 7 classes: the held-out 20 % of each class is the test set, the rest "
    "trains the probes.",
    "ucm-captions": "UC Merced images of the UCM-captions *train* split, 21 classes, 5 human captions each: "
    "the held-out 20 % of each class is the test set (the official test images are not available here).",
    "airbus-aircraft": "Airbus Pléiades airport scenes (0.5 m): `valid/`, held out entirely.",
    "ships-google-earth": "Google Earth crops of boats and ships: the held-out 20 %.",
    "dota_devkit": "DOTA v1 harbour scene P0706 (0.26 m, 531 ships). Not held out: `build-trainset` also "
    "uses DOTA, so this set was seen in training and its figures are optimistic.",
    "satellite-image-classification-4class": "Kept out of training whole (`HELD_OUT_SOURCES`): 5,631 images, 4 "
    "classes (cloudy, desert: RSI-CB256; green area, water: EuroSAT crops); every image scored.",
    "hurricane-harvey-damage": "Kept out of training whole (`HELD_OUT_SOURCES`): satellite chips of Houston after "
    "hurricane Harvey, damage / no damage (21,485 images); 1,000 per class chosen by hash are scored.",
}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def plot_confusion_matrix(result: Result, path: Path) -> Path:
    """Row-normalised confusion matrix (true class per row) of a classification result's predictions."""
    preds = result["predictions"]
    classes = sorted({p["label"] for p in preds} | {p["pred"] for p in preds})
    index = {c: i for i, c in enumerate(classes)}
    matrix = metrics.confusion_matrix(
        np.array([index[p["label"]] for p in preds]),
        np.array([index[p["pred"]] for p in preds]),
        len(classes),
    )
    rates = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    side = max(4.0, 0.38 * len(classes) + 2.5)
    fig = Figure(figsize=(side + 1, side))
    ax = fig.add_subplot()
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(len(classes)), classes, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(classes)), classes, fontsize=8)
    if len(classes) <= 12:
        for (row, col), count in np.ndenumerate(matrix):
            if count:
                ax.text(
                    col,
                    row,
                    str(count),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if rates[row, col] > 0.5 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{result['task']} on {result['dataset']}: top-1 {_pct(result['metrics']['top1'])} %")
    return _save(fig, path)


def plot_few_shot(results: Sequence[Result], path: Path) -> Path:
    """Top-1 against shots per class (log scale), mean ± std over seeds, one line per dataset."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    for result in results:
        curve = result["metrics"]["curve"]
        shots = np.array([int(s) for s in curve])
        mean = np.array([100 * curve[s]["mean"] for s in curve])
        std = np.array([100 * curve[s]["std"] for s in curve])
        ax.plot(shots, mean, marker="o", label=result["dataset"])
        ax.fill_between(shots, mean - std, mean + std, alpha=0.2)
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots, [str(s) for s in shots])
    ax.set_xlabel("labelled images per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("few-shot linear probe")
    return _save(fig, path)


def plot_feedback(result: Result, path: Path) -> Path:
    """Precision@20 after each round of marks (``evaluate feedback``): one line per class, the mean in black."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    rounds = []
    for row in result["predictions"]:
        values = row["precision_at_20"]
        rounds = list(range(len(values)))
        ax.plot(rounds, values, marker="o", alpha=0.6, label=row["class"])
    mean = [result["metrics"][f"precision_at_20_round_{r}"] for r in rounds]
    ax.plot(rounds, mean, color="black", linewidth=2.5, marker="s", label="mean")
    ax.set_xticks(rounds)
    ax.set_xlabel(f"rounds of {result['metrics']['marks_per_round']} marks")
    ax.set_ylabel("precision@20")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"refine by marks: {result['dataset']} ({result['n']} images)")
    return _save(fig, path)


def plot_retrieval(results: Sequence[Result], path: Path) -> Path:
    """Grouped bars of R@1/5/10 image-to-text and text-to-image, one group per dataset."""
    keys = [k for k in results[0]["metrics"] if "_R@" in k]
    fig = Figure(figsize=(max(5.0, 1.0 + 0.8 * len(keys) * len(results)), 4))
    ax = fig.add_subplot()
    width = 0.8 / len(results)
    for i, result in enumerate(results):
        values = [result["metrics"][k] for k in keys]
        bars = ax.bar(
            np.arange(len(keys)) + i * width,
            values,
            width,
            label=f"{result['dataset']} (mR {result['metrics']['mR']:.2f})",
        )
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
    ax.set_xticks(
        np.arange(len(keys)) + width * (len(results) - 1) / 2,
        [k.replace("i2t_", "image→text ").replace("t2i_", "text→image ") for k in keys],
        rotation=20,
        fontsize=8,
    )
    ax.set_ylabel("recall (%)")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("image-text retrieval")
    return _save(fig, path)


def plot_counting(results: Sequence[Result], path: Path) -> Path:
    """RemoteCount top-k accuracy for k = 1..10, one line per count set."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ks = list(range(1, 11))
    for result in results:
        m = result["metrics"]
        if m["n_chips"]:
            ax.plot(
                ks,
                [100 * m[f"top{k}"] for k in ks],
                marker="o",
                label=f"{result['dataset']} ({m['object']}, {m['n_chips']} chips)",
            )
    ax.plot(ks, [10 * k for k in ks], color="grey", linestyle="--", label="chance")
    ax.set_xticks(ks)
    ax.set_xlabel("k")
    ax.set_ylabel("top-k accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("counting (RemoteCount protocol, 1–10 objects)")
    return _save(fig, path)


def _by_task(results: Sequence[Result], task: str) -> list[Result]:
    return [r for r in results if r["task"] == task]


def _classification_section(results: Sequence[Result], out_dir: Path) -> list[str]:
    lines = [
        "## Scene classification",
        "",
        "| dataset | task | test images | top-1 (%) | top-5 (%) | mean per class (%) | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in results:
        if r["task"] not in CLASSIFICATION_TASKS:
            continue
        m = r["metrics"]
        note = {
            "zero-shot": f"prompt “{m.get('templates', [''])[0]}”; search precision@10 "
            f"{_pct(m.get('search_precision_at_10'))}",
            "linear-probe": f"C = {m.get('C')} (chosen on validation), {m.get('n_train')} training images",
            "knn": f"k = {m.get('k')}, T = {m.get('temperature')}, {m.get('n_train')} training images",
            "few-shot": f"most shots, mean of {len(m.get('seeds', []))} seeds",
        }[r["task"]]
        lines.append(
            f"| {r['dataset']} | {r['task']} | {r['n']} | {_pct(m['top1'])} | {_pct(m.get('top5'))} | "
            f"{_pct(m.get('mean_per_class'))} | {note} |"
        )
    lines.append("")
    for r in results:
        if r["task"] in ("zero-shot", "linear-probe"):
            png = plot_confusion_matrix(
                r, out_dir / f"confusion_{_slug(r['task'])}_{_slug(r['dataset'])}.png"
            )
            lines += [f"![{r['task']} confusion matrix on {r['dataset']}]({png.name})", ""]
    few = _by_task(results, "few-shot")
    if few:
        shots = list(few[0]["metrics"]["curve"])
        lines += [
            "### Few-shot linear probe",
            "",
            "| dataset | " + " | ".join(f"{s}-shot" for s in shots) + " |",
            "|---|" + "---:|" * len(shots),
        ]
        for r in few:
            curve = r["metrics"]["curve"]
            lines.append(
                f"| {r['dataset']} | "
                + " | ".join(f"{100 * curve[s]['mean']:.1f} ± {100 * curve[s]['std']:.1f}" for s in shots)
                + " |"
            )
        png = plot_few_shot(few, out_dir / "few_shot.png")
        lines += [
            "",
            "Top-1 (%), mean ± standard deviation over seeds.",
            "",
            f"![few-shot curve]({png.name})",
            "",
        ]
    return lines


def _retrieval_section(results: Sequence[Result], out_dir: Path) -> list[str]:
    keys = [k for k in results[0]["metrics"] if "_R@" in k]
    lines = [
        "## Image-text retrieval",
        "",
        "| dataset | images | captions | " + " | ".join(keys) + " | mR |",
        "|---|---:|---:|" + "---:|" * (len(keys) + 1),
    ]
    for r in results:
        m = r["metrics"]
        lines.append(
            f"| {r['dataset']} | {r['n']} | {m['n_captions']} | "
            + " | ".join(f"{m[k]:.2f}" for k in keys)
            + f" | **{m['mR']:.2f}** |"
        )
    png = plot_retrieval(results, out_dir / "retrieval.png")
    return lines + ["", f"![retrieval recall]({png.name})", ""]


def _counting_section(results: Sequence[Result], out_dir: Path) -> list[str]:
    lines = [
        "## Counting",
        "",
        (
            "| count set | object | images | chip side | chips (1–10) | top-1 (%) | top-3 (%) | top-5 (%) "
            "| top-10 (%) | area MAE | true total |"
        ),
        "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m = r["metrics"]
        total = sum(p["true"] for p in r["predictions"])
        chips = r["predictions"][0]["chips"] if r["predictions"] else []
        side = f"{chips[0]['window'][2]} px" if len(chips) > 1 else "whole image"
        lines.append(
            f"| {r['dataset']} | {m['object']} | {r['n']} | {side} | {m['n_chips']} | "
            + "".join(f"{_pct(m.get(f'top{k}'))} | " for k in (1, 3, 5, 10))
            + f"{m['area_mae']:.2f} | {total} |"
        )
    png = plot_counting(results, out_dir / "counting_topk.png")
    return lines + [
        "",
        "Area MAE: mean over images of |true count − sum of the per-chip estimates|.",
        "",
        f"![counting top-k]({png.name})",
        "",
        *_per_image_counting(results),
    ]


def _per_image_counting(results: Sequence[Result]) -> list[str]:
    """Per-image count errors of RemoteCount (chip estimates summed) beside the object locator's (found)."""
    lines = [
        "### Objects per image: RemoteCount vs the object locator",
        "",
        (
            "| count set | object | images | true total | RemoteCount MAE / RMSE / rel. "
            "| locator MAE / RMSE / rel. | locator threshold |"
        ),
        "|---|---|---:|---:|---|---|---:|",
    ]
    for r in results:
        m = r["metrics"]
        total = sum(p["true"] for p in r["predictions"])
        remote = f"{m['area_mae']:.2f} / {m['area_rmse']:.2f} / {m['area_relative_error']:.2f}"
        located = (
            f"{m['locator_mae']:.2f} / {m['locator_rmse']:.2f} / {m['locator_relative_error']:.2f}"
            if "locator_mae" in m
            else "—"
        )
        threshold = f"{m['locator_threshold']:.2f}" if "locator_threshold" in m else "—"
        lines.append(f"| {r['dataset']} | {m['object']} | {r['n']} | {total} | {remote} | {located} | {threshold} |")
    return [
        *lines,
        "",
        (
            "rel.: mean of |pred − true| / max(true, 1). The locator counts the objects it finds in the whole "
            "image (overlapping chips, each object once); RemoteCount sums its 0–10 estimate per chip."
        ),
        "",
    ]


def _paper_section(results: Sequence[Result]) -> list[str]:
    zero = _by_task(results, "zero-shot")
    ours_zero = "; ".join(f"{_pct(r['metrics']['top1'])} ({r['dataset']}, {r['n']} images)" for r in zero)
    retrieval = _by_task(results, "retrieval")
    ours_mr = "; ".join(f"{r['metrics']['mR']:.2f} ({r['dataset']}, {r['n']} images)" for r in retrieval)
    rows = [("zero-shot top-1 (%)", PAPER_ZERO_SHOT, ours_zero), ("retrieval mR", PAPER_RETRIEVAL, ours_mr)]
    lines = [
        "## Beside the paper",
        "",
        "| figure | RemoteCLIP ViT-B-32 (paper) | paper's data | this model (held-out ../shared/data) |",
        "|---|---:|---|---|",
    ]
    lines += [f"| {name} | {value} | {data} | {ours or '–'} |" for name, (value, data), ours in rows]
    lines += [
        "",
        (
            "The figures are **not directly comparable**: the paper's come from official test splits of "
            "datasets whose images are not available here (RSITMD, RSICD, the UCM-captions test images, 12 scene "
            "datasets); ours come from the fixed held-out splits in `pipelines/datasets/splits.py` (20 % of each class of "
            "RSSCN7 and of the UCM-captions *train* images, never used for training). A model trained by "
            "`remoteclip-explorer train` on `build-trainset` output (such as the default `explorer-small`) "
            "saw the other 80 % of the same datasets, so its figures are *in-domain*, whereas the paper's "
            "zero-shot datasets were never in RemoteCLIP's training data."
        ),
        "",
    ]
    return lines


def _data_section(results: Sequence[Result]) -> list[str]:
    datasets = dict.fromkeys(r["dataset"] for r in results)
    lines = ["## Data", ""]
    lines += [f"- **{name}**: {DATA_NOTES.get(name, 'user data')}" for name in datasets]
    return [*lines, ""]


def write_report(results: Sequence[Result], out_dir: Path, command: str) -> Path:
    """Write ``README.md``, the PNG plots and ``results.json`` (with every prediction) in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    models = sorted({r["model"] for r in results})
    lines = [
        f"# Evaluation report: `{', '.join(models)}`",
        "",
        f"Generated by `{command}`. Every prediction is kept in [results.json](results.json).",
        "",
    ]
    lines += _paper_section(results)
    lines += _data_section(results)
    if any(r["task"] in CLASSIFICATION_TASKS for r in results):
        lines += _classification_section(results, out_dir)
    if _by_task(results, "retrieval"):
        lines += _retrieval_section(_by_task(results, "retrieval"), out_dir)
    if _by_task(results, "counting"):
        lines += _counting_section(_by_task(results, "counting"), out_dir)
    (out_dir / "results.json").write_text(json.dumps(list(results), indent=1))
    path = out_dir / "README.md"
    path.write_text("\n".join(lines))
    return path
