"""Retrieval and search: BM25 indexes and runs, dense encoding into shards and faiss search, the rerank loop
over BM25's shortlist with both rerankers, and evaluation.

bm25 (Lucene indexes and BM25 / RM3 runs), dense (the collection encoded in float16 shards; flat, IVF, HNSW
and MaxSim search), shortlist (BM25's candidates per query and the per-split rerank loop), rerank_ce and
rerank_bi (each reranker's scoring of a shortlist), evaluation (ranx metrics, trec_eval -c).
"""
