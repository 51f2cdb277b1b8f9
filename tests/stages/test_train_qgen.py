"""The query generator: its teacher score is the query's summed token log-probabilities, without gradient."""
import pytest
import torch

from stages.config import TeacherParams, TinyModelParams
from stages.teacher import QueryGeneratorTeacher
from stages.train_qgen import build_tiny_generator, query_labels


@pytest.fixture(scope="module")
def generator(tiny_model, tmp_path_factory):
    params = TinyModelParams(layers=1, hidden=32, heads=2, intermediate=64, seed=5)
    return build_tiny_generator(tiny_model, params, tmp_path_factory.mktemp("qgen") / "tiny-t5")


def by_hand(model, tokenizer, query, passage):
    """Decode the query one token at a time and add up log p(token | passage, earlier tokens)."""
    encoder_input = tokenizer([passage], return_tensors="pt")
    prefix, total = [model.config.decoder_start_token_id], 0.0
    with torch.no_grad():
        for token in query_labels(tokenizer, [query], 64)[0]:
            logits = model(**encoder_input, decoder_input_ids=torch.tensor([prefix])).logits[0, -1]
            total += torch.log_softmax(logits.double(), dim=-1)[token].item()
            prefix.append(token)
    return total


def test_the_teacher_score_is_the_summed_log_probability_of_the_query_worked_out_token_by_token(generator):
    teacher = QueryGeneratorTeacher(str(generator), TeacherParams(kind="query-generator", batch_size=2, max_length=64))
    pairs = [("longest river", "The Nile river flows north through Egypt."),
             ("tides", "The moon causes tides."), ("Nile", "Cats sleep many hours and the Nile is long.")]
    scores = teacher.score(pairs)
    for (query, passage), score in zip(pairs, scores):
        assert score == pytest.approx(by_hand(teacher.model, teacher.tokenizer, query, passage), abs=1e-4)
    assert all(s < 0 for s in scores)  # log-probabilities of whole queries
    assert all(p.grad is None for p in teacher.model.parameters())
    with pytest.raises(Exception, match="representation_weight to 0"):
        teacher.embed(["longest river"])


def test_labels_are_the_query_tokens_then_end_of_sequence(generator):
    teacher = QueryGeneratorTeacher(str(generator), TeacherParams(kind="query-generator"))
    (labels,) = query_labels(teacher.tokenizer, ["mto mrefu"], 64)
    assert labels[-1] == teacher.tokenizer.eos_token_id
    assert teacher.tokenizer.decode(labels[:-1]).strip() == "mto mrefu"


def test_the_generator_trains_on_miracl_positives_and_then_likes_their_queries_more(tmp_path):
    from stages.config import load_config
    from stages.train_qgen import model_dir, train, training_pairs
    from tests.helpers import TINY_LANGUAGES, make_release, write_config

    make_release(tmp_path / "rel")
    config = load_config(write_config(
        tmp_path / "c.yaml", data_root=tmp_path / "rel", work_root=tmp_path / "w", languages=TINY_LANGUAGES,
        tiny_model={"vocab_size": 1500, "layers": 1, "hidden": 32, "heads": 2, "intermediate": 64, "max_length": 64},
        query_generator={"miracl_split": "dev", "mmarco": {"english": 0}, "max_passage_length": 64, "training": {
            "epochs": 30, "learning_rate": 0.01, "batch_size": 4, "warmup_ratio": 0.0, "save_steps": 1000,
            "logging_steps": 5, "seed": 13}}))
    pairs = training_pairs(config)
    assert sorted((source, query) for source, _, query in pairs) == [
        ("miracl:en", "highest mountain"), ("miracl:en", "longest river in Africa"),
        ("miracl:sw", "Kilimanjaro"), ("miracl:sw", "mto mrefu zaidi")]  # the judged positives of dev

    def mean_score(path):
        teacher = QueryGeneratorTeacher(str(path), TeacherParams(kind="query-generator", max_length=64))
        return sum(teacher.score([(q, p) for _, p, q in pairs])) / len(pairs)

    out = train(config)
    assert out == model_dir(config)
    assert mean_score(out) > mean_score(config.work_dir / "models" / "tiny-t5") + 1.0
    stamps = [(p / "model.safetensors").stat().st_mtime_ns for p in (out, config.work_dir / "models" / "tiny-t5")]
    assert train(config) == out  # same inputs: neither the generator nor its starting point is built again
    assert [(p / "model.safetensors").stat().st_mtime_ns for p in (out, config.work_dir / "models" / "tiny-t5")] == stamps
