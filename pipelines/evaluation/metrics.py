"""Evaluation metrics and probes on embedding arrays, as in the RemoteCLIP paper.

Everything here takes numpy arrays (never models or images) and returns numbers or arrays:

- classification: :func:`topk_accuracy`, :func:`confusion_matrix`;
- image-text retrieval: :func:`retrieval_ranks` then :func:`recall_at_k`, or both in :func:`retrieval_recall`
  (R@k both directions, several captions per image, and the mean recall ``mR`` of the six figures, in 0..100);
- probes on frozen features: :func:`knn_scores` (k = 20, T = 0.07, similarity-weighted votes),
  :func:`linear_probe` (scikit-learn logistic regression, ``C`` chosen on a validation split),
  :func:`few_shot_indices` (k shots per class);
- counting: :func:`topk_accuracy` on the caption scores of 1..10 objects, and :func:`mean_absolute_error`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from remoteclip.errors import InputError
from remoteclip.vectors import l2_normalize

#: inverse regularisation strengths tried by :func:`linear_probe` (CLIP's protocol sweeps a log scale)
DEFAULT_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10)


def _check_rows(name: str, a: np.ndarray, n: int) -> None:
    if len(a) != n:
        raise InputError(f"{name} has {len(a)} rows but {n} were expected; pass one row per sample")


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Iterable[int] = (1,)) -> dict[int, float]:
    """Fraction of rows whose true label is among the ``k`` highest scores, for each ``k`` (0..1).

    Args:
        scores: ``(N, C)`` scores or probabilities, higher is better.
        labels: ``(N,)`` true class indices in ``0..C-1``.
        ks: the ``k`` values wanted.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels, dtype=np.int64)
    _check_rows("labels", labels, len(scores))
    if len(scores) == 0:
        raise InputError("no samples to score: the dataset is empty")
    true_scores = scores[np.arange(len(scores)), labels]
    # rank of the true label = how many classes score strictly higher (ties count in the label's favour)
    ranks = (scores > true_scores[:, None]).sum(axis=1)
    return {int(k): float((ranks < k).mean()) for k in ks}


