"""The query generator: its teacher score is the query's summed token log-probabilities given the prompted
passage, without gradient; its training pairs name the query's language; its generation is greedy."""

import pytest
import torch

from stages.config import TeacherParams, TinyModelParams
from stages.models.generator import (
    build_tiny_generator,
    generate_queries,
    generator_input,
    log_likelihoods,
    query_labels,
)
from stages.models.teachers import QueryGeneratorTeacher

PROMPT = "{language} query: "


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
    params = TeacherParams(kind="query-generator", batch_size=2, max_length=64)
    teacher = QueryGeneratorTeacher(str(generator), params, prompt=PROMPT, language="english")
    pairs = [
        ("longest river", "The Nile river flows north through Egypt."),
        ("tides", "The moon causes tides."),
        ("Nile", "Cats sleep many hours and the Nile is long."),
    ]
    scores = teacher.score(pairs)
    for (query, passage), score in zip(pairs, scores):
        # The generator reads the prompt naming English, then the passage.
        assert score == pytest.approx(
            by_hand(teacher.model, teacher.tokenizer, query, "english query: " + passage), abs=1e-4
        )
    assert all(s < 0 for s in scores)  # log-probabilities of whole queries
    prompted = [(query, "english query: " + passage) for query, passage in pairs]
    assert scores == pytest.approx(log_likelihoods(teacher.model, teacher.tokenizer, prompted, 2, 64, 64), abs=1e-5)
    unprompted = QueryGeneratorTeacher(str(generator), params).score(pairs)
    assert unprompted == pytest.approx([by_hand(teacher.model, teacher.tokenizer, q, p) for q, p in pairs], abs=1e-4)
    assert all(abs(a - b) > 1e-3 for a, b in zip(scores, unprompted))  # the prompt is part of what it reads
    assert all(p.grad is None for p in teacher.model.parameters())
    with pytest.raises(Exception, match="representation_weight to 0"):
        teacher.embed(["longest river"])


def test_labels_are_the_query_tokens_then_end_of_sequence(generator):
    teacher = QueryGeneratorTeacher(str(generator), TeacherParams(kind="query-generator"))
    (labels,) = query_labels(teacher.tokenizer, ["mto mrefu"], 64)
    assert labels[-1] == teacher.tokenizer.eos_token_id
    assert teacher.tokenizer.decode(labels[:-1]).strip() == "mto mrefu"


def test_the_generator_input_is_the_prompt_naming_the_language_then_the_passage():
    assert generator_input(PROMPT, "swahili", "Mto Nile ni mrefu.") == "swahili query: Mto Nile ni mrefu."
    assert generator_input("", "swahili", "Mto Nile ni mrefu.") == "Mto Nile ni mrefu."


NAMED_LANGUAGES = {
    code: {"name": name, "analyzer": code, "splits": ["train", "dev", "test-a"], "probe": "Nile Afrika"}
    for code, name in (("en", "English"), ("sw", "Swahili"))
}


def tiny_release_config(tmp_path, sample_config, **query_generator):
    from stages.config import load_config
    from tests.helpers import make_release, write_config

    make_release(tmp_path / "rel")
    no_mmarco = {language: 0 for language in sample_config.query_generator.mmarco}  # the sample's are merged in
    query_generator = {"miracl_split": "dev", "max_passage_length": 64} | query_generator
    query_generator["mmarco"] = no_mmarco | query_generator.get("mmarco", {})
    return load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=NAMED_LANGUAGES,
            tiny_model={
                "vocab_size": 1500,
                "layers": 1,
                "hidden": 32,
                "heads": 2,
                "intermediate": 64,
                "max_length": 64,
            },
            query_generator=query_generator,
        )
    )


def test_training_pairs_name_the_query_language_and_cross_language_pairs_keep_the_query_id(tmp_path, sample_config):
    from stages.formats.mmarco import MMarcoLayout
    from stages.training.qgen import training_pairs_of

    config = tiny_release_config(
        tmp_path, sample_config, mmarco={"english": 2, "spanish": 2}, mmarco_cross_languages=["english"]
    )
    pairs = training_pairs_of(config)
    assert [(source, language) for source, language, _, _ in pairs] == [("mmarco:english", "english")] * 2 + [
        ("mmarco:spanish", "spanish")
    ] * 2 + [("mmarco:spanish>english", "english")] * 2 + [("miracl:en", "english")] * 2 + [
        ("miracl:sw", "swahili")
    ] * 2  # MIRACL: the language's name in lower case
    english, spanish, cross = pairs[0:2], pairs[2:4], pairs[4:6]
    mmarco = MMarcoLayout(config.cross_encoder.nmt.root)
    assert {p for _, _, p, _ in spanish} <= set(mmarco.collection("spanish").values())
    # a Spanish passage with the English version of its own query (the ids are parallel)
    assert [(p, q) for _, _, p, q in cross] == [(sp, eq) for (_, _, sp, _), (_, _, _, eq) in zip(spanish, english)]


