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
from dataclasses import dataclass
from pathlib import Path

from stages.cli import run_stage
from stages.config import REPO_ROOT, Config, add_config_arguments, config_from_args, plain
from stages.console import say
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, read_run, write_run
from stages.formats.hashing import file_sha256 as sha256
from stages.formats.jsonfile import write_json
from stages.formats.runs import read_metadata
from submissions.choose import submitted_system
from submissions.rules import LEADERBOARD_HITS, corpus_docids, validate_run

log = logging.getLogger("submissions.package")
ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold: entries carry no build time


class SubmissionInvalid(InputDataError):
    """At least one file of the bundle failed validation; nothing was packaged. The message lists each
    problem with its file."""


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
        inputs[system] = {
            "path": str(path),
            "sha256": recorded["sha256"],
            "unchanged_since_fusion": path.is_file() and sha256(path) == recorded["sha256"],
            "metadata": read_metadata(path),
        }
    return {"path": str(run_file), "sha256": sha256(run_file), "metadata": meta, "inputs": inputs}


def selection_name(config: Config, langs: list[str]) -> str:
    return "all" if set(langs) == set(config.languages) else "-".join(langs)


def created_time(files: list[dict]) -> str:
    """When the newest submitted run was written (its metadata's `written`), so an unchanged bundle rebuilt
    later is byte-identical; a run without that record counts by its file's modification time."""
    stamps = []
    for entry in files:
        source = entry["source"]
        written = (source.get("metadata") or {}).get("written")
        stamps.append(written or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(Path(source["path"]).stat().st_mtime)))
    return max(stamps)


def write_zip(folder: Path, target: Path) -> None:
    """A zip of the folder's files whose bytes depend on their names and contents only (fixed dates and modes)."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zipped:
        for path in sorted(folder.iterdir()):
            info = zipfile.ZipInfo(path.name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zipped.writestr(info, path.read_bytes())


def same_files(staged: Path, bundle: Path) -> bool:
    """True when `bundle` holds exactly the staged files with the same bytes."""
    if not bundle.is_dir():
        return False
    names = sorted(p.name for p in staged.iterdir())
    return names == sorted(p.name for p in bundle.iterdir()) and all(
        (staged / name).read_bytes() == (bundle / name).read_bytes() for name in names
    )


@dataclass
class Bundle:
    folder: Path
    archive: Path
    system: str
    choice: dict | None
    files: list[dict]
    rewritten: bool  # False: an identical bundle was already in place and was left untouched


def package(config: Config, langs: list[str]) -> Bundle:
    """Write, validate and bundle the test runs of `langs`. An identical bundle already in place is kept as it
    is (not a byte of it rewritten)."""
    sub = config.submission
    layout = ReleaseLayout(config.data_root)
    system, choice = submitted_system(config, langs)
    name = f"{sub.tag}.{selection_name(config, langs)}"
    root = config.work_dir / "submissions"
    staging = root / f".{name}.tmp-{os.getpid()}"
    staging_zip = root / f".{name}.zip.tmp-{os.getpid()}"
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
                    raise InputDataError(
                        None, None, f"{lang} {split}: no {system} run at {source}; `make submission` builds it"
                    )
                target = staging / f"run.miracl.{sub.tag}.{lang}.{split}.txt"
                write_run(read_run(source), target, tag=sub.tag, depth=LEADERBOARD_HITS)
                report = validate_run(target, layout.topics(lang, split), docids, LEADERBOARD_HITS)
                problems += report.problems
                files.append(
                    {
                        "file": target.name,
                        "language": lang,
                        "split": split,
                        "queries": report.queries,
                        "lines": report.lines,
                        "sha256": sha256(target),
                        "source": traced_inputs(source),
                    }
                )
                log.info("%s %s: %d queries, %s", lang, split, report.queries, "valid" if report.ok else "INVALID")
        if problems:
            raise SubmissionInvalid(
                None, None, "the submission failed validation; nothing was packaged:\n  " + "\n  ".join(problems)
            )
        if not files:
            raise InputDataError(None, None, f"no test runs to submit for {' '.join(langs)}")
        write_json(
            staging / "manifest.json",
            {
                "tag": sub.tag,
                "languages": langs,
                "created": created_time(files),
                "git": git_state(),
                "config_file": str(config.source),
                "config": plain(config),
                "system": system,
                "choice": choice,
                "files": files,
            },
        )
        bundle, archive = root / name, root / f"{name}.zip"
        write_zip(staging, staging_zip)
        if same_files(staging, bundle) and archive.is_file() and archive.read_bytes() == staging_zip.read_bytes():
            log.info("%s and %s are up to date", bundle, archive)
            os.utime(archive)  # newer than its inputs again (one was touched), so make stops asking for it
            return Bundle(bundle, archive, system, choice, files, rewritten=False)
        shutil.rmtree(bundle, ignore_errors=True)
        staging.rename(bundle)
        staging_zip.replace(archive)
        return Bundle(bundle, archive, system, choice, files, rewritten=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        staging_zip.unlink(missing_ok=True)


def report(bundle: Bundle) -> None:
    """The stage's last lines: what was submitted, why, and where the files are."""
    langs = list(dict.fromkeys(f["language"] for f in bundle.files))
    why = f" ({bundle.choice['reason']})" if bundle.choice else ""
    state = "written" if bundle.rewritten else "up to date"
    say(f"submission: {bundle.system}{why}")
    say(
        f"submission: {len(bundle.files)} files for {len(langs)} languages, "
        f"{sum(f['queries'] for f in bundle.files)} test queries, all valid; bundle {state}"
    )
    say(f"submission bundle: {bundle.folder}/\nready to upload:   {bundle.archive}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m submissions.package", description=__doc__.splitlines()[0])
    add_config_arguments(parser, split=False)
    args = parser.parse_args(argv)

    def body():
        config = config_from_args(args)
        report(package(config, config.select_languages(args.lang)))

    return run_stage(log, body)


if __name__ == "__main__":
    sys.exit(main())
