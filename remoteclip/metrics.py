"""Evaluation metrics and probes on embedding arrays, as in the RemoteCLIP paper.

Everything here takes numpy arrays (never models or images) and returns numbers or arrays:

- classification: :func:`topk_accuracy`, :func:`confusion_matrix`;
- image-text retrieval: :func:`retrieval_recall` (R@k both directions, several captions per image, and the mean
  recall ``mR`` of the six figures, all in 0..100);
- probes on frozen features: :func:`knn_scores` (k = 20, T = 0.07, similarity-weighted votes),
  :func:`linear_probe` (scikit-learn logistic regression, ``C`` chosen on a validation split),
  :func:`few_shot_indices` (k shots per class);
- counting: :func:`topk_accuracy` on the caption scores of 1..10 objects, and :func:`mean_absolute_error`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from remoteclip.errors import InputError

#: inverse regularisation strengths tried by :func:`linear_probe` (CLIP's protocol sweeps a log scale)
DEFAULT_CS: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
RETRIEVAL_KS: tuple[int, ...] = (1, 5, 10)


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


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


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """``(C, C)`` int64 counts: row = true class, column = predicted class."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    _check_rows("preds", preds, len(labels))
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (labels, preds), 1)
    return matrix


def retrieval_recall(
    image_emb: np.ndarray,
    text_emb: np.ndarray,
    text_image: np.ndarray,
    ks: Sequence[int] = RETRIEVAL_KS,
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Image-to-text and text-to-image recall@k and their mean ``mR``, in 0..100 as the paper reports them.

    An image counts as retrieved at ``k`` when any of its captions is among the ``k`` texts most similar to it; a
    caption when its own image is among the ``k`` images most similar to it. Similarities are cosine (rows are
    L2-normalised here), computed ``chunk_size`` rows at a time so memory stays ``O(chunk_size * max(N, T))``.
    Ties are counted in the query's favour.

    Args:
        image_emb: ``(N, D)`` image embeddings.
        text_emb: ``(T, D)`` caption embeddings.
        text_image: ``(T,)`` index into ``image_emb`` of each caption's image.
        ks: the recall cut-offs.
        chunk_size: rows of the similarity matrix computed at once.

    Returns:
        ``{"i2t_R@1": …, "t2i_R@1": …, …, "mR": …}``.
    """
    images = _l2_normalise(image_emb)
    texts = _l2_normalise(text_emb)
    text_image = np.asarray(text_image, dtype=np.int64)
    _check_rows("text_image", text_image, len(texts))
    if len(images) == 0 or len(texts) == 0:
        raise InputError("retrieval needs at least one image and one caption")
    if text_image.min() < 0 or text_image.max() >= len(images):
        raise InputError(f"text_image must index 0..{len(images) - 1}, got {text_image.min()}..{text_image.max()}")

    image_ranks = np.empty(len(images), dtype=np.int64)  # rank of each image's best caption
    for start in range(0, len(images), chunk_size):
        sims = images[start : start + chunk_size] @ texts.T
        rows = np.arange(start, start + len(sims))
        own = text_image[None, :] == rows[:, None]
        best_own = np.where(own, sims, -np.inf).max(axis=1)
        image_ranks[start : start + len(sims)] = (sims > best_own[:, None]).sum(axis=1)

    text_ranks = np.empty(len(texts), dtype=np.int64)  # rank of each caption's image
    for start in range(0, len(texts), chunk_size):
        sims = texts[start : start + chunk_size] @ images.T
        own = sims[np.arange(len(sims)), text_image[start : start + len(sims)]]
        text_ranks[start : start + len(sims)] = (sims > own[:, None]).sum(axis=1)

    result: dict[str, float] = {}
    for k in ks:
        result[f"i2t_R@{k}"] = 100.0 * float((image_ranks < k).mean())
    for k in ks:
        result[f"t2i_R@{k}"] = 100.0 * float((text_ranks < k).mean())
    result["mR"] = float(np.mean(list(result.values())))
    return result


def knn_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk_size: int = 1024,
) -> np.ndarray:
    """Weighted k-NN class scores ``(N_test, C)``: each of the ``k`` nearest neighbours votes ``exp(sim / T)``.

    Scores are normalised to sum to 1 per row; ``argmax`` gives the prediction.
    """
    train = _l2_normalise(train_x)
    test = _l2_normalise(test_x)
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
    val_top1: float  # validation accuracy at the chosen C


def linear_probe(
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    n_classes: int,
    Cs: Sequence[float] = DEFAULT_CS,
    max_iter: int = 1000,
) -> ProbeResult:
    """Logistic regression on frozen features: pick ``C`` on the validation split, refit on train + val.

    Features are L2-normalised. Classes missing from the training data get probability 0.
    """
    from sklearn.linear_model import LogisticRegression

    train_y = np.asarray(train_y, dtype=np.int64)
    val_y = np.asarray(val_y, dtype=np.int64)
    if len(np.unique(train_y)) < 2:
        raise InputError("a linear probe needs training samples of at least two classes")
    train, val, test = _l2_normalise(train_x), _l2_normalise(val_x), _l2_normalise(test_x)

    def fit(x: np.ndarray, y: np.ndarray, c: float) -> LogisticRegression:
        return LogisticRegression(C=c, max_iter=max_iter).fit(x, y)

    best_c, best_acc = Cs[0], -1.0
    if len(val):
        for c in Cs:
            acc = float((fit(train, train_y, c).predict(val) == val_y).mean())
            if acc > best_acc:
                best_c, best_acc = c, acc
    final = fit(np.concatenate([train, val]), np.concatenate([train_y, val_y]), best_c)
    probs = np.zeros((len(test), n_classes), dtype=np.float64)
    probs[:, final.classes_] = final.predict_proba(test)
    return ProbeResult(probs=probs, C=float(best_c), val_top1=max(best_acc, 0.0))


def few_shot_indices(labels: np.ndarray, shots: int, seed: int) -> np.ndarray:
    """Indices of ``shots`` samples per class drawn without replacement (all of a class if it has fewer)."""
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng(seed)
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=min(shots, int((labels == c).sum())), replace=False)
        for c in np.unique(labels)
    ]
    return np.sort(np.concatenate(picked))


def mean_absolute_error(true: np.ndarray, pred: np.ndarray) -> float:
    """Mean of ``|true - pred|``."""
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    _check_rows("pred", pred, len(true))
    if len(true) == 0:
        raise InputError("no counts to compare: the count set is empty")
    return float(np.abs(true - pred).mean())
