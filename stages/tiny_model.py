"""Build the project's own tiny XLM-R-shaped encoder, the offline starting point for the rerankers.

    python -m stages.tiny_model            # -> work/<collection>/models/tiny-xlmr/

No checkpoint can be downloaded offline (tests, CI, the embedded sample), so the project makes one:
a sentencepiece unigram vocabulary trained on the collection's passages and topics (every language
of the sample, plus the translated training data), wrapped as XLM-R's tokenizer, and a randomly
initialised XLM-R of a few layers with a one-logit head. It is saved like any Hugging Face model, so
the training and reranking stages load it by path exactly as they load `xlm-roberta-base`.
"""

from __future__ import annotations

import argparse
import logging
import sys

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.models.tiny import ensure_tiny_model

log = logging.getLogger("stages.tiny_model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.tiny_model", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: print(ensure_tiny_model(config_from_args(args), touch=True)))


if __name__ == "__main__":
    sys.exit(main())
