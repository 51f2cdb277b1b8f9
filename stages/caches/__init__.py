"""On-disk caches of expensive model outputs, keyed by exactly what produced them, appended as work is done.

keys (what every cache shares: a text's key, a model's folder name, claiming a folder for one identity),
teacher (the teacher's scores and English-query embeddings), alignments (token alignments of parallel text),
generated_queries (queries the generator wrote). Their file format is stages.formats.keyed.
"""
