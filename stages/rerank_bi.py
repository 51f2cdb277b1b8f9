"""Rerank each language's BM25 candidates with a bi-encoder student.

    python -m stages.rerank_bi --model bi --lang sw --split "dev test-a"    # runs/bi/run.bi.sw.dev.txt ...
    python -m stages.rerank_bi --model bi-kd ...      # after distillation, before MIRACL fine-tuning
    python -m stages.rerank_bi --model bi-init ...    # the student before any training

Queries and the shortlisted passages are encoded once each (queries with the query prefix and tower,
passages with the passage ones) and scored by inner product: the model's dot product, or its cosine
for a model saved with cosine similarity (stages.models.bi_encoder.encode normalises those). A multi-vector
(maxsim) student is scored by MaxSim instead: each query's token vectors against each candidate's.
The run keeps exactly BM25's candidate set, written and resumed like the cross-encoder's
(stages.retrieval.shortlist).
"""

from __future__ import annotations

import sys

from stages.cli import rerank_main
from stages.retrieval.rerank_bi import rerank_batch


def main(argv: list[str] | None = None) -> int:
    return rerank_main(argv, sys.modules[__name__], rerank_batch, "bi", "bi, bi-kd, bi-init")


if __name__ == "__main__":
    sys.exit(main())
