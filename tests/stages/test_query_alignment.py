"""The alignment enhancement: each query paired with the query generated from its teacher-best passage,
generated queries cached on disk, and the task's loss the weighted in-batch contrastive loss."""

import pytest
import torch

from stages.caches.generated_queries import GeneratedQueries, cached_generation
from stages.config import StudentParams, TinyModelParams, TrainParams
from stages.data.parallel_queries import ParallelQuery
from stages.formats import DataFormatError
from stages.losses.weighted import weighted_loss
from stages.training.query_alignment import alignment_rows, best_passages


def parallel(qid, query, student_passages, teacher_passages):
    docids = tuple(f"d{i}" for i in range(len(student_passages)))
    return ParallelQuery("toy", qid, query, "unused", docids, tuple(student_passages), tuple(teacher_passages))


QUERIES = [
    parallel(
        "1", "mto mrefu zaidi", ["Mto Nile", "Mlima Kenya", "Mto Rufiji"], ["Nile river", "Mount Kenya", "Rufiji river"]
    ),
    parallel(
        "2", "mlima mrefu", ["Mto Nile", "Kilimanjaro", "Mlima Kenya"], ["Nile river", "Kilimanjaro", "Mount Kenya"]
    ),
    parallel("3", "mlima Kenya", ["Mto Nile", "Mlima Kenya"], ["Nile river", "Mount Kenya"]),
    parallel("4", "mto", ["Mto Rufiji", "Mto Nile"], ["Rufiji river", "Nile river"]),
]
SCORES = [[-1.0, -5.0, -2.0], [-3.0, -0.5, -0.5], [-4.0, -1.0], [-2.0, -2.0]]  # query 2 and 4: ties


def about(passages):
    """A fake generator: its 'query' names the passage it read, and it has nothing to say about Kenya."""
    return ["" if "Kenya" in p else f"about {p}" for p in passages]


def test_each_query_is_paired_with_the_query_generated_from_its_teacher_best_passage():
    # The teacher's best candidate, as the teacher read it; a tie goes to the first docid.
    assert best_passages(QUERIES, SCORES) == ["Nile river", "Kilimanjaro", "Mount Kenya", "Rufiji river"]
    rows = alignment_rows(QUERIES, SCORES, about)
    # query 3's generated query is empty: left out
    assert rows == {
        "query": ["mto mrefu zaidi", "mlima mrefu", "mto"],
        "generated": ["about Nile river", "about Kilimanjaro", "about Rufiji river"],
    }


class CountingGenerator:
    def __init__(self, generate):
        self.generate, self.passages = generate, []

    def __call__(self, passages):
        self.passages += passages
        return self.generate(passages)


def no_generator():
    raise AssertionError("the generator was loaded although every query is cached")


def test_generated_queries_are_cached_and_a_second_run_does_not_load_the_generator(tmp_path):
    path, settings = (
        tmp_path / "qgen" / "generated-english.tsv",
        {"weights_sha256": "a", "prompt": "{language} query: "},
    )
    generator = CountingGenerator(about)
    passages = ["Nile river", "Mount Kenya", "Nile river", "Kilimanjaro"]
    first = cached_generation(passages, settings, GeneratedQueries(path), lambda: generator)
    assert first == ["about Nile river", "", "about Nile river", "about Kilimanjaro"]
    assert generator.passages == ["Nile river", "Mount Kenya", "Kilimanjaro"]  # each text once

    again = cached_generation(passages, settings, GeneratedQueries(path), no_generator)  # read back from disk
    assert again == first
    more = CountingGenerator(about)
    cached_generation(passages + ["Rufiji river"], settings, GeneratedQueries(path), lambda: more)
    assert more.passages == ["Rufiji river"]  # only what is new
    other = CountingGenerator(about)  # other weights (or prompt, or lengths): generated anew
    cached_generation(passages, settings | {"weights_sha256": "b"}, GeneratedQueries(path), lambda: other)
    assert other.passages == ["Nile river", "Mount Kenya", "Kilimanjaro"]


