"""Evaluation runner: dataset -> embeddings (:mod:`remoteclip.encode`) -> metrics (:mod:`pipelines.evaluation.metrics`).

Each ``evaluate_*`` function returns a JSON-ready result dict
``{"task", "model", "dataset", "n", "metrics": {...}, "predictions": [...]}`` that keeps every prediction, so
a result can be audited:

- classification tasks (zero-shot, linear probe, k-NN, few-shot): ``metrics.top1`` in 0..1 and one
  ``{"path", "label", "pred", "score"}`` per test image (few-shot: those of the first seed at the most shots);
- retrieval: ``metrics.mR`` and R@1/5/10 both ways in 0..100, one ``{"path", "captions", "i2t_rank",
  "t2i_ranks"}`` per image (0-based ranks of the right answers);
- counting: RemoteCount top-1..top-10 accuracy on chips with 1..10 objects and the mean absolute error of area
  counts, one ``{"path", "true", "pred", "chips"}`` per image.

Protocols follow the RemoteCLIP paper: zero-shot with "a satellite photo of {}."; linear probe = logistic
regression on frozen features with ``C`` chosen on a validation split; k-NN with k = 20, T = 0.07; few-shot =
the linear probe on 1..32 shots per class over several seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from pipelines.evaluation import metrics
from pipelines.evaluation.count_sets import COUNT_SPLITS, CountSet, read_count_set
from pipelines.evaluation.readers import (
    CAPTION_SPLITS,
    CLASSIFICATION_SPLITS,
    CaptionSet,
    ClassificationSet,
    LabelledImages,
    limit_per_class,
    read_captions,
    read_classification,
    validation_split,
)
from pipelines.services.locate import locate_objects, object_query
from remoteclip import counting, zeroshot
from remoteclip.encode import encode_images, encode_texts
from remoteclip.errors import ExplorerError, InputError
from remoteclip.factory import LoadedModel
from remoteclip.locator import ObjectLocator, load_locator
from remoteclip.prompts import MAX_COUNT, PAPER_TEMPLATE
from tiles.errors import RasterReadError

#: the tasks that classify images of class folders
CLASSIFICATION_TASKS: tuple[str, ...] = ("zero-shot", "linear-probe", "knn", "few-shot")
TASKS: tuple[str, ...] = (*CLASSIFICATION_TASKS, "retrieval", "counting")
FEW_SHOTS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
FEW_SHOT_SEEDS: tuple[int, ...] = (0, 1, 2, 3, 4)
KNN_K = 20
KNN_TEMPERATURE = 0.07


def shipped_locator(model: LoadedModel) -> ObjectLocator | None:
    """The object locator shipped for ``model``, or None when it has none (counting then scores RemoteCount)."""
    try:
        return load_locator(model)
    except ExplorerError:
        return None


def _open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except OSError as exc:
        raise RasterReadError(f"cannot read image {path}: {exc}; convert it to JPEG/PNG/8-bit TIFF") from exc


class ImageEmbedder:
    """Embeds image files in batches, each file once per run (``evaluate all`` shares one across tasks)."""

    def __init__(self, model: LoadedModel, batch_size: int = 64) -> None:
        self.model = model
        self.batch_size = batch_size
        self._cache: dict[Path, np.ndarray] = {}

    def __call__(self, paths: Sequence[Path], desc: str = "embedding images") -> np.ndarray:
        """``(N, D)`` L2-normalised embeddings of ``paths``."""
        missing = list(dict.fromkeys(p for p in paths if p not in self._cache))
        with tqdm(total=len(missing), desc=desc, unit="img", disable=not missing, leave=False) as bar:
            for start in range(0, len(missing), self.batch_size):
                batch = missing[start : start + self.batch_size]
                vectors = encode_images(self.model, [_open_rgb(p) for p in batch], batch_size=self.batch_size)
                self._cache.update(zip(batch, vectors, strict=True))
                bar.update(len(batch))
        if not paths:
            return np.zeros((0, self.model.embed_dim), dtype=np.float32)
        return np.stack([self._cache[p] for p in paths])


def _result(
    task: str,
    model: LoadedModel,
    dataset: str,
    n: int,
    metrics_: dict[str, Any],
    predictions: list[dict[str, Any]],
) -> dict[str, Any]:
    return {
        "task": task,
        "model": model.model_id,
        "dataset": dataset,
        "n": n,
        "metrics": metrics_,
        "predictions": predictions,
    }


def _classification_outcome(
    scores: np.ndarray, images: LabelledImages, classes: Sequence[str]
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Top-1/top-5 accuracy, mean per-class accuracy and one prediction row per image."""
    ks = (1, 5) if len(classes) > 5 else (1,)
    topk = metrics.topk_accuracy(scores, images.labels, ks)
    preds = scores.argmax(axis=1)
    matrix = metrics.confusion_matrix(images.labels, preds, len(classes))
    present = matrix.sum(axis=1) > 0
    per_class = float((np.diag(matrix)[present] / matrix.sum(axis=1)[present]).mean())
    result = {f"top{k}": v for k, v in topk.items()} | {"mean_per_class": per_class}
    rows = [
        {"path": str(path), "label": classes[label], "pred": classes[pred], "score": float(row[pred])}
        for path, label, pred, row in zip(images.paths, images.labels, preds, scores, strict=True)
    ]
    return result, rows


