"""Distillation losses against hand values, a teacher that gets no gradient, and a student that learns."""

import json
import math
import os
import pickle
from functools import partial

import numpy as np
import pytest
import torch

from stages.caches.teacher import TeacherCache, teacher_targets
from stages.config import DistillParams, ExecutorParams, StudentParams, TrainParams
from stages.data.parallel_queries import ParallelQuery
from stages.losses.bi_encoder import make_distillation_loss
from stages.training.bi import Task, distillation_rows, train


@pytest.fixture(scope="module")
def student(tiny_model):
    from stages.models.bi_encoder import build_student

    return build_student(str(tiny_model), StudentParams())


def embeddings_of(*rows, width):
    """Embeddings whose first coordinates are given; the rest are zero (the student's width is larger)."""
    out = torch.zeros(len(rows), width)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.float)
    return out


def test_kl_mse_and_contrastive_losses_equal_the_values_worked_by_hand(student):
    width = student.get_embedding_dimension()
    params = DistillParams(temperature=2.0, rank_weight=0.5, representation_weight=2.0, contrastive_weight=0.25)
    loss = make_distillation_loss(student, params, candidates=3, teacher_dim=width)
    query = embeddings_of([1, 0], width=width)
    candidates = [
        embeddings_of([2, 0], width=width),
        embeddings_of([0, 1], width=width),
        embeddings_of([1, 1], width=width),
    ]
    teacher_query = embeddings_of([0.5, 0.5], width=width)
    labels = torch.cat([torch.tensor([[3.0, 0.0, 2.0]]), teacher_query], dim=1)

    losses = loss.compute_from_embeddings([query, *candidates], labels)

    # Student dot products 2, 0, 1; teacher scores 3, 0, 2; both divided by T = 2.
    def softmax(xs):
        z = sum(math.exp(x) for x in xs)
        return [math.exp(x) / z for x in xs]

    p_teacher, p_student = softmax([1.5, 0.0, 1.0]), softmax([1.0, 0.0, 0.5])
    kl = sum(t * math.log(t / s) for t, s in zip(p_teacher, p_student)) * 2.0**2
    assert losses["rank"].item() == pytest.approx(0.5 * kl, rel=1e-5)
    # (1 - 0.5)^2 + (0 - 0.5)^2 over `width` coordinates, the rest being 0 on both sides.
    assert losses["representation"].item() == pytest.approx(2.0 * 0.5 / width, rel=1e-5)
    # Contrastive: the teacher's best candidate (the first column) against the others, dot scores 2, 0, 1.
    assert losses["contrastive"].item() == pytest.approx(0.25 * -math.log(softmax([2.0, 0.0, 1.0])[0]), rel=1e-5)


def test_the_teacher_targets_get_no_gradient(student):
    width = student.get_embedding_dimension()
    loss = make_distillation_loss(student, DistillParams(), candidates=2, teacher_dim=width)
    features = [
        student.preprocess(["mto mrefu"]),
        student.preprocess(["Mto Nile ni mto mrefu."]),
        student.preprocess(["Mlima Kenya."]),
    ]
    labels = torch.cat([torch.tensor([[2.0, -1.0]]), torch.ones(1, width)], dim=1).requires_grad_()
    sum(loss(features, labels).values()).backward()
    assert labels.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())
    student.zero_grad()


class OverlapTeacher:
    """An English 'teacher' whose score is the count of shared words, and whose embedding is a bag of words."""

    VOCAB = ["river", "mountain", "longest", "highest", "africa", "nile", "kilimanjaro", "water"]

    def __init__(self):
        self.scored = 0

    def score(self, pairs):
        self.scored += len(pairs)
        return [float(len(set(q.lower().split()) & set(p.lower().rstrip(".").split()))) for q, p in pairs]

    def embed(self, queries):
        import numpy as np

        return np.array([[float(w in q.lower()) for w in self.VOCAB] for q in queries], dtype=np.float32)


def parallel(qid, query, english, passages):
    docids = tuple(f"d{i}" for i in range(len(passages)))
    return ParallelQuery("toy", qid, query, english, docids, tuple(passages), tuple(passages))


