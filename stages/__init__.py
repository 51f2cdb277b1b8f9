"""Pipeline stages, one module each, runnable as `python -m stages.<name>`.

Shared building blocks: `stages.config` (typed YAML config), `stages.formats` (the one reader and
writer for each file format), `stages.java` (finding and starting the JVM Pyserini needs).
"""
