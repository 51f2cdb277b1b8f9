"""Every loss is a module-level class with a docstring, and an instance survives pickling (multi-process
training pickles the loss with the model)."""

from __future__ import annotations

import importlib
import inspect
import pickle

import numpy as np
import pytest
import torch

from stages.config import DistillParams, StudentParams, TokenDistillParams

LOSS_MODULES = ("bi_encoder", "tokens", "weighted", "cross_encoder")
LOSS_CLASSES = {
    "CrossLingualDistillationLoss",
    "MultiVectorDistillationLoss",
    "TokenDistillationLoss",
    "WeightedLoss",
    "GroupSoftmaxLoss",
}


@pytest.fixture(scope="module")
def student(tiny_model):
    from stages.models.bi_encoder import build_student

    return build_student(str(tiny_model), StudentParams(similarity="cosine"))


def round_trip(loss):
    restored = pickle.loads(pickle.dumps(loss))
    assert type(restored) is type(loss)
    before, after = loss.state_dict(), restored.state_dict()
    assert list(before) == list(after)
    assert all(torch.equal(before[key], after[key]) for key in before)
    return restored


def test_every_loss_is_a_documented_module_level_class():
    found = {}
    for name in LOSS_MODULES:
        module = importlib.import_module(f"stages.losses.{name}")
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, torch.nn.Module):
                found[cls_name] = cls
    assert set(found) == LOSS_CLASSES
    for cls in found.values():
        assert cls.__qualname__ == cls.__name__  # not defined inside a function
        assert cls.__doc__ and cls.__doc__.strip()


def test_the_distillation_loss_survives_pickling_and_computes_the_same(student):
    from stages.losses.bi_encoder import CrossLingualDistillationLoss, make_distillation_loss

    torch.manual_seed(0)
    params = DistillParams(representation_weight=0.5, contrastive_weight=0.25)
    loss = make_distillation_loss(student, params, candidates=3, teacher_dim=8)  # 8: a projection is learned
    assert isinstance(loss, CrossLingualDistillationLoss) and loss.representation is not None
    restored = round_trip(loss)
    assert (restored.candidates, restored.rank_weight, restored.representation_weight, restored.contrastive_weight) == (
        3,
        1.0,
        0.5,
        0.25,
    )
    width = student.get_embedding_dimension()
    generator = torch.Generator().manual_seed(1)
    embeddings = [torch.randn(2, width, generator=generator) for _ in range(4)]  # query, 3 candidates
    labels = torch.randn(2, 3 + 8, generator=generator)
    expected, got = (
        loss.compute_from_embeddings(embeddings, labels),
        restored.compute_from_embeddings(embeddings, labels),
    )
    assert set(got) == {"rank", "representation", "contrastive"}
    for part in expected:
        assert float(got[part].detach()) == pytest.approx(float(expected[part].detach()), abs=1e-6)


def test_the_multi_vector_distillation_loss_survives_pickling(tiny_model):
    from stages.losses.bi_encoder import MultiVectorDistillationLoss, make_distillation_loss
    from stages.models.bi_encoder import build_student

    model = build_student(str(tiny_model), StudentParams(scoring="maxsim", similarity="cosine", token_dim=8))
    params = DistillParams(representation_weight=0.0, contrastive_weight=0.5)
    loss = make_distillation_loss(model, params, candidates=2, teacher_dim=None)
    assert isinstance(loss, MultiVectorDistillationLoss)
    restored = round_trip(loss)
    assert (restored.candidates, restored.rank_weight, restored.contrastive_weight) == (2, 1.0, 0.5)


def test_the_token_loss_survives_pickling_with_its_targets_and_projection(student):
    from stages.losses.tokens import TokenDistillationLoss, TokenTargets, make_token_loss

    targets = [TokenTargets((0, 5, 2), np.array([1]), np.ones((1, 8), np.float32))]
    loss = make_token_loss(student, targets, TokenDistillParams(weight=0.3, loss="l1"))
    assert isinstance(loss, TokenDistillationLoss) and loss.projection is not None
    restored = round_trip(loss)
    assert (restored.weight, restored.kind, restored.targets[0].input_ids) == (0.3, "l1", (0, 5, 2))
    np.testing.assert_array_equal(restored.targets[0].vectors, targets[0].vectors)


def test_the_weighted_loss_survives_pickling(student):
    from stages.losses.bi_encoder import contrastive_loss
    from stages.losses.weighted import WeightedLoss, weighted_loss

    loss = weighted_loss(contrastive_loss(student, "cosine"), 0.5, "query_alignment")
    assert isinstance(loss, WeightedLoss) and loss.model is student
    restored = round_trip(loss)
    assert (restored.weight, restored.name) == (0.5, "query_alignment")
    assert restored.model is restored.loss.model  # one model, shared as before pickling


def test_the_group_softmax_loss_survives_pickling_and_has_no_in_batch_negatives(tiny_model):
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.losses.cross_encoder import GroupSoftmaxLoss, make_loss

    loss = make_loss(CrossEncoder(str(tiny_model), num_labels=1, max_length=64), "listwise")
    assert isinstance(loss, GroupSoftmaxLoss)
    restored = round_trip(loss)
    assert list(restored.get_in_batch_negatives(None, None)) == []
    assert restored.scale == 1.0