def test_a_cache_hit_skips_the_teacher(tmp_path):
    queries = [parallel("1", "mto mrefu", "longest river", ["the longest river", "a mountain"])]
    cache = TeacherCache(tmp_path / "t", {"kind": "toy"})
    teacher = OverlapTeacher()
    first, emb = teacher_targets(queries, cache, lambda: teacher, with_embeddings=True)
    assert first == [[2.0, 0.0]] and teacher.scored == 2

    def no_teacher():
        raise AssertionError("the teacher was loaded although every target is cached")

    again = TeacherCache(tmp_path / "t", {"kind": "toy"})  # a new run reads the cache from disk
    second, emb2 = teacher_targets(queries, again, no_teacher, with_embeddings=True)
    assert second == first and (emb2 == emb).all()
    more = queries + [parallel("2", "mlima", "highest mountain", ["a mountain", "the highest mountain"])]
    teacher_targets(more, again, lambda: teacher, with_embeddings=True)
    assert teacher.scored == 4  # only the new query's pairs were scored


def test_an_interrupted_append_loses_only_the_unfinished_line(tmp_path):
    cache = TeacherCache(tmp_path / "t", {"kind": "toy"})
    cache.add_scores([("1", "d0", "k0", 1.5), ("1", "d1", "k1", 0.5)])
    with open(cache.scores_path, "a", encoding="utf-8") as out:
        out.write("1\td2\tk2\t0.")  # the process died mid-line
    assert TeacherCache(tmp_path / "t", {"kind": "toy"}).scores == {"k0": 1.5, "k1": 0.5}


def test_a_cache_of_another_teacher_is_refused(tmp_path):
    TeacherCache(tmp_path / "t", {"kind": "toy", "model": "a"})
    with pytest.raises(Exception, match="belongs to another teacher"):
        TeacherCache(tmp_path / "t", {"kind": "toy", "model": "b"})


TOY = [  # target-language query, English query, candidates (Swahili passages)
    (
        "mto mrefu zaidi",
        "longest river",
        ["Nile longest river Africa", "Kilimanjaro highest mountain", "Rufiji river", "Kenya mountain"],
    ),
    (
        "mlima mrefu zaidi",
        "highest mountain",
        ["Kenya mountain", "Nile longest river Africa", "Kilimanjaro highest mountain", "Rufiji river"],
    ),
    (
        "maji ya mto",
        "river water",
        ["Kilimanjaro highest mountain", "Rufiji river water", "Kenya mountain", "Nile longest river"],
    ),
    (
        "mlima Afrika",
        "mountain Africa",
        ["Rufiji river", "Kenya mountain", "Nile river", "Kilimanjaro mountain Africa"],
    ),
    ("mto Nile", "Nile river", ["Kenya mountain", "Rufiji river", "Nile river Africa", "Kilimanjaro highest mountain"]),
    (
        "mlima Kilimanjaro",
        "Kilimanjaro mountain",
        ["Kilimanjaro highest mountain Africa", "Nile river", "Kenya mountain", "Rufiji water"],
    ),
]


# ---------------------------------------------------------------- the teacher's chunks as work units


class ChunkCountingTeacher(OverlapTeacher):
    """The overlap teacher, remembering how many pairs each score() call read."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def score(self, pairs):
        self.calls.append(len(pairs))
        return super().score(pairs)


class DiesAtFirstScore(OverlapTeacher):
    """A picklable teacher whose worker process exits (as a killed one would) at its first score() call, the
    first time only (a marker file remembers it across the restarted worker)."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker

    def score(self, pairs):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)
        return super().score(pairs)


def must_not_load():
    raise AssertionError("the teacher was loaded although every target is cached")


def toy_queries():
    """Two toy queries (8 distinct pairs) and a third whose one pair is the first query's first."""
    queries = [parallel(str(i), q, e, c) for i, (q, e, c) in enumerate(TOY[:2])]
    return queries + [parallel("9", "mto", TOY[0][1], TOY[0][2][:1])]


