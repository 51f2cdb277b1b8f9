"""What a stage shows: report lines on the terminal, everything else in its log file (quiet), or all (verbose)."""

import os
import subprocess
import sys
import textwrap

import pytest

from stages import console
from tests.helpers import REPO

# A stand-in stage: writes the way a JVM, a library and the stage itself do, then reports one line.
STAGE = textwrap.dedent("""
    import logging, os, sys, warnings
    from stages.cli import run_stage

    log = logging.getLogger("stages.fake")

    def body():
        os.write(1, b"INFO [main] index.IndexCollection - Anserini chatter on fd 1\\n")
        os.write(2, b"WARNING: Using incubator modules: jdk.incubator.vector\\n")
        print("a path the stage prints for scripts")
        logging.getLogger("transformers.trainer").warning("a library's warning")
        warnings.warn("a deprecation the library raises", DeprecationWarning)
        log.info("detail for the log")
        log.warning("sw dev: 1 of 8 queries retrieve nothing")
        from stages.console import say
        say("fake sw: dev: 8 queries (0.1 s)")
        if "--crash" in sys.argv:
            raise RuntimeError("the model file is truncated")

    sys.exit(run_stage(log, body))
""")


def run_fake(tmp_path, *args, quiet=True):
    script = tmp_path / "fake_stage.py"
    script.write_text(STAGE)
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO),
        PIPELINE_LOG_DIR=str(tmp_path / "logs"),
        PIPELINE_OUTPUT="quiet" if quiet else "verbose",
    )
    return subprocess.run(
        [sys.executable, str(script), "--lang", "sw", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_quiet_the_terminal_gets_the_report_line_and_the_project_warning_only(tmp_path):
    result = run_fake(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "fake sw: dev: 8 queries (0.1 s)\n"
    assert result.stderr == "warning: sw dev: 1 of 8 queries retrieve nothing\n"
    (log,) = (tmp_path / "logs").iterdir()
    assert log.name == "fake.sw.log"
    text = log.read_text()
    for line in (
        "Anserini chatter on fd 1",
        "Using incubator modules",
        "a path the stage prints",
        "a library's warning",
        "a deprecation the library raises",
        "detail for the log",
        "fake sw: dev: 8 queries",
    ):
        assert line in text


def test_a_second_run_appends_to_the_same_log(tmp_path):
    run_fake(tmp_path)
    run_fake(tmp_path)
    (log,) = (tmp_path / "logs").iterdir()
    assert log.read_text().count("==== ") == 2


def test_quiet_a_crash_is_one_line_naming_the_log_and_the_traceback_is_in_it(tmp_path):
    result = run_fake(tmp_path, "--crash")
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line.startswith("warning:")]
    assert lines[0] == "error: stages.fake failed: RuntimeError: the model file is truncated"
    assert lines[1].strip() == f"traceback and full log: {tmp_path / 'logs' / 'fake.sw.log'}"
    assert len(lines) == 2
    assert "Traceback (most recent call last)" in (tmp_path / "logs" / "fake.sw.log").read_text()


def test_verbose_shows_everything_as_before(tmp_path):
    result = run_fake(tmp_path, quiet=False)
    assert "Anserini chatter on fd 1" in result.stdout and "a path the stage prints" in result.stdout
    assert "fake sw: dev: 8 queries" in result.stdout
    assert "a library's warning" in result.stderr and "detail for the log" in result.stderr
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize(
    "argv, name",
    [
        (["--lang", "ar", "--split", "train dev"], "bm25.ar.log"),
        (["--lang", "ar", "--systems", "bm25-rm3"], "bm25.bm25-rm3.ar.log"),
        (["--model", "ce", "--lang", "ar bn en es fa"], "bm25.ce.many.log"),
        (["--step", "nmt"], "bm25.nmt.log"),
    ],
)
def test_log_names_tell_the_processes_of_a_stage_apart(argv, name):
    assert console.log_name("stages.bm25", argv) == name


def test_log_names_of_other_packages_keep_their_package():
    assert console.log_name("ensemble.tune", ["--pooled"]) == "ensemble-tune.pooled.log"


@pytest.mark.parametrize(
    "flags, beside",
    [
        ("", False),
        ("-j2 --jobserver-auth=fifo:/tmp/x", True),
        (" --jobserver-auth=3,4", True),
        ("-j1", False),
        ("--no-print-directory", False),
    ],
)
def test_parallel_make_is_recognised_from_makeflags(monkeypatch, flags, beside):
    monkeypatch.setenv("MAKEFLAGS", flags)
    assert console.beside_others() is beside


def bars_shown(makeflags: str | None) -> str:
    """Whether a quiet stage whose standard error is a terminal shows a progress bar (run in a pseudo-terminal)."""
    import pty

    code = "from stages import console; print(console.progress(range(3), desc='x').disable)"
    env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_OUTPUT="quiet")
    env.pop("MAKEFLAGS", None)
    if makeflags is not None:
        env["MAKEFLAGS"] = makeflags
    leader, follower = pty.openpty()
    try:
        result = subprocess.run(
            [sys.executable, "-c", code], stderr=follower, stdout=subprocess.PIPE, env=env, text=True, timeout=60
        )
    finally:
        os.close(follower)
        os.close(leader)
    return result.stdout.strip()


def test_quiet_progress_bars_show_on_a_terminal_unless_other_stages_run_beside():
    assert bars_shown(None) == "False"  # a terminal, alone: a bar
    assert bars_shown("-j2 --jobserver-auth=fifo:/tmp/x") == "True"  # make -j: no bar
    assert bars_shown("--no-print-directory") == "False"  # make without -j: a bar


def test_quiet_progress_bars_stay_off_a_stream_that_is_not_a_terminal(monkeypatch):
    monkeypatch.setenv("PIPELINE_OUTPUT", "quiet")
    assert console.progress(range(3), desc="x").disable is True  # pytest's captured stderr is no terminal


def test_options_are_named_as_the_user_sets_them(monkeypatch):
    monkeypatch.setenv("PIPELINE_FRONTEND", "make")
    assert console.option("lang") == "LANG="
    monkeypatch.delenv("PIPELINE_FRONTEND")
    assert console.option("lang") == "--lang"


def test_a_language_line_says_what_was_written_and_what_was_kept():
    work = console.LanguageWork("rerank ce", "sw", started=0.0)
    assert work.line() == "rerank ce sw: no runs asked for"
    work.kept.append("test-a")
    assert work.line() == "rerank ce sw: runs up to date"
    work.written["dev"] = 8
    work.count("candidates scored", 240)
    line = work.line()
    assert line.startswith("rerank ce sw: dev: 8 queries, 240 candidates scored (") and line.endswith(
        "; test-a up to date"
    )


@pytest.mark.parametrize("elapsed, text", [(0.42, "0.4 s"), (12.4, "12 s"), (185, "3 min 05 s")])
def test_durations_read_as_people_write_them(elapsed, text):
    assert console.seconds(elapsed) == text


def test_a_subprocess_in_a_restored_terminal_reaches_the_terminal_and_one_outside_the_log(tmp_path):
    script = tmp_path / "spawner.py"
    script.write_text(
        textwrap.dedent("""
        import logging, subprocess, sys
        from stages.cli import run_stage
        from stages.console import restored_terminal

        def body():
            subprocess.run(["echo", "outside: to the log"])
            with restored_terminal():
                subprocess.run(["echo", "inside: to the terminal"])
            subprocess.run(["echo", "after: to the log again"])

        sys.exit(run_stage(logging.getLogger("stages.spawner"), body))
    """)
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), PIPELINE_LOG_DIR=str(tmp_path / "logs"), PIPELINE_OUTPUT="quiet")
    result = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "inside: to the terminal\n"
    log = (tmp_path / "logs" / "spawner.log").read_text()
    assert "outside: to the log" in log and "after: to the log again" in log and "inside" not in log
