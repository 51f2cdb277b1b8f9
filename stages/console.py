"""What a person sees while the pipeline runs: a line per language of what each stage did, and nothing else.

Under make the output is quiet (`PIPELINE_OUTPUT=quiet`; `make ... VERBOSE=1` turns it off). A quiet stage
process sends its file descriptors 1 and 2 to its own log file, `work/<collection>/logs/<stage>.log`
(`PIPELINE_LOG_DIR`): the JVM's warnings, Anserini's logging, the Trainer's loss lines and progress, library
warnings and the stage's own detailed log all land there, appended run after run. What reaches the terminal:

- `say(...)`: the stage's report lines (one per language, or one for the whole stage where its work is not
  per language), on standard output;
- warnings and errors of the project's own loggers, on standard error; a failure names the log file;
- progress bars (`progress(...)`), only on a terminal and only when no other stage runs beside this one
  (under `make -j` parallel bars would write over each other; the report lines say what was done).

Run directly (`python -m stages.<name>`, or in tests) a stage is verbose, as it always was: every log line on
standard error, `say` lines on standard output.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

PROJECT_LOGGERS = ("stages", "ensemble", "submissions")
_log = logging.getLogger("stages.console")
# The terminal as the stage found it: replaced by duplicates of the original descriptors while they are
# redirected to the log file.
_console = {"out": None, "err": None, "log_file": None}


def quiet() -> bool:
    return os.environ.get("PIPELINE_OUTPUT", "verbose") == "quiet"


def console_out():
    return _console["out"] or sys.stdout


def console_err():
    return _console["err"] or sys.stderr


def log_file() -> Path | None:
    """The log this process writes to (None when verbose)."""
    return _console["log_file"]


def other_rank() -> bool:
    """A process of a torchrun launch other than rank 0, which reports for all of them."""
    return os.environ.get("RANK", "0") != "0"


def say(message: str) -> None:
    """One report line for the person running the stage (and, quiet, the same line in the log); once under
    torchrun, from rank 0."""
    if other_rank():
        return
    print(message, file=console_out(), flush=True)
    if _console["log_file"] is not None:
        _log.info("%s", message)


def seconds(elapsed: float) -> str:
    """A duration as people read it: 0.4 s, 12 s, 3 min 05 s."""
    if elapsed < 10:
        return f"{elapsed:.1f} s"
    if elapsed < 60:
        return f"{elapsed:.0f} s"
    minutes, rest = divmod(round(elapsed), 60)
    return f"{minutes} min {rest:02d} s"


class Stopwatch:
    """`with Stopwatch() as watch: ...`, then `watch.text` (see `seconds`)."""

    def __enter__(self):
        self.started = time.perf_counter()
        self.elapsed = 0.0
        return self

    def __exit__(self, *exc):
        self.elapsed = time.perf_counter() - self.started
        return False

    @property
    def text(self) -> str:
        return seconds(self.elapsed or time.perf_counter() - self.started)


@dataclass
class LanguageWork:
    """What a run-writing stage did for one language: the stage's report line for it."""

    label: str  # e.g. "rerank ce", "dense"
    lang: str
    written: dict[str, int] = field(default_factory=dict)  # split -> queries of the run written now
    kept: list[str] = field(default_factory=list)  # splits whose run was up to date
    counts: dict[str, int] = field(default_factory=dict)  # e.g. {"candidates scored": 480}
    started: float = field(default_factory=time.perf_counter)

    def count(self, what: str, n: int) -> None:
        self.counts[what] = self.counts.get(what, 0) + n

    def line(self, since: float | None = None) -> str:
        """The report line; its time runs from `since` (the previous language's line, where a stage's languages
        share one pool of workers) or from this object's creation."""
        if not self.written:
            return f"{self.label} {self.lang}: " + ("runs up to date" if self.kept else "no runs asked for")
        text = (
            f"{self.label} {self.lang}: {' '.join(self.written)}: {sum(self.written.values())} queries"
            + "".join(f", {n} {what}" for what, n in self.counts.items())
            + f" ({seconds(time.perf_counter() - (self.started if since is None else since))})"
        )
        return text + (f"; {' '.join(self.kept)} up to date" if self.kept else "")


def option(name: str) -> str:
    """How the person running the stage sets `name` (lang, split, data, config): `LANG=` under make, `--lang` else."""
    if os.environ.get("PIPELINE_FRONTEND") == "make":
        return f"{name.upper()}="
    return f"--{name}"


def beside_others() -> bool:
    """True under a parallel make (`-j` in MAKEFLAGS): other stages may be writing to the same terminal."""
    flags = os.environ.get("MAKEFLAGS", "")
    return bool(re.search(r"(^|\s)-j|--jobserver", flags)) and not re.search(r"(^|\s)-j1(\s|$)", flags)