def test_the_teacher_scores_chunk_by_chunk_into_the_cache_it_wrote_in_one_go(tmp_path):
    loaded = []

    def load():
        loaded.append(ChunkCountingTeacher())
        return loaded[-1]

    queries = toy_queries()
    cache = TeacherCache(tmp_path / "chunks", {"kind": "toy"})
    scores, embeddings = teacher_targets(queries, cache, load, True, chunk_size=3)
    assert len(loaded) == 1  # the chunks and the query embeddings share one teacher
    assert loaded[0].calls == [3, 3, 2]  # 8 distinct pairs, the repeated one scored once
    assert scores == [[2.0, 0.0, 1.0, 0.0], [1.0, 0.0, 2.0, 0.0], [2.0]]
    whole = TeacherCache(tmp_path / "whole", {"kind": "toy"})  # the default chunk holds all 8 pairs
    whole_scores, whole_embeddings = teacher_targets(queries, whole, OverlapTeacher, True)
    assert whole_scores == scores and np.array_equal(whole_embeddings, embeddings)
    assert cache.scores_path.read_bytes() == whole.scores_path.read_bytes()  # the same lines in the same order
    again = TeacherCache(tmp_path / "chunks", {"kind": "toy"})
    assert teacher_targets(queries, again, must_not_load, True, chunk_size=3)[0] == scores


def test_the_configured_teachers_loader_pickles_and_a_copy_loads_the_same_teacher(tmp_path, tiny_model):
    from stages.caches.teacher import open_cache
    from stages.config import load_config
    from tests.helpers import write_config

    teacher = {"kind": "bi-encoder", "model": str(tiny_model)}
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "w", bi_encoder={"teacher": teacher}))
    _, load = open_cache(config)
    copy = pickle.loads(pickle.dumps(load))  # what a Ray worker gets
    pairs = [("longest river", "The Nile river flows north through Egypt."), ("moon", "Cats sleep many hours.")]
    assert copy().score(pairs) == load().score(pairs)


@pytest.mark.slow
def test_ray_workers_score_the_local_targets_even_when_one_dies_and_a_second_run_starts_none(
    local_ray, tmp_path, monkeypatch
):
    queries = toy_queries()
    local = TeacherCache(tmp_path / "local", {"kind": "toy"})
    expected_scores, expected_embeddings = teacher_targets(queries, local, OverlapTeacher, True, chunk_size=3)
    monkeypatch.setenv("PIPELINE_EXECUTOR", "ray")
    marker, on_ray = tmp_path / "killed", ExecutorParams(cpus_per_worker=1)
    cache = TeacherCache(tmp_path / "ray", {"kind": "toy"})
    load = partial(DiesAtFirstScore, str(marker))
    scores, embeddings = teacher_targets(queries, cache, load, True, on_ray, chunk_size=3)
    assert marker.exists()  # a worker died scoring its first chunk, and the chunk was scored again
    assert scores == expected_scores and np.array_equal(embeddings, expected_embeddings)
    assert TeacherCache(tmp_path / "ray", {"kind": "toy"}).scores == local.scores  # as read back from disk
    # The same lines, the chunks in the order they finished.
    lines = {name: sorted((tmp_path / name / "scores.tsv").read_text().splitlines()) for name in ("local", "ray")}
    assert lines["ray"] == lines["local"]

    def no_ray():
        raise AssertionError("Ray was started although every target is cached")

    monkeypatch.setattr("stages.executors.start_ray", no_ray)
    again = TeacherCache(tmp_path / "ray", {"kind": "toy"})
    assert teacher_targets(queries, again, must_not_load, True, on_ray, chunk_size=3)[0] == expected_scores


def kl_and_agreement(model, queries, scores):
    """Mean KL(teacher || student) at T = 1, and how often the student's top candidate is the teacher's."""
    from stages.models.bi_encoder import encode

    kl, agree = 0.0, 0
    for q, teacher in zip(queries, scores):
        student = encode(model, list(q.passages), "document", 8) @ encode(model, [q.query], "query", 8)[0]
        p = torch.softmax(torch.tensor(teacher), 0)
        log_s = torch.log_softmax(torch.tensor(student), 0)
        kl += float((p * (p.log() - log_s)).sum())
        agree += int(max(range(4), key=lambda j: student[j]) == max(range(4), key=lambda j: teacher[j]))
    return kl / len(queries), agree


