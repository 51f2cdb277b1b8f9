"""Rerank each language's BM25 candidates with a trained cross-encoder.

    python -m stages.rerank_ce --model ce --lang sw --split "dev test-a"     # runs/ce/run.ce.sw.dev.txt ...
    python -m stages.rerank_ce --model ce-nmt ...                           # the model before MIRACL

For each language and split: the BM25 run's top `rerank_depth` hits, each passage's title and text,
scored in batches sorted by length (little padding), with no gradients and in bfloat16 on a GPU.
The run keeps exactly the BM25 candidate set; ties are broken by docid. A candidate missing from the
corpus is an error naming it. Each run is written under a temporary name, so an interrupted stage
keeps the languages and splits it finished, and a rerun skips runs whose inputs are unchanged.
"""

from __future__ import annotations

import sys

from stages.cli import rerank_main
from stages.retrieval.rerank_ce import rerank_batch


def main(argv: list[str] | None = None) -> int:
    return rerank_main(argv, sys.modules[__name__], rerank_batch, "ce", "ce, ce-nmt")


if __name__ == "__main__":
    sys.exit(main())
