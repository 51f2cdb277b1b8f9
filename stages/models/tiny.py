"""The project's own tiny XLM-R-shaped model, the offline starting point (`python -m stages.tiny_model` builds it).

A sentencepiece unigram vocabulary trained on the collection's passages and topics (every language of the
sample, plus the translated training data), wrapped as XLM-R's tokenizer, and a randomly initialised XLM-R
of a few layers with a one-logit head, saved like any Hugging Face model.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path

from stages.config import Config, TinyModelParams, plain
from stages.formats import ReleaseLayout, iter_corpus
from stages.formats.mmarco import MMarcoLayout
from stages.table import recorded_config
from stages.training import save_model
from stages.uptodate import unchanged

log = logging.getLogger("stages.models.tiny")


NAME = "tiny-xlmr"


def model_dir(config: Config) -> Path:
    return config.own_models_dir / NAME


def training_text(config: Config) -> Iterator[str]:
    """Passages and topics of every language, then the translated training collections."""
    layout = ReleaseLayout(config.data_root)
    for lang in config.languages:
        if layout.corpus_dir(lang).is_dir():
            for _, _, passage in iter_corpus(layout.corpus_dir(lang)):
                yield passage.title
                yield passage.text
        for split in config.languages[lang].splits:
            if layout.topics_path(lang, split).is_file():
                yield from layout.topics(lang, split).values()
    nmt = config.cross_encoder.nmt
    mmarco = MMarcoLayout(nmt.root, nmt.translation)
    for language in sorted(nmt.languages):
        yield from mmarco.collection(language).values()
    for language in sorted(nmt.languages):
        yield from mmarco.queries(language).values()


def xlmr_vocabulary(spm_model: Path) -> list[tuple[str, float]]:
    """XLM-R's id layout over a sentencepiece model: <s> <pad> </s> <unk>, the pieces, <mask>."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(spm_model))
    # sentencepiece's own ids 0-2 are <unk> <s> </s>; XLM-R (fairseq) puts its four specials first.
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(3, sp.get_piece_size())]
    return [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + pieces + [("<mask>", 0.0)]


def build_tiny_model(
    texts: list[str], params: TinyModelParams, out: Path, text_sha256: str = "", recorded: dict | None = None
) -> Path:
    """Train the vocabulary, initialise the model with a fixed seed, save both to `out`."""
    import sentencepiece
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification, XLMRobertaTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "spm"
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(texts),
            model_prefix=str(prefix),
            vocab_size=params.vocab_size,
            model_type="unigram",
            character_coverage=0.9995,
            hard_vocab_limit=False,
            num_threads=1,
            seed_sentencepiece_size=100_000,
            shuffle_input_sentence=False,
            minloglevel=2,
        )
        tokenizer = XLMRobertaTokenizer(vocab=xlmr_vocabulary(prefix.with_suffix(".model")))
    torch.manual_seed(params.seed)
    model = XLMRobertaForSequenceClassification(
        XLMRobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=params.hidden,
            num_hidden_layers=params.layers,
            num_attention_heads=params.heads,
            intermediate_size=params.intermediate,
            max_position_embeddings=params.max_length + 2,  # RoBERTa positions start after the padding id
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    return save_model(
        lambda path: (model.save_pretrained(path), tokenizer.save_pretrained(path)),
        out,
        {
            "stage": "stages.tiny_model",
            "texts": len(texts),
            "inputs": {"params": plain(params), "text_sha256": text_sha256} | (recorded or {}),
        },
        record_name="built_by.json",
    )


def ensure_tiny_model(config: Config, touch: bool = False) -> Path:
    """The tiny model, built unless one from the same parameters and text exists; `touch`: its own stage
    (make asked for it), which marks it as up to date, not a stage that loads it."""
    out = model_dir(config)
    texts = list(training_text(config))
    text_sha256 = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()
    recorded = recorded_config(config, "tiny-model")
    inputs = {"params": plain(config.tiny_model), "text_sha256": text_sha256} | recorded
    if unchanged(out / "built_by.json", inputs, out / "config.json", touch):
        return out
    log.info("building %s from %d texts", out, len(texts))
    return build_tiny_model(texts, config.tiny_model, out, text_sha256, recorded)
