"""Gather each language's fused test run into a validated leaderboard bundle with a manifest and a zip.

    python -m submissions.package --lang all        # what `make submission LANG=all` ends with

For every selected language and each of its test splits (test-a, or test-b for de and yo, as
configured) that has topics: the submitted system's run (`submission.system`: a system, or `auto` for
the best dev estimate, submissions.choose) is rewritten as
`run.miracl.<tag>.<lang>.<split>.txt` with the submission's tag and at most `hits` hits per query,
then validated against the split's topics and the corpus. Only when every file passes is the bundle
moved into place (`work/<collection>/submissions/<tag>.<selection>/`) beside its zip. The manifest
names the git commit, the config, and every run that went into each file with its hash and metadata
(fusion parameters, models), so a leaderboard number can be traced back to what produced it.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from stages.cli import run_stage
from stages.config import REPO_ROOT, Config, ConfigError, add_config_arguments, config_from_args, plain
from stages.formats import ReleaseLayout, read_run, write_run
from stages.formats.jsonfile import write_json
from stages.formats.hashing import file_sha256 as sha256
from stages.formats.runs import read_metadata
from submissions.choose import submitted_system
from submissions.validate import corpus_docids, validate_run

log = logging.getLogger("submissions.package")


class SubmissionInvalid(RuntimeError):
    """At least one file of the bundle failed validation; nothing was packaged."""


def test_splits(config: Config, layout: ReleaseLayout, lang: str) -> list[str]:
    return [s for s in config.languages[lang].splits if s.startswith("test") and layout.topics_path(lang, s).is_file()]


def git_state() -> dict:
    def git(*args):
        result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True)
        return result.stdout.strip() if result.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit or "unknown (not a git checkout)", "uncommitted_changes": bool(status)}


def traced_inputs(run_file: Path) -> dict:
    """The run's metadata and, one level down, each of its input runs' hash and metadata."""
    meta = read_metadata(run_file) or {}
    inputs = {}
    for system, recorded in ((meta.get("inputs") or {}).get("runs") or {}).items():
        path = Path(recorded["path"])
        inputs[system] = {"path": str(path), "sha256": recorded["sha256"],
                          "unchanged_since_fusion": path.is_file() and sha256(path) == recorded["sha256"],
                          "metadata": read_metadata(path)}
    return {"path": str(run_file), "sha256": sha256(run_file), "metadata": meta, "inputs": inputs}


def selection_name(config: Config, langs: list[str]) -> str:
    return "all" if langs == list(config.languages) else "-".join(langs)


def package(config: Config, langs: list[str]) -> tuple[Path, Path]:
    """Write, validate and bundle the test runs of `langs`; returns (bundle folder, zip)."""
    sub = config.submission
    layout = ReleaseLayout(config.data_root)
    system, choice = submitted_system(config, langs)
    name = f"{sub.tag}.{selection_name(config, langs)}"
    root = config.work_dir / "submissions"
    staging = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    files, problems = [], []
    try:
        for lang in langs:
            splits = test_splits(config, layout, lang)
            if not splits:
                log.warning("%s: no test split with topics; nothing to submit for it", lang)
            docids = corpus_docids(layout, lang) if splits else set()
            for split in splits:
                source = config.run_path(system, lang, split)
                if not source.is_file():
                    raise ConfigError(f"{lang} {split}: no {system} run at {source}; `make submission` builds it")
                target = staging / f"run.miracl.{sub.tag}.{lang}.{split}.txt"
                write_run(read_run(source), target, tag=sub.tag, depth=config.fusion.hits)
                report = validate_run(target, layout.topics(lang, split), docids, config.fusion.hits)
                problems += report.problems
                files.append({"file": target.name, "language": lang, "split": split, "queries": report.queries,
                              "lines": report.lines, "sha256": sha256(target), "source": traced_inputs(source)})
                log.info("%s %s: %d queries, %s", lang, split, report.queries, "valid" if report.ok else "INVALID")
        if problems:
            raise SubmissionInvalid("the submission failed validation; nothing was packaged:\n  " + "\n  ".join(problems))
        if not files:
            raise ConfigError(f"no test runs to submit for {' '.join(langs)}")
        write_json(staging / "manifest.json", {
            "tag": sub.tag, "languages": langs, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "git": git_state(), "config_file": str(config.source), "config": plain(config), "system": system,
            "choice": choice, "files": files})
        bundle, archive = root / name, root / f"{name}.zip"
        staging_zip = root / f".{name}.zip.tmp-{os.getpid()}"
        with zipfile.ZipFile(staging_zip, "w", zipfile.ZIP_DEFLATED) as zipped:
            for path in sorted(staging.iterdir()):
                zipped.write(path, arcname=path.name)
        shutil.rmtree(bundle, ignore_errors=True)
        staging.rename(bundle)
        staging_zip.replace(archive)
        return bundle, archive
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m submissions.package", description=__doc__.splitlines()[0])
    add_config_arguments(parser, split=False)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        bundle, archive = package(config, config.select_languages(args.lang))
        print(f"submission bundle: {bundle}\nready to upload:   {archive}")

    return run_stage(log, body, errors=(SubmissionInvalid,))


if __name__ == "__main__":
    sys.exit(main())