def test_a_real_generator_is_deterministic_and_its_queries_come_back_from_the_cache(tiny_model, tmp_path):
    from stages.models.generator import build_tiny_generator, generate_queries, load_generator

    folder = build_tiny_generator(
        tiny_model, TinyModelParams(layers=1, hidden=32, heads=2, intermediate=64, seed=5), tmp_path / "tiny-t5"
    )

    def load():
        model, tokenizer = load_generator(str(folder))
        return lambda passages: generate_queries(model, tokenizer, passages, "english", "{language} query: ", 64, 5, 2)

    passages = ["Mto Nile ni mto mrefu zaidi barani Afrika.", "Kilimanjaro ni mlima mrefu.", "The moon causes tides."]
    path = tmp_path / "generated-english.tsv"
    first = cached_generation(passages, {"weights_sha256": "t5"}, GeneratedQueries(path), load)
    assert first == load()(passages)  # greedy decoding: the same queries every time
    assert cached_generation(passages, {"weights_sha256": "t5"}, GeneratedQueries(path), no_generator) == first


def test_a_malformed_cache_line_names_the_file_and_line_and_an_unfinished_last_line_is_dropped(tmp_path):
    path = tmp_path / "generated-english.tsv"
    path.write_text("k1\tabout Nile\nk2\tabout Kilimanjaro\nk3\tabo", encoding="utf-8")  # the run died mid-line
    assert GeneratedQueries(path).queries == {"k1": "about Nile", "k2": "about Kilimanjaro"}
    path.write_text("k1\tabout Nile\nk2 about Kilimanjaro\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=f"{path}:2: expected 'key<TAB>generated query'"):
        GeneratedQueries(path)


@pytest.fixture(scope="module")
def student(tiny_model):
    from stages.models.bi_encoder import build_student

    return build_student(str(tiny_model), StudentParams())


def test_the_weighted_loss_is_the_weight_times_the_contrastive_loss_on_the_same_batch(student):
    from stages.losses.bi_encoder import contrastive_loss

    contrastive = contrastive_loss(student, student.similarity_fn_name)
    loss = weighted_loss(contrastive, 0.5, "query_alignment")
    features = [
        student.preprocess(["mto mrefu zaidi", "mlima mrefu", "mto Nile"]),
        student.preprocess(["longest river", "highest mountain", "Nile river"]),
    ]
    student.eval()  # no dropout: both forward passes see the same network
    with torch.no_grad():
        weighted, plain = loss(features, None), contrastive(features, None)
    student.train()
    assert list(weighted) == ["query_alignment"]
    assert weighted["query_alignment"].item() == pytest.approx(0.5 * plain.item(), rel=1e-6)
    assert plain.item() > 0


def test_distillation_and_alignment_train_together_and_the_alignment_loss_is_logged(tiny_model, tmp_path):
    from sentence_transformers import SentenceTransformer

    from stages.config import DistillParams
    from stages.formats.jsonfile import read_json
    from stages.losses.bi_encoder import contrastive_loss, make_distillation_loss
    from stages.models.bi_encoder import build_student
    from stages.training.bi import Task, distillation_rows, train

    build_student(str(tiny_model), StudentParams()).save(str(tmp_path / "init"))
    model = SentenceTransformer(str(tmp_path / "init"))
    queries = [q for q in QUERIES if len(q.docids) == 2]
    queries = [parallel(str(i), f"{q.query} {i}", q.passages, q.teacher_passages) for i in range(4) for q in queries]
    scores = [[-1.0, -2.0] if i % 2 else [-2.0, -1.0] for i in range(len(queries))]
    ranking = Task(
        distillation_rows(queries, scores, None, 1.0),
        make_distillation_loss(model, DistillParams(representation_weight=0.0), 2, None),
    )
    alignment = Task(
        alignment_rows(queries, scores, lambda ps: [f"about {p} {i}" for i, p in enumerate(ps)]),
        weighted_loss(contrastive_loss(model, "dot"), 0.5, "query_alignment"),
        ("query", "generated"),
    )
    training = TrainParams(
        epochs=2, learning_rate=0.001, batch_size=4, warmup_ratio=0.0, save_steps=1000, logging_steps=1, seed=13
    )
    out = train(model, {"ranking": ranking, "query_alignment": alignment}, tmp_path / "kd", training, {"step": "kd"})
    record = read_json(out / "training.json")
    assert record["rows_per_task"] == {"ranking": 8, "query_alignment": 8}
    logged = [entry for entry in record["log_history"] if "loss" in entry]
    assert any(entry.get("query_alignment", 0) > 0 for entry in logged)
    assert any(entry.get("rank", 0) > 0 for entry in logged)