def evaluate_zero_shot(
    model: LoadedModel,
    data: ClassificationSet,
    embed: ImageEmbedder | None = None,
    templates: Sequence[str] = (PAPER_TEMPLATE,),
) -> dict[str, Any]:
    """Zero-shot top-1: class prompts "a satellite photo of {}." against the images; and the same prompts as
    search queries over the images (precision@10 per class, averaged)."""
    embed = embed or ImageEmbedder(model)
    images = data.zero_shot_images()
    classifier = zeroshot.build_classifier(model, data.classes, templates)
    embeddings = embed(images.paths, "zero-shot")
    probs = zeroshot.class_probabilities(embeddings, classifier, model.logit_scale)
    scores, rows = _classification_outcome(probs, images, data.classes)
    search = {"search_precision_at_10": metrics.class_precision_at_k(embeddings @ classifier.T, images.labels, 10)}
    return _result(
        "zero-shot", model, data.name, len(images.paths), scores | search | {"templates": list(templates)}, rows
    )


def evaluate_linear_probe(
    model: LoadedModel, data: ClassificationSet, embed: ImageEmbedder | None = None
) -> dict[str, Any]:
    """Logistic regression on frozen features; ``C`` chosen on a validation part of the training images."""
    embed = embed or ImageEmbedder(model)
    fit, val = validation_split(data.train, data.name)
    probe = metrics.linear_probe(
        embed(fit.paths, "training images"),
        fit.labels,
        embed(val.paths, "validation images"),
        val.labels,
        embed(data.test.paths, "test images"),
        len(data.classes),
    )
    scores, rows = _classification_outcome(probe.probs, data.test, data.classes)
    extra = {"C": probe.C, "val_top1": probe.val_top1, "n_train": len(fit.paths) + len(val.paths)}
    return _result("linear-probe", model, data.name, len(data.test.paths), scores | extra, rows)


def evaluate_knn(
    model: LoadedModel,
    data: ClassificationSet,
    embed: ImageEmbedder | None = None,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
) -> dict[str, Any]:
    """Weighted k-NN (k = 20, T = 0.07) of test images among the training images."""
    embed = embed or ImageEmbedder(model)
    train_x, test_x = embed(data.train.paths, "training images"), embed(data.test.paths, "test images")
    knn = metrics.knn_scores(
        train_x, data.train.labels, test_x, len(data.classes), k=k, temperature=temperature
    )
    scores, rows = _classification_outcome(knn, data.test, data.classes)
    extra = {"k": k, "temperature": temperature, "n_train": len(data.train.paths)}
    return _result("knn", model, data.name, len(data.test.paths), scores | extra, rows)


def evaluate_few_shot(
    model: LoadedModel,
    data: ClassificationSet,
    embed: ImageEmbedder | None = None,
    shots: Sequence[int] = FEW_SHOTS,
    seeds: Sequence[int] = FEW_SHOT_SEEDS,
) -> dict[str, Any]:
    """Linear probes on ``shots`` images per class, several seeds; the other training images choose ``C``.

    ``metrics.curve`` maps shots to the mean and standard deviation of top-1 over seeds; ``metrics.top1`` is
    the mean at the most shots, and the predictions are those of the first seed there.
    """
    embed = embed or ImageEmbedder(model)
    train_x, test_x = embed(data.train.paths, "training images"), embed(data.test.paths, "test images")
    curve: dict[str, dict[str, float]] = {}
    rows: list[dict[str, Any]] = []
    for n_shots in shots:
        top1s = []
        for seed in seeds:
            picked = metrics.few_shot_indices(data.train.labels, n_shots, seed)
            rest = np.setdiff1d(np.arange(len(data.train.paths)), picked)
            probe = metrics.linear_probe(
                train_x[picked],
                data.train.labels[picked],
                train_x[rest],
                data.train.labels[rest],
                test_x,
                len(data.classes),
                refit=False,
            )
            outcome, seed_rows = _classification_outcome(probe.probs, data.test, data.classes)
            top1s.append(outcome["top1"])
            if seed == seeds[0]:
                rows = seed_rows
        curve[str(n_shots)] = {"mean": float(np.mean(top1s)), "std": float(np.std(top1s))}
    extra = {"curve": curve, "seeds": list(seeds)}
    return _result(
        "few-shot",
        model,
        data.name,
        len(data.test.paths),
        {"top1": curve[str(shots[-1])]["mean"]} | extra,
        rows,
    )