def class_precision_at_k(similarity: np.ndarray, labels: np.ndarray, k: int = 10) -> float:
    """Text-to-image search precision@k: ranking every image by its similarity to each class's query
    (``similarity`` is images x classes), the share of the top ``k`` that belong to the class, averaged over the
    classes that have at least ``k`` images."""
    _check_rows("labels", labels, similarity.shape[0])
    precisions = []
    for cls in range(similarity.shape[1]):
        if int((labels == cls).sum()) >= k:
            top = np.argsort(-similarity[:, cls], kind="stable")[:k]
            precisions.append(float((labels[top] == cls).mean()))
    return float(np.mean(precisions)) if precisions else float("nan")


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    _check_rows("preds", preds, len(labels))
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def retrieval_ranks(
    image_emb: np.ndarray, text_emb: np.ndarray, text_image: np.ndarray, chunk_size: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """0-based ranks of the right answers in image-to-text and text-to-image retrieval.

    An image's rank is that of its best-ranked caption among all captions; a caption's rank is that of its own
    image among all images (ties count in the query's favour). Similarities are cosine (rows are L2-normalised
    here), computed ``chunk_size`` rows at a time so memory stays ``O(chunk_size * max(N, T))``.

    Args:
        image_emb: ``(N, D)`` image embeddings.
        text_emb: ``(T, D)`` caption embeddings.
        text_image: ``(T,)`` index into ``image_emb`` of each caption's image.
        chunk_size: rows of the similarity matrix computed at once.

    Returns:
        ``(image_ranks (N,), text_ranks (T,))``.
    """
    images = l2_normalize(image_emb)
    texts = l2_normalize(text_emb)
    text_image = np.asarray(text_image, dtype=np.int64)
    _check_rows("text_image", text_image, len(texts))
    if len(images) == 0 or len(texts) == 0:
        raise InputError("retrieval needs at least one image and one caption")
    if text_image.min() < 0 or text_image.max() >= len(images):
        raise InputError(
            f"text_image must index 0..{len(images) - 1}, got {text_image.min()}..{text_image.max()}"
        )

    image_ranks = np.empty(len(images), dtype=np.int64)
    for start in range(0, len(images), chunk_size):
        sims = images[start : start + chunk_size] @ texts.T
        rows = np.arange(start, start + len(sims))
        best_own = np.where(text_image[None, :] == rows[:, None], sims, -np.inf).max(axis=1)
        image_ranks[start : start + len(sims)] = (sims > best_own[:, None]).sum(axis=1)

    text_ranks = np.empty(len(texts), dtype=np.int64)
    for start in range(0, len(texts), chunk_size):
        sims = texts[start : start + chunk_size] @ images.T
        own = sims[np.arange(len(sims)), text_image[start : start + len(sims)]]
        text_ranks[start : start + len(sims)] = (sims > own[:, None]).sum(axis=1)
    return image_ranks, text_ranks


def recall_at_k(
    image_ranks: np.ndarray, text_ranks: np.ndarray, ks: Sequence[int] = RETRIEVAL_KS
) -> dict[str, float]:
    """R@k in both directions from :func:`retrieval_ranks`, and their mean ``mR``, in 0..100 as the paper.

    Returns:
        ``{"i2t_R@1": …, …, "t2i_R@1": …, …, "mR": …}``.
    """
    result = {f"i2t_R@{k}": 100.0 * float((np.asarray(image_ranks) < k).mean()) for k in ks}
    result |= {f"t2i_R@{k}": 100.0 * float((np.asarray(text_ranks) < k).mean()) for k in ks}
    result["mR"] = float(np.mean(list(result.values())))
    return result


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_image: np.ndarray,
    ks: Sequence[int] = RETRIEVAL_KS,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """R@k both ways and ``mR`` (0..100) for captions whose images are ``text_image``; see the two above."""
    return recall_at_k(*retrieval_ranks(image_emb, text_emb, text_image, chunk_size), ks)


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Weighted k-NN class scores ``(N_test, C)``: each of the ``k`` nearest neighbours votes ``exp(sim/T)``.

    Scores are normalised to sum to 1 per row; ``argmax`` gives the prediction.
    """
    train = l2_normalize(train_x)
    test = l2_normalize(test_x)
    train_y = np.asarray(train_y, dtype=np.int64)
    _check_rows("train_y", train_y, len(train))
    if len(train) == 0:
        raise InputError("k-NN needs at least one training sample")
    k = min(k, len(train))
    out = np.zeros((len(test), n_classes), dtype=np.float64)
    for start in range(0, len(test), chunk_size):
        sims = test[start : start + chunk_size] @ train.T
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(sims, nearest, axis=1).astype(np.float64) / temperature)
        rows = np.repeat(np.arange(len(sims)), k)
        np.add.at(out[start : start + len(sims)], (rows, train_y[nearest].ravel()), weights.ravel())
    return out / out.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class ProbeResult:
    """Test-set class probabilities of a linear probe and the regularisation it chose."""

    probs: np.ndarray  # (N_test, C)
    C: float
    val_top1: float | None  # validation accuracy at the chosen C (None without validation images)


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    Cs: Sequence[float] = DEFAULT_CS,
    refit: bool = True,
    max_iter: int = 1000,
) -> ProbeResult:
    """Logistic regression on frozen features: pick ``C`` on the validation split, then refit on train + val.

    Ties in validation accuracy go to the first (most regularised) ``C`` of ``Cs``.

    Features are L2-normalised. Classes missing from the training data get probability 0. ``refit=False``
    keeps the final fit on the training part only (few-shot: the validation images only choose ``C``).
    """
    from sklearn.linear_model import LogisticRegression

    train_y = np.asarray(train_y, dtype=np.int64)
    val_y = np.asarray(val_y, dtype=np.int64)
    if len(np.unique(train_y)) < 2:
        raise InputError("a linear probe needs training samples of at least two classes")
    train, val, test = l2_normalize(train_x), l2_normalize(val_x), l2_normalize(test_x)

    def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
        with warnings.catch_warnings():
            # one or two shots per class look like regression targets to scikit-learn; they are classes
            warnings.filterwarnings("ignore", message="The number of unique classes", category=UserWarning)
            return LogisticRegression(C=c, max_iter=max_iter).fit(x, y)

    best_c, best_acc = 1.0, None  # scikit-learn's default when there is nothing to choose on
    if len(val):
        for c in Cs:
            acc = float((fit(train, train_y, c).predict(val) == val_y).mean())
            if best_acc is None or acc > best_acc:
                best_c, best_acc = c, acc
    if refit and len(val):
        train, train_y = np.concatenate([train, val]), np.concatenate([train_y, val_y])
    final = fit(train, train_y, best_c)
    probs = np.zeros((len(test), n_classes), dtype=np.float64)
    probs[:, final.classes_] = final.predict_proba(test)
    return ProbeResult(probs=probs, C=float(best_c), val_top1=best_acc)


def few_shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of ``shots`` samples per class drawn without replacement (all of a class if it has fewer)."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=min(shots, int((labels == c).sum())), replace=False)
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked))


def _count_errors(true: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(true, pred - true)`` as float arrays, checked to be non-empty and of one length."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    _check_rows("pred", pred, len(true))
    if len(true) == 0:
        raise InputError("no counts to compare: the count set is empty")
    return true, pred - true


def mean_absolute_error(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean of ``|true - pred|``."""
    return float(np.abs(_count_errors(true, pred)[1]).mean())


def root_mean_squared_error(true: np.ndarray, pred: np.ndarray) -> float:
    """Square root of the mean of ``(true - pred)²``."""
    return float(np.sqrt((_count_errors(true, pred)[1] ** 2).mean()))


def mean_relative_error(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean of ``|true - pred| / max(true, 1)`` (an image with no object counts its error as is)."""
    true, error = _count_errors(true, pred)
    return float((np.abs(error) / np.maximum(true, 1.0)).mean())


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins (0..1)."""
    _check_rows("labels", labels, len(probabilities))
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    gap = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            gap += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(gap)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-probability of the true labels."""
    _check_rows("labels", labels, len(probabilities))
    return float(-np.mean(np.log(np.maximum(probabilities[np.arange(len(labels)), labels], 1e-12))))