def test_a_tiny_student_distilled_on_a_toy_parallel_set_moves_toward_the_teacher(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    from stages.models.bi_encoder import build_student

    build_student(str(tiny_model), StudentParams()).save(str(tmp_path / "init"))
    model = SentenceTransformer(str(tmp_path / "init"))
    queries = [parallel(str(i), q, e, c) for i, (q, e, c) in enumerate(TOY)]
    scores, embeddings = teacher_targets(queries, TeacherCache(tmp_path / "t", {"kind": "toy"}), OverlapTeacher, True)
    scaled = [[3.0 * s for s in row] for row in scores]
    kl_before, agree_before = kl_and_agreement(model, queries, scaled)

    params = DistillParams(temperature=1.0, representation_weight=0.1)
    loss = make_distillation_loss(model, params, candidates=4, teacher_dim=embeddings.shape[1])
    training = TrainParams(
        epochs=40, learning_rate=0.003, batch_size=6, warmup_ratio=0.0, save_steps=1000, logging_steps=10, seed=13
    )
    train(
        model,
        {"ranking": Task(distillation_rows(queries, scores, embeddings, 3.0), loss)},
        tmp_path / "kd",
        training,
        {"step": "kd"},
    )
    kl_after, agree_after = kl_and_agreement(SentenceTransformer(str(tmp_path / "kd")), queries, scaled)

    assert kl_after < 0.5 * kl_before, (kl_before, kl_after)
    assert agree_after > agree_before and agree_after >= 5, (agree_before, agree_after)


def test_rows_put_the_teachers_best_candidate_first_and_pack_the_embedding_after_the_scores():
    q = parallel("1", "mto", "river", ["a", "b", "c"])
    import numpy as np

    rows = distillation_rows([q], [[0.1, 0.9, 0.5]], np.array([[7.0, 8.0]]), 10.0)
    assert [rows[f"candidate_{i}"][0] for i in (1, 2, 3)] == ["b", "c", "a"]
    assert rows["label"][0] == pytest.approx([9.0, 5.0, 1.0, 7.0, 8.0])


def test_a_cross_encoder_teacher_scores_with_its_logits_and_has_no_query_embeddings(tiny_model):
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.config import ConfigError, TeacherParams
    from stages.models.teachers import CrossEncoderTeacher

    teacher = CrossEncoderTeacher(str(tiny_model), TeacherParams(kind="cross-encoder", max_length=64))
    pairs = [("longest river", "The Nile river flows north."), ("tides", "The moon causes tides.")]
    reference = CrossEncoder(str(tiny_model), num_labels=1, max_length=64).predict(
        pairs, activation_fn=torch.nn.Identity()
    )
    assert teacher.score(pairs) == pytest.approx([float(v) for v in reference], rel=1e-5)
    assert all(p.grad is None for p in teacher.model.model.parameters())
    with pytest.raises(ConfigError, match="representation_weight to 0"):
        teacher.embed(["longest river"])


def test_separate_towers_with_prefixes_train_and_encode_queries_and_passages_apart(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    from stages.losses.bi_encoder import contrastive_loss
    from stages.models.bi_encoder import build_student, encode

    params = StudentParams(
        shared_towers=False,
        query_prefix="query: ",
        passage_prefix="passage: ",
        similarity="cosine",
        pooling="cls",
        max_passage_length=64,
    )
    model = build_student(str(tiny_model), params)
    columns = {
        "query": [q for q, _, _ in TOY],
        "positive": [c[0] for _, _, c in TOY],
        "negative_1": [c[1] for _, _, c in TOY],
    }
    training = TrainParams(epochs=1, learning_rate=0.001, batch_size=3, save_steps=1000, logging_steps=1, seed=13)
    train(
        model,
        {"miracl": Task(columns, contrastive_loss(model, "cosine"))},
        tmp_path / "bi",
        training,
        {"step": "miracl"},
    )
    saved = SentenceTransformer(str(tmp_path / "bi"))
    assert saved.prompts == {"query": "query: ", "document": "passage: "} and saved.similarity_fn_name == "cosine"
    as_query, as_passage = encode(saved, ["mto mrefu"], "query", 2), encode(saved, ["mto mrefu"], "document", 2)
    assert abs(float((as_query * as_query).sum()) - 1.0) < 1e-5  # cosine models come back normalised
    assert not (as_query == as_passage).all()  # two towers (and two prefixes) see the same text differently


MAXSIM = StudentParams(scoring="maxsim", token_dim=16, similarity="cosine", max_query_length=32, max_passage_length=64)


def maxsim_kl_and_agreement(model, queries, scores):
    """As `kl_and_agreement`, with the student's MaxSim scores (what the reranker and dense search compute)."""
    from stages.models.bi_encoder import encode_tokens, maxsim_scores

    kl, agree = 0.0, 0
    for q, teacher in zip(queries, scores):
        tokens = encode_tokens(model, [q.query], "query", 8)[0]
        student = maxsim_scores(tokens, encode_tokens(model, list(q.passages), "document", 8))
        p = torch.softmax(torch.tensor(teacher), 0)
        log_s = torch.log_softmax(torch.tensor(student), 0)
        kl += float((p * (p.log() - log_s)).sum())
        agree += int(max(range(4), key=lambda j: student[j]) == max(range(4), key=lambda j: teacher[j]))
    return kl / len(queries), agree


def test_a_maxsim_student_distilled_on_a_toy_parallel_set_moves_toward_the_teacher(tiny_model, tmp_path):
    from stages.models.bi_encoder import build_student, is_multi_vector, load_encoder
    from stages.training.bi import load_student

    torch.manual_seed(13)  # the token projection's initial weights
    build_student(str(tiny_model), MAXSIM).save(str(tmp_path / "init"))
    model = load_student(tmp_path / "init")
    assert is_multi_vector(model)
    queries = [parallel(str(i), q, e, c) for i, (q, e, c) in enumerate(TOY)]
    scores, embeddings = teacher_targets(queries, TeacherCache(tmp_path / "t", {"kind": "toy"}), OverlapTeacher, False)
    scaled = [[3.0 * s for s in row] for row in scores]
    kl_before, agree_before = maxsim_kl_and_agreement(model, queries, scaled)
    params = DistillParams(temperature=1.0, representation_weight=0.0, contrastive_weight=0.5)
    loss = make_distillation_loss(model, params, candidates=4, teacher_dim=None)
    training = TrainParams(
        epochs=10, learning_rate=0.003, batch_size=6, warmup_ratio=0.0, save_steps=1000, logging_steps=1, seed=13
    )
    train(
        model,
        {"ranking": Task(distillation_rows(queries, scores, embeddings, 3.0), loss)},
        tmp_path / "kd",
        training,
        {"step": "kd"},
    )

    trained = load_encoder(tmp_path / "kd", device="cpu")
    assert is_multi_vector(trained)
    kl_after, agree_after = maxsim_kl_and_agreement(trained, queries, scaled)
    history = json.loads((tmp_path / "kd" / "training.json").read_text())["log_history"]
    steps = [h for h in history if "rank" in h]  # one a step: the batch is the whole toy set

    # Measured with seed 13: KL 1.09 -> 0.37, agreement 3 -> 5 of 6, each loss term below half its first steps.
    assert kl_after < 0.5 * kl_before, (kl_before, kl_after)
    assert agree_after > agree_before, (agree_before, agree_after)
    for term in ("rank", "contrastive"):  # both weighted terms were computed, and training lowered both
        first, last = [h[term] for h in steps[:3]], [h[term] for h in steps[-3:]]
        assert min(first) > 0 and sum(last) < 0.5 * sum(first), (term, first, last)


def test_the_representation_loss_with_a_maxsim_student_is_a_config_error(tiny_model):
    from stages.config import ConfigError
    from stages.models.bi_encoder import build_student

    model = build_student(str(tiny_model), MAXSIM)
    with pytest.raises(ConfigError, match=r"set bi_encoder\.distillation\.representation_weight to 0"):
        make_distillation_loss(model, DistillParams(representation_weight=1.0), candidates=4, teacher_dim=8)