def evaluate_retrieval(
    model: LoadedModel, data: CaptionSet, embed: ImageEmbedder | None = None
) -> dict[str, Any]:
    """Image-to-text and text-to-image R@1/5/10 and their mean ``mR`` (0..100)."""
    embed = embed or ImageEmbedder(model)
    image_x = embed(data.images, "retrieval images")
    text_x = encode_texts(model, list(data.captions))
    image_ranks, text_ranks = metrics.retrieval_ranks(image_x, text_x, data.caption_image)
    rows = [
        {
            "path": str(path),
            "captions": [data.captions[t] for t in np.flatnonzero(data.caption_image == i)],
            "i2t_rank": int(image_ranks[i]),
            "t2i_ranks": text_ranks[data.caption_image == i].tolist(),
        }
        for i, path in enumerate(data.images)
    ]
    scores = metrics.recall_at_k(image_ranks, text_ranks) | {"n_captions": len(data.captions)}
    return _result("retrieval", model, data.name, len(data.images), scores, rows)


def evaluate_counting(model: LoadedModel, data: CountSet, locator: ObjectLocator | None = None) -> dict[str, Any]:
    """RemoteCount top-1..top-10 on chips with 1..10 objects and its per-image errors; the locator's beside it.

    Per image, both methods are scored by MAE, RMSE and relative error (``|pred - true| / max(true, 1)``):
    RemoteCount sums its chip counts, the locator counts the objects it finds in the whole image
    (:func:`pipelines.services.locate.locate_objects`, at its held-out threshold).
    """
    text_x = counting.build_count_captions(model, data.object_name)
    query = object_query(model, locator, data.object_name) if locator is not None else None
    chip_true, chip_scores, rows = [], [], []
    for image in tqdm(data.images, desc=f"counting {data.object_name}", unit="img", leave=False):
        rgb = _open_rgb(image.path)
        crops = [
            rgb.crop((c.col_off, c.row_off, c.col_off + c.side_px, c.row_off + c.side_px))
            for c in image.chips
        ]
        estimate = counting.estimate_counts(encode_images(model, crops), text_x, model.logit_scale)
        chip_rows = []
        for chip, est in zip(image.chips, estimate, strict=True):
            chip_rows.append(
                {
                    "window": [chip.col_off, chip.row_off, chip.side_px, chip.side_px],
                    "true": chip.true,
                    "pred": int(est.count),
                }
            )
            if chip.in_remotecount_range:
                chip_true.append(chip.true)
                chip_scores.append(est.scores_1_to_10)
        area_count = counting.aggregate_counts([r["pred"] for r in chip_rows])
        row = {"path": str(image.path), "true": image.true, "pred": int(area_count), "chips": chip_rows}
        if locator is not None and query is not None:
            row["locator_pred"] = locate_objects(model, locator, image.path, query).total
        rows.append(row)
    topk = (
        metrics.topk_accuracy(np.array(chip_scores), np.array(chip_true) - 1, range(1, MAX_COUNT + 1))
        if chip_true
        else {}
    )
    true = np.array([r["true"] for r in rows])
    scores = {f"top{k}": v for k, v in topk.items()} | {
        "n_chips": len(chip_true),
        "area_mae": metrics.mean_absolute_error(true, np.array([r["pred"] for r in rows])),
        "area_rmse": metrics.root_mean_squared_error(true, np.array([r["pred"] for r in rows])),
        "area_relative_error": metrics.mean_relative_error(true, np.array([r["pred"] for r in rows])),
        "object": data.object_name,
    }
    if query is not None:
        found = np.array([r["locator_pred"] for r in rows])
        scores |= {
            "locator_mae": metrics.mean_absolute_error(true, found),
            "locator_rmse": metrics.root_mean_squared_error(true, found),
            "locator_relative_error": metrics.mean_relative_error(true, found),
            "locator_threshold": query.threshold,
        }
    return _result("counting", model, data.name, len(rows), scores, rows)


#: what a task reads: class folders, captions or a counting set
EvalData = ClassificationSet | CaptionSet | CountSet
CLASSIFICATION_RUNNERS = {
    "zero-shot": evaluate_zero_shot,
    "linear-probe": evaluate_linear_probe,
    "knn": evaluate_knn,
    "few-shot": evaluate_few_shot,
}


#: task -> the shared datasets whose fixed split it can be asked for (``split=``, ``evaluate --split``)
TASK_SPLITS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(CLASSIFICATION_TASKS, CLASSIFICATION_SPLITS),
    "retrieval": CAPTION_SPLITS,
    "counting": COUNT_SPLITS,
}


