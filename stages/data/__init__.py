"""Training data: what each training step reads, built from the collection, mMARCO and parallel text.

passages (the text a model reads of a passage, and fetching those of a set of docids), groups (the
cross-encoder's groups: a query, a positive, n negatives), parallel_queries (parallel queries with the
candidates teacher and student both score, for distillation), parallel_text (the token task's parallel
text), generator_pairs (the query generator's (passage, query) pairs).
"""