def show_progress() -> bool:
    if not quiet():
        return True
    stream = console_err()
    return bool(getattr(stream, "isatty", lambda: False)()) and not beside_others()


def progress(iterable=None, **kwargs):
    """A tqdm bar that follows the rules above; quiet and not shown, it is a plain iterator/counter."""
    off = kwargs.pop("disable", None) is True  # True: no bar whatever the rules say
    if not quiet():
        return tqdm(iterable, disable=True if off else None, **kwargs)  # None: tqdm's rule, on a terminal only
    kwargs.setdefault("leave", False)
    return tqdm(iterable, file=console_err(), disable=off or not show_progress(), **kwargs)


def trainer_progress_flags() -> dict:
    """The Hugging Face Trainer's own bars: off when quiet (its loss lines still reach the log file)."""
    return {"disable_tqdm": True} if quiet() else {"disable_tqdm": None}


# ---------------------------------------------------------------- setting up a stage process


class _ProjectOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.split(".")[0] in PROJECT_LOGGERS


class _ConsoleFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "labelled", False):  # the message starts with its own kind (stages.errors)
            return record.getMessage()
        prefix = "error" if record.levelno >= logging.ERROR else "warning"
        return f"{prefix}: {record.getMessage()}"


def log_name(module: str, argv: list[str]) -> str:
    """The log file of a stage process: its module and what tells its runs apart (language, model, step)."""
    parts = [module.split(".")[-1] if module.startswith("stages.") else module.replace(".", "-")]
    for flag in ("--step", "--model", "--systems", "--lang", "--pooled"):
        if flag not in argv:
            continue
        if flag == "--pooled":
            parts.append("pooled")
            continue
        index = argv.index(flag)
        value = argv[index + 1] if index + 1 < len(argv) else ""
        words = value.replace(",", " ").split()
        if flag == "--lang" and len(words) > 3:
            words = ["many"]
        parts.extend(words)
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", ".".join(p for p in parts if p)) + ".log"


def _redirect_to(path: Path) -> None:
    """Point descriptors 1 and 2 at `path` (appended); keep duplicates of the terminal for the console."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    _console["out"] = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")
    _console["err"] = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    if hasattr(sys.stdout, "reconfigure"):  # a file now: keep its lines in order with stderr's
        sys.stdout.reconfigure(line_buffering=True)
    _console["log_file"] = path
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"\n==== {stamp} pid {os.getpid()}: {' '.join(sys.argv)}", flush=True)


def setup(module: str, argv: list[str] | None = None) -> None:
    """Logging and output of a stage process (see the module docstring). Handlers another tool put on the
    root logger (pytest's capture) stay; those of an earlier call are replaced."""
    argv = sys.argv[1:] if argv is None else argv
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "pipeline", False)]:
        root.removeHandler(handler)
    root.setLevel(logging.WARNING if other_rank() else logging.INFO)  # torchrun: rank 0's detail, once
    log_dir = os.environ.get("PIPELINE_LOG_DIR")
    if quiet() and log_dir and _console["log_file"] is None:
        _redirect_to(Path(log_dir) / log_name(module, argv))
    handlers = []
    if not quiet() or _console["log_file"] is not None:
        detail = logging.StreamHandler(sys.stderr)  # the log file when quiet, the terminal otherwise
        detail.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        handlers.append(detail)
    if quiet():
        terminal = logging.StreamHandler(console_err())
        terminal.setLevel(logging.ERROR if other_rank() else logging.WARNING)  # torchrun: rank 0's warnings
        terminal.addFilter(_ProjectOnly())
        terminal.setFormatter(_ConsoleFormatter())
        handlers.append(terminal)
    for handler in handlers:
        handler.pipeline = True
        root.addHandler(handler)
    logging.captureWarnings(True)


def report_crash(module: str, err: BaseException) -> None:
    """An unexpected exception: the whole traceback to the log, one line (and where the log is) to the console."""
    text = "".join(traceback.format_exception(err))
    if _console["log_file"] is not None:
        print(text, file=sys.stderr, flush=True)
        print(
            f"error: {module} failed: {type(err).__name__}: {err}\n       traceback and full log: {_console['log_file']}",
            file=console_err(),
            flush=True,
        )
    else:
        print(text, file=sys.stderr, flush=True)


def point_at_log() -> None:
    """After an error was reported: where its context is."""
    if _console["log_file"] is not None:
        print(f"       full log: {_console['log_file']}", file=console_err(), flush=True)


@contextlib.contextmanager
def restored_terminal():
    """Descriptors 1 and 2 back on the terminal for the duration (a subprocess whose output the user wants)."""
    if _console["log_file"] is None:
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    saved_out, saved_err = os.dup(1), os.dup(2)
    os.dup2(console_out().fileno(), 1)
    os.dup2(console_err().fileno(), 2)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved_out, 1)
        os.dup2(saved_err, 2)
        os.close(saved_out)
        os.close(saved_err)