def read_task_data(
    task: str,
    data: Path,
    object_name: str | None = None,
    chip_px: int | None = None,
    split: str | None = None,
) -> EvalData:
    """Read ``data`` in the format ``task`` needs (before loading a model, so bad data fails fast).

    ``split`` names the shared dataset (:data:`TASK_SPLITS`) whose fixed held-out split to evaluate on;
    ``None`` evaluates the data as given (zero-shot, retrieval and counting: every image, unless the data's
    own folders split it). A folder named like a shared dataset gets its split only when asked for.
    """
    if task == "retrieval":
        return read_captions(data, split)
    if task == "counting":
        return read_count_set(data, object_name, chip_px, split)
    if task in CLASSIFICATION_RUNNERS:
        return read_classification(data, split)
    raise InputError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")


def run_task(
    model: LoadedModel, task: str, dataset: EvalData, embed: ImageEmbedder | None = None
) -> dict[str, Any]:
    """Evaluate ``dataset`` as read by :func:`read_task_data` for the same ``task`` (CLI and suite alike)."""
    embed = embed or ImageEmbedder(model)
    if isinstance(dataset, CaptionSet):
        return evaluate_retrieval(model, dataset, embed)
    if isinstance(dataset, CountSet):
        return evaluate_counting(model, dataset, shipped_locator(model))
    if task not in CLASSIFICATION_RUNNERS:
        raise InputError(
            f"task {task!r} needs its data read by read_task_data({task!r}, …), not class folders"
        )
    return CLASSIFICATION_RUNNERS[task](model, dataset, embed)


@dataclass(frozen=True)
class SuiteItem:
    """One evaluation of the default suite: a task on a dataset folder relative to the data root.

    ``split``: the shared dataset whose fixed held-out split to evaluate on (see :func:`read_task_data`).
    """

    task: str
    data: str
    object_name: str | None = None
    chip_px: int | None = None
    split: str | None = None
    #: "data": ``data`` is under the shared data root; "sources": under ``--source-dir`` (datasets never trained on)
    root: str = "data"
    #: zero-shot on at most this many images per class (chosen by hash), for large sets
    per_class: int | None = None


#: the held-out sets of ../shared/data behind the model card's figures (``evaluate all``)
DEFAULT_SUITE: tuple[SuiteItem, ...] = (
    *(
        SuiteItem(task, dataset, split=dataset)
        for dataset in ("rsscn7", "ucm-captions")
        for task in CLASSIFICATION_TASKS
    ),
    SuiteItem("retrieval", "ucm-captions", split="ucm-captions"),
    SuiteItem("counting", "airbus-aircraft", "airplane", chip_px=512, split="airbus-aircraft"),
    SuiteItem("counting", "ships-google-earth", "boat", split="ships-google-earth"),
    SuiteItem("counting", "dota/dota_devkit", "ship", chip_px=160),
    # a class the object locator never trained on (see pipelines.training.locator.OBJECT_CLASSES)
    SuiteItem("counting", "dota/dota_devkit", "large vehicle", chip_px=160),
    # whole datasets kept out of training (pipelines.datasets.splits.HELD_OUT_SOURCES), with --source-dir
    SuiteItem("zero-shot", "satellite-image-classification-4class", root="sources"),
    SuiteItem("zero-shot", "hurricane-harvey-damage", root="sources", per_class=1000),
)


def read_suite(data_root: Path, suite: Sequence[SuiteItem] = DEFAULT_SUITE,
               source_root: Path | None = None) -> list[tuple[str, EvalData]]:
    """``(task, dataset)`` for each item of ``suite``, read up front so a missing folder fails at once.

    The suite evaluates the held-out sets of ``data_root`` (each item names its split explicitly) and, given a
    ``source_root``, the whole datasets there that training never read; without one those items are left out.
    """
    jobs: list[tuple[str, EvalData]] = []
    for item in suite:
        if item.root == "sources" and source_root is None:
            continue
        root = source_root if item.root == "sources" and source_root is not None else data_root
        data = read_task_data(item.task, root / item.data, item.object_name, item.chip_px, item.split)
        if item.per_class is not None and isinstance(data, ClassificationSet):
            data = limit_per_class(data, item.per_class)
        jobs.append((item.task, data))
    return jobs


def run_suite(model: LoadedModel, jobs: Sequence[tuple[str, EvalData]]) -> list[dict[str, Any]]:
    """Every ``(task, dataset)`` of :func:`read_suite` with one shared image-embedding cache."""
    embed = ImageEmbedder(model)
    return [
        run_task(model, task, dataset, embed) for task, dataset in tqdm(jobs, desc="evaluations", unit="task")
    ]
