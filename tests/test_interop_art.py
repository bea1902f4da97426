"""ART interop: ART's KnockoffNets against a vtrust deployment, vtrust's attacks against
an ART-wrapped model."""

import numpy as np
import pytest
import torch

pytest.importorskip("art")

from art.attacks.extraction import KnockoffNets  # noqa: E402
from art.estimators.classification import PyTorchClassifier  # noqa: E402

from vtrust.catalog import load_entry  # noqa: E402
from vtrust.defenses.deployment import Deployment  # noqa: E402
from vtrust.evaluation.attacks import run_extraction  # noqa: E402
from vtrust.interop.art import art_target, deployment_classifier  # noqa: E402
from vtrust.models import agreement, build_model  # noqa: E402
from vtrust.models.recipes import train_model  # noqa: E402


@pytest.fixture(scope="module")
def victim():
    trained = train_model("digits", "cnn", epochs=6)
    from vtrust.data import load_dataset

    return trained.model, load_dataset("digits")


def art_thief(shape, classes):
    model = build_model("cnn", shape, classes, seed=1)
    return PyTorchClassifier(
        model,
        torch.nn.CrossEntropyLoss(),
        optimizer=torch.optim.Adam(model.parameters(), lr=2e-3),
        input_shape=shape,
        nb_classes=classes,
        clip_values=(0.0, 1.0),
    )


def test_art_knockoffnets_against_a_vtrust_deployment(victim):
    model, splits = victim
    oracle = Deployment.of(["shift"]).oracle(model, splits.victim, seed=0)
    classifier = deployment_classifier(oracle, client_id="art-thief")
    knockoff = KnockoffNets(
        classifier,
        batch_size_fit=32,
        batch_size_query=50,
        nb_epochs=15,
        nb_stolen=300,
        use_probability=True,
        verbose=False,
    )
    stolen = knockoff.extract(splits.attacker.x, thieved_classifier=art_thief((1, 8, 8), 10))
    record = oracle.client("art-thief")
    assert record.queries == 300 == classifier.vtrust_refusals.answered
    fidelity = agreement(stolen.model.eval(), model, splits.test.x)
    assert fidelity > 0.6  # the thief learns from vtrust's answers …
    assert record.flagged_at is None or "shift" in record.flagged_at  # … and is watched


def test_a_refusing_deployment_starves_art_of_answers(victim):
    model, splits = victim
    oracle = Deployment.of(["limit-1k"]).oracle(model, splits.victim, seed=0)
    classifier = deployment_classifier(oracle, client_id="greedy")
    answers = classifier.predict(np.random.default_rng(0).random((1200, 1, 8, 8), np.float32))
    log = classifier.vtrust_refusals
    assert log.refused == 200 and log.refused_by == "limit-1k"
    np.testing.assert_allclose(answers[1000:], 0.1)


def test_vtrust_attacks_an_art_wrapped_model(victim):
    model, splits = victim
    wrapped = PyTorchClassifier(
        model,
        torch.nn.CrossEntropyLoss(),
        input_shape=(1, 8, 8),
        nb_classes=10,
        clip_values=(0.0, 1.0),
    )
    target = art_target(wrapped)
    assert target.format == "art" and not target.white_box
    np.testing.assert_allclose(
        target.predict_proba(splits.test.x[:10]).argmax(1),
        wrapped.predict(splits.test.x[:10]).argmax(1),
    )
    summary, _ = run_extraction(
        load_entry("attacks", "knockoff-attacker-400").build(),
        target,
        splits,
        budget=200,
        curve=False,
    )
    assert summary["queries"] == 200 and summary["fidelity"] > 0.5
