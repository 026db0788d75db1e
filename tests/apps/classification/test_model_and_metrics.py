"""The model zoo and the hand-coded classification metrics."""

import numpy as np
import pytest
from sklearn import metrics as sk

from apps.classification import model as model_lib
from apps.core import metrics as metrics_lib


@pytest.mark.parametrize("name", model_lib.NAMES)
def test_every_model_builds_and_classifies(name):
    model = model_lib.build(name, image_size=16, channels=1, num_classes=7, width=0.25)
    logits = model(np.random.default_rng(0).uniform(size=(2, 16, 16, 1)).astype("float32"))
    assert logits.shape == (2, 7)
    assert np.all(np.isfinite(logits))
    assert model.get_layer("head").count_params() > 0


def test_models_take_colour_and_larger_inputs():
    model = model_lib.build("resnet", image_size=32, channels=3, num_classes=4, width=0.5)
    assert model(np.zeros((1, 32, 32, 3), "float32")).shape == (1, 4)


def test_freeze_layers_freezes_the_first_layers_only():
    model = model_lib.build("lenet5", 16, 1, 10, freeze_layers=2)
    trainable = [layer.trainable for layer in model.layers[1:]]
    assert trainable[:2] == [False, False] and all(trainable[2:])
    assert model.get_layer("c1").trainable_weights == []


def test_report_matches_scikit_learn():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, 200)
    scores = rng.normal(size=(200, 5)) + 2.0 * np.eye(5)[labels]
    scores[:, 4] -= 10  # class 4 is never predicted: precision 0 by convention
    report = metrics_lib.classification_report(labels, scores, 5, top_k=3)
    predictions = scores.argmax(-1)
    p, r, f, _ = sk.precision_recall_fscore_support(labels, predictions, labels=range(5),
                                                    zero_division=0)
    np.testing.assert_allclose(report["precision"], p)
    np.testing.assert_allclose(report["recall"], r)
    np.testing.assert_allclose(report["f1"], f)
    assert report["macro_f1"] == pytest.approx(sk.f1_score(labels, predictions, average="macro",
                                                            zero_division=0))
    assert report["accuracy"] == pytest.approx(sk.accuracy_score(labels, predictions))
    assert report["top3_accuracy"] == pytest.approx(
        sk.top_k_accuracy_score(labels, scores, k=3, labels=range(5)))
    np.testing.assert_array_equal(report["confusion_matrix"],
                                  sk.confusion_matrix(labels, predictions, labels=range(5)))


def test_confusion_matrix_figure_renders():
    from apps.core.images import figure_to_image

    image = figure_to_image(metrics_lib.confusion_matrix_figure(np.eye(3, dtype=int) * 5,
                                                                ["a", "b", "c"]))
    assert image.dtype == np.uint8 and image.ndim == 4 and image.shape[-1] == 3
    assert image.std() > 0
