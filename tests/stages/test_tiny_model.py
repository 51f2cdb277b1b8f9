"""The project-built tiny model: XLM-R's tokenizer over a sentencepiece vocabulary, loadable by path."""

import json


def test_the_tokenizer_splits_text_as_its_sentencepiece_model_does(tiny_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    ids = tokenizer("Nile river", "Mto Nile")["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[0] == "<s>" and tokens.count("</s>") == 3  # XLM-R's pair template: <s> A </s></s> B </s>
    assert tokenizer.pad_token_id == 1 and tokenizer.unk_token_id == 3
    assert "".join(t for t in tokens if not t.startswith("<")).replace("▁", " ").split() == [
        "Nile",
        "river",
        "Mto",
        "Nile",
    ]


def test_it_loads_as_a_one_logit_cross_encoder_and_records_how_it_was_built(tiny_model):
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(str(tiny_model), num_labels=1, max_length=64)
    scores = model.predict([("Nile river", "The Nile river flows north."), ("Nile river", "Cats sleep.")])
    assert scores.shape == (2,)
    built = json.loads((tiny_model / "built_by.json").read_text())
    assert built["inputs"]["params"]["vocab_size"] == 120 and built["texts"] == 120