def test_training_pairs_of_the_tiny_release_built_without_a_config(tmp_path):
    """The judged positives of each language with the split configured, in qid order; the prompt names the
    language in lower case; mMARCO off, its folder is never read."""
    from stages.config import Language, QueryGeneratorParams
    from stages.data.generator_pairs import training_pairs
    from stages.errors import InputDataError
    from stages.formats.mmarco import MMarcoLayout
    from tests.helpers import make_release

    layout, nowhere = make_release(tmp_path / "rel"), MMarcoLayout(tmp_path / "no-mmarco")
    languages = {
        "sw": Language("sw", "Swahili", "sw", ("train", "dev"), ""),
        "en": Language("en", "English", "en", ("train", "dev"), ""),
    }
    params = QueryGeneratorParams(miracl_split="dev")
    assert training_pairs(params, nowhere, layout, languages) == [
        ("miracl:sw", "swahili", "Mito: Mto Nile ni mto mrefu zaidi barani Afrika.", "mto mrefu zaidi"),
        ("miracl:sw", "swahili", "Milima: Kilimanjaro ni mlima mrefu zaidi barani Afrika.", "Kilimanjaro"),
        ("miracl:en", "english", "Rivers: The Nile is the longest river of Africa.", "longest river in Africa"),
        ("miracl:en", "english", "Mountains: Kilimanjaro is the highest mountain in Africa.", "highest mountain"),
    ]
    only_train = {code: Language(code, lang.name, code, ("train",), "") for code, lang in languages.items()}
    with pytest.raises(InputDataError, match="no \\(passage, query\\) pairs"):
        training_pairs(params, nowhere, layout, only_train)


def test_greedy_generation_is_deterministic_and_follows_the_prompt(generator):
    from stages.models.generator import load_generator

    model, tokenizer = load_generator(str(generator))
    passages = ["The Nile river flows north through Egypt.", "The moon causes tides.", "Cats sleep many hours."]
    first = generate_queries(model, tokenizer, passages, "english", PROMPT, 64, 6, 2)
    assert first == generate_queries(model, tokenizer, passages, "english", PROMPT, 64, 6, 2)
    assert len(first) == 3 and all(isinstance(q, str) and "\n" not in q and "\t" not in q for q in first)
    # the first of them is model.generate's greedy output on the prompted passage, decoded
    encoded = tokenizer(["english query: " + passages[0]], return_tensors="pt")
    reference = model.generate(**encoded, max_new_tokens=6, do_sample=False, num_beams=1)
    assert first[0] == " ".join(tokenizer.decode(reference[0], skip_special_tokens=True).split())


def test_the_generator_trains_on_miracl_positives_and_then_likes_their_queries_more(tmp_path, sample_config):
    from stages.formats.jsonfile import read_json
    from stages.models.generator import load_generator
    from stages.training.qgen import model_dir, train, training_pairs_of

    config = tiny_release_config(
        tmp_path,
        sample_config,
        training={
            "epochs": 30,
            "learning_rate": 0.01,
            "batch_size": 4,
            "warmup_ratio": 0.0,
            "save_steps": 1000,
            "logging_steps": 5,
            "seed": 13,
        },
    )
    pairs = training_pairs_of(config)
    assert sorted((source, language, query) for source, language, _, query in pairs) == [
        ("miracl:en", "english", "highest mountain"),
        ("miracl:en", "english", "longest river in Africa"),
        ("miracl:sw", "swahili", "Kilimanjaro"),
        ("miracl:sw", "swahili", "mto mrefu zaidi"),
    ]  # judged positives of dev

    def mean_score(path):
        model, tokenizer = load_generator(str(path))
        prompted = [(q, generator_input(PROMPT, language, p)) for _, language, p, q in pairs]
        return sum(log_likelihoods(model, tokenizer, prompted, 4, 64, 64)) / len(pairs)

    out = train(config)
    assert out == model_dir(config)
    assert mean_score(out) > mean_score(config.work_dir / "models" / "tiny-t5") + 1.0
    assert read_json(out / "training.json")["inputs"]["params"]["prompt"] == PROMPT  # a new prompt retrains it
    stamps = [(p / "model.safetensors").stat().st_mtime_ns for p in (out, config.work_dir / "models" / "tiny-t5")]
    assert train(config) == out  # same inputs: neither the generator nor its starting point is built again
    assert [
        (p / "model.safetensors").stat().st_mtime_ns for p in (out, config.work_dir / "models" / "tiny-t5")
    ] == stamps


def test_the_teacher_cache_of_a_generator_names_its_prompt_so_an_unprompted_cache_is_not_reused(tmp_path):
    from stages.caches.teacher import open_cache
    from stages.config import load_config
    from stages.formats.jsonfile import read_json
    from tests.helpers import write_config

    trained = tmp_path / "w" / "miracl-mini" / "models" / "qgen"
    trained.mkdir(parents=True)
    (trained / "training.json").write_text("{}")
    (trained / "model.safetensors").write_bytes(b"weights")

    def cache_of(prompt, teacher):
        config = load_config(
            write_config(
                tmp_path / "c.yaml",
                work_root=tmp_path / "w",
                query_generator={"prompt": prompt},
                bi_encoder={"teacher": teacher},
            )
        )
        return open_cache(config)[0].folder

    generator = {"kind": "query-generator", "model": "trained:qgen"}
    prompted, unprompted = cache_of(PROMPT, generator), cache_of("", generator)
    assert prompted != unprompted
    assert read_json(prompted / "teacher.json") | {"weights_sha256": None} == {
        "kind": "query-generator",
        "model": "trained:qgen",
        "weights_sha256": None,
        "max_length": 256,
        "prompt": PROMPT,
        "language": "english",
    }
    # other teachers read no prompt: their identity (and so their existing caches) stay as they were
    assert "prompt" not in read_json(
        cache_of(PROMPT, {"kind": "cross-encoder", "model": "trained:qgen"}) / "teacher.json"
    )
