"""Each metric against an independent computation on small cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, top_k_accuracy_score
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from pipelines.evaluation import metrics
from remoteclip.errors import InputError


def _naive_recall(
    images: np.ndarray, texts: np.ndarray, text_image: np.ndarray, k: int
) -> tuple[float, float]:
    """Full-matrix R@k by sorting every row (the definition, no shortcuts)."""
    images = images / np.linalg.norm(images, axis=1, keepdims=True)
    texts = texts / np.linalg.norm(texts, axis=1, keepdims=True)
    sims = images @ texts.T
    i2t = [
        bool(set(np.argsort(-sims[i])[:k]) & set(np.flatnonzero(text_image == i))) for i in range(len(images))
    ]
    t2i = [text_image[t] in np.argsort(-sims[:, t])[:k] for t in range(len(texts))]
    return 100 * float(np.mean(i2t)), 100 * float(np.mean(t2i))


def test_topk_accuracy_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(200, 7))
    labels = rng.integers(0, 7, size=200)
    got = metrics.topk_accuracy(scores, labels, ks=(1, 3, 5))
    assert got[1] == pytest.approx(accuracy_score(labels, scores.argmax(1)))
    for k in (3, 5):
        assert got[k] == pytest.approx(top_k_accuracy_score(labels, scores, k=k, labels=range(7)))


def test_topk_accuracy_known_answer() -> None:
    scores = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3]])
    labels = np.array([0, 0, 2])  # ranks 0, 2, 1
    assert metrics.topk_accuracy(scores, labels, ks=(1, 2, 3)) == {1: 1 / 3, 2: 2 / 3, 3: 1.0}


def test_confusion_matrix_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    labels, preds = rng.integers(0, 5, 100), rng.integers(0, 5, 100)
    np.testing.assert_array_equal(
        metrics.confusion_matrix(labels, preds, 5), sk_confusion_matrix(labels, preds, labels=range(5))
    )


def test_retrieval_recall_hand_made() -> None:
    # three images on the axes; captions 0,1 belong to image 0, caption 2 to image 1, caption 3 to image 2
    images = np.eye(3)
    texts = np.array(
        [
            [1.0, 0.1, 0.0],  # image 0's caption: image 0 nearest
            [0.0, 1.0, 0.2],  # image 0's caption: images 1, 2 nearer, image 0 third
            [0.0, 0.2, 1.0],  # image 1's caption: image 2 nearer, image 1 second
            [0.1, 0.0, 1.0],  # image 2's caption: image 2 nearest
        ]
    )
    text_image = np.array([0, 0, 1, 2])
    got = metrics.retrieval_recall(images, texts, text_image, ks=(1, 2, 3))
    assert (got["t2i_R@1"], got["t2i_R@2"], got["t2i_R@3"]) == pytest.approx((50.0, 75.0, 100.0))
    # image 0's best text is its caption 0; image 1's own caption 2 (0.196) is beaten by caption 1 (0.98)
    assert (got["i2t_R@1"], got["i2t_R@2"]) == pytest.approx((200 / 3, 100.0))
    assert got["mR"] == pytest.approx(np.mean([got[k] for k in got if k != "mR"]))
    image_ranks, text_ranks = metrics.retrieval_ranks(images, texts, text_image)
    assert image_ranks.tolist() == [0, 1, 0] and text_ranks.tolist() == [0, 2, 1, 0]


@pytest.mark.parametrize("chunk_size", [1, 7, 1000])
def test_chunked_recall_matches_naive(chunk_size: int) -> None:
    rng = np.random.default_rng(2)
    images = rng.normal(size=(40, 16))
    text_image = np.repeat(np.arange(40), 5)  # five captions per image, as UCM-captions
    texts = images[text_image] + 1.5 * rng.normal(size=(200, 16))
    got = metrics.retrieval_recall(images, texts, text_image, ks=(1, 5, 10), chunk_size=chunk_size)
    for k in (1, 5, 10):
        i2t, t2i = _naive_recall(images, texts, text_image, k)
        assert got[f"i2t_R@{k}"] == pytest.approx(i2t)
        assert got[f"t2i_R@{k}"] == pytest.approx(t2i)
    assert 0 < got["mR"] < 100


def test_retrieval_rejects_bad_caption_index() -> None:
    with pytest.raises(InputError, match="text_image"):
        metrics.retrieval_recall(np.eye(2), np.eye(2), np.array([0, 5]))


def test_knn_weighted_vote_known_answer() -> None:
    # the query is nearest to one class-1 point, but three slightly further class-0 points outvote it
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.9, 0.12], [0.9, 0.14], [0.0, 1.0]])
    train_y = np.array([1, 0, 0, 0, 1])
    test = np.array([[1.0, 0.02]])
    scores = metrics.knn_scores(train, train_y, test, n_classes=2, k=4, temperature=0.07)
    sims = (train[:4] / np.linalg.norm(train[:4], axis=1, keepdims=True)) @ (
        test[0] / np.linalg.norm(test[0])
    )
    w = np.exp(sims / 0.07)
    np.testing.assert_allclose(scores[0], [w[1:].sum() / w.sum(), w[0] / w.sum()], rtol=1e-5)
    # with k = 1 only the nearest neighbour votes
    assert metrics.knn_scores(train, train_y, test, n_classes=2, k=1).argmax() == 1


def test_knn_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    train, test = rng.normal(size=(60, 8)), rng.normal(size=(25, 8))
    train_y = rng.integers(0, 4, 60)
    got = metrics.knn_scores(train, train_y, test, n_classes=4, k=20, chunk_size=4)
    tn = train / np.linalg.norm(train, axis=1, keepdims=True)
    for i, q in enumerate(test / np.linalg.norm(test, axis=1, keepdims=True)):
        sims = tn @ q
        top = np.argsort(-sims)[:20]
        votes = np.bincount(train_y[top], weights=np.exp(sims[top] / 0.07), minlength=4)
        np.testing.assert_allclose(got[i], votes / votes.sum(), rtol=1e-4)


def test_linear_probe_separable_and_picks_c() -> None:
    rng = np.random.default_rng(4)
    centres = rng.normal(size=(3, 10)) * 3
    y = rng.integers(0, 3, 150)
    x = centres[y] + rng.normal(size=(150, 10))
    result = metrics.linear_probe(x[:90], y[:90], x[90:120], y[90:120], x[120:], n_classes=3)
    assert result.C in metrics.DEFAULT_CS
    assert result.probs.shape == (30, 3)
    np.testing.assert_allclose(result.probs.sum(1), 1.0)
    assert (result.probs.argmax(1) == y[120:]).mean() > 0.9


def test_linear_probe_keeps_absent_classes_as_zero_columns() -> None:
    x = np.array([[1.0, 0], [0.9, 0.1], [0, 1.0], [0.1, 0.9]])
    result = metrics.linear_probe(x, [0, 0, 2, 2], x[:0], np.array([]), x, n_classes=3)
    assert result.probs.shape == (4, 3)
    assert np.all(result.probs[:, 1] == 0)
    np.testing.assert_array_equal(result.probs.argmax(1), [0, 0, 2, 2])
    assert result.C == 1.0 and result.val_top1 is None  # nothing to choose C on


def test_linear_probe_without_refit_ignores_validation_labels() -> None:
    # validation points sit on the other side with flipped labels: refitting on them would change predictions
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    val_x = np.array([[1.0, 0.05], [0.05, 1.0]])
    kept = metrics.linear_probe(x, [0, 1], val_x, np.array([1, 0]), x, n_classes=2, refit=False)
    np.testing.assert_array_equal(kept.probs.argmax(1), [0, 1])
    assert kept.val_top1 == 0.0


def test_few_shot_indices() -> None:
    labels = np.array([0] * 10 + [1] * 3 + [2] * 8)
    picked = metrics.few_shot_indices(labels, shots=4, seed=0)
    assert np.bincount(labels[picked]).tolist() == [4, 3, 4]
    assert len(set(picked.tolist())) == len(picked)
    np.testing.assert_array_equal(picked, metrics.few_shot_indices(labels, shots=4, seed=0))
    assert not np.array_equal(picked, metrics.few_shot_indices(labels, shots=4, seed=1))


def test_counting_topk_and_mae_known_answer() -> None:
    # caption scores for counts 1..10; true counts 3, 1, 10
    scores = np.zeros((3, 10))
    scores[0, [2, 5]] = [0.9, 0.5]  # predicts 3: top-1 hit
    scores[1, [4, 0]] = [0.9, 0.5]  # predicts 5, true 1 second: top-2 hit
    scores[2, :] = np.linspace(1, 0, 10)  # true 10 ranked last: top-10 only
    acc = metrics.topk_accuracy(scores, np.array([3, 1, 10]) - 1, ks=range(1, 11))
    assert (
        acc[1] == pytest.approx(1 / 3) and acc[2] == pytest.approx(2 / 3) and acc[9] == pytest.approx(2 / 3)
    )
    assert acc[10] == 1.0
    assert metrics.mean_absolute_error([3, 1, 10], [3, 5, 1]) == pytest.approx((0 + 4 + 9) / 3)


def test_class_precision_at_k_ranks_images_per_class_query() -> None:
    labels = np.array([0] * 12 + [1] * 12)
    similarity = np.zeros((24, 2))
    similarity[:12, 0] = 1.0  # query 0 ranks its 12 images first
    similarity[:, 1] = np.where(labels == 1, 0.5, 0.0)
    similarity[:5, 1] = 0.9  # query 1 finds 5 wrong images before its own
    assert metrics.class_precision_at_k(similarity, labels, k=10) == pytest.approx((1.0 + 0.5) / 2)
    # a class with fewer than k images is left out of the mean
    assert metrics.class_precision_at_k(similarity[:15], labels[:15], k=10) == pytest.approx(1.0)
