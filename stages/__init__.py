"""Pipeline stages, one driver module each, runnable as `python -m stages.<name>`, over library packages.

A driver parses its arguments, prints its report line and calls library code, which lives with its kind:
`stages.models` (building and loading models), `stages.retrieval` (BM25, dense search, reranking,
evaluation), `stages.data` (training data), `stages.losses`, `stages.caches` and `stages.training`. Shared
building blocks: `stages.config` (typed YAML config), `stages.formats` (the one reader and writer for each
file format), `stages.java` (finding and starting the JVM Pyserini needs). No library module imports a
driver (tests/test_imports.py).
"""
