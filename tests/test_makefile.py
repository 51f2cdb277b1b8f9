"""The Makefile as the pipeline's map: language selection, the locale, file targets, fan-out."""

import json
import os
import subprocess
import tempfile

import pytest
import yaml

from tests.helpers import REPO, TINY_LANGUAGES, make_release, write_config

SAMPLE_LANGS = "ar bn en es fa fi fr hi id ja ko ru sw te th zh de yo".split()


def make(*args, env_lang="en_US.UTF-8", timeout=600, plan_dir=None, verbose=True):
    """make in the repository; verbose (VERBOSE=1: the commands echoed) unless a test is about the quiet output."""
    env = dict(os.environ, LANG=env_lang)
    for name in ("MAKEFLAGS", "PIPELINE_OUTPUT", "PIPELINE_LOG_DIR", "PIPELINE_FRONTEND"):
        env.pop(name, None)
    # Plans of throw-away configs go to a temporary folder, not to the repository's work/.make.
    plan = [f"PLAN_DIR={plan_dir or tempfile.mkdtemp(prefix='make-plan-')}"] + (["VERBOSE=1"] if verbose else [])
    return subprocess.run(
        ["make", "--no-print-directory", *args, *plan],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def bm25_commands(output: str) -> list[str]:
    return [line.split("--lang ")[1].split()[0].strip('"') for line in output.splitlines() if "-m stages.bm25" in line]


@pytest.fixture()
def empty_work_config(tmp_path):
    return write_config(tmp_path / "c.yaml", work_root=tmp_path / "work")


@pytest.mark.parametrize(
    "lang_args, expected",
    [
        ([], SAMPLE_LANGS),
        (["LANG=all"], SAMPLE_LANGS),
        (["LANG=ja yo"], ["ja", "yo"]),
        (["LANG=ja,yo"], ["ja", "yo"]),
    ],
)
def test_language_selection_from_the_command_line_only(empty_work_config, lang_args, expected):
    result = make("-n", "bm25-runs", f"CONFIG={empty_work_config}", *lang_args)
    assert result.returncode == 0, result.stderr
    assert sorted(bm25_commands(result.stdout)) == sorted(expected)


def test_a_locale_in_the_environment_is_not_a_language_selection(empty_work_config):
    result = make("-n", "bm25-runs", f"CONFIG={empty_work_config}", env_lang="ja_JP.UTF-8")
    assert sorted(bm25_commands(result.stdout)) == sorted(SAMPLE_LANGS)


def test_an_unknown_language_is_refused(empty_work_config):
    result = make("-n", "bm25-runs", f"CONFIG={empty_work_config}", "LANG=ja xx")
    assert result.returncode != 0 and "unknown language(s) in LANG: xx" in result.stderr


def test_split_selection(empty_work_config):
    result = make("-n", "bm25-runs", f"CONFIG={empty_work_config}", "LANG=ja de", "SPLIT=dev")
    # one process per language writes all its splits; SPLIT picks the runs asked for
    assert sorted(bm25_commands(result.stdout)) == ["de", "ja"]
    asked = [line for line in result.stdout.splitlines() if line.startswith("printf")][0].split()[2:]
    assert [path.rsplit("/", 1)[1] for path in asked] == ["run.bm25.ja.dev.txt", "run.bm25.de.dev.txt"]


@pytest.mark.slow
def test_recipes_run_under_a_utf8_locale_whatever_lang_says():
    result = make("doctor", "LANG=all", timeout=300)
    assert "Locale: LANG=C.UTF-8 LC_ALL=C.UTF-8" in result.stdout
    assert "file.encoding=UTF-8 sun.jnu.encoding=UTF-8" in result.stdout


@pytest.mark.slow
def test_bm25_then_eval_then_nothing_to_redo(tmp_path):
    make_release(tmp_path / "tiny")
    cfg = write_config(tmp_path / "c.yaml", work_root=tmp_path / "work", languages=TINY_LANGUAGES)
    first = make("bm25", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all")
    assert first.returncode == 0, first.stderr[-3000:]
    runs = tmp_path / "work" / "tiny" / "runs" / "bm25"
    assert sorted(p.name for p in runs.glob("*.txt")) == [
        "run.bm25.en.dev.txt",
        "run.bm25.en.train.txt",
        "run.bm25.sw.dev.txt",
        "run.bm25.sw.train.txt",
    ]
    evaluation = make("eval", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}")
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    rows = [line for line in evaluation.stdout.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:]] == ["en", "sw", "avg"]
    assert (tmp_path / "work" / "tiny" / "runs" / "eval.dev.csv").is_file()
    again = make("bm25", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all")
    assert again.returncode == 0 and "-m stages.bm25" not in again.stdout


def test_a_submission_runs_every_missing_stage_first(empty_work_config):
    result = make("-n", "submission", f"CONFIG={empty_work_config}", "LANG=sw")
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if "-m " in line and "stages.config" not in line]
    stages = [line.split("-m ")[1].split()[0] + (" rm3" if "bm25-rm3" in line else "") for line in commands]
    # the cross-encoder is fine-tuned on every language's train queries, so their BM25 runs come first
    first = {stage: stages.index(stage) for stage in dict.fromkeys(stages)}
    assert first["stages.bm25"] < first["stages.bm25 rm3"] < first["ensemble.tune"]
    assert first["stages.tiny_model"] < first["stages.train_ce"] < first["stages.rerank_ce"] < first["ensemble.tune"]
    assert first["stages.train_bi"] < first["stages.rerank_bi"] < first["stages.dense"] < first["ensemble.tune"]
    assert stages[-3:] == ["ensemble.tune", "ensemble.fusion", "submissions.package"]
    bi_steps = [line.split("--step ")[1].split()[0] for line in commands if "stages.train_bi" in line]
    assert bi_steps == ["init", "kd", "miracl"]
    assert "-m stages.rerank_bi" in result.stdout and '--model bi --lang "sw" --split "dev test-a"' in result.stdout
    # Each stage is asked for exactly the splits the table says it writes: sw has no test-b topics.
    assert "-m stages.dense" in result.stdout and '--lang "sw" --split "dev test-a"' in result.stdout
    assert "--step nmt" in result.stdout and "--step miracl" in result.stdout
    assert '--model ce --lang "sw" --split "dev test-a"' in result.stdout
    assert '--lang "sw" --split "train dev test-a"' in result.stdout


@pytest.mark.slow
def test_submission_then_nothing_to_redo_then_a_new_topics_file_redoes_its_language(tmp_path):
    make_release(tmp_path / "tiny")
    layout = __import__("stages.formats", fromlist=["ReleaseLayout"]).ReleaseLayout(tmp_path / "tiny")
    from tests.helpers import write_lines

    write_lines(layout.topics_path("en", "test-a"), ["31\tNile river", "32\tEverest"])
    write_lines(layout.topics_path("sw", "test-a"), ["41\tKilimanjaro"])
    cfg = write_config(
        tmp_path / "c.yaml",
        work_root=tmp_path / "work",
        languages=TINY_LANGUAGES,
        fusion={"systems": ["bm25", "bm25-rm3"], "tune": {"min_queries": 2}},
    )
    first = make("submission", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all")
    assert first.returncode == 0, first.stderr[-3000:]
    bundle = tmp_path / "work" / "tiny" / "submissions" / "miracl-pipeline.all"
    assert sorted(p.name for p in bundle.glob("run.*")) == [
        "run.miracl.miracl-pipeline.en.test-a.txt",
        "run.miracl.miracl-pipeline.sw.test-a.txt",
    ]
    work = tmp_path / "work" / "tiny"
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in work.rglob("*") if p.is_file()}
    again = make("submission", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all", verbose=False)
    assert again.returncode == 0 and again.stderr == ""
    assert again.stdout.splitlines() == [
        "submission: nothing changed since the bundle was made",
        f"submission bundle: {work / 'submissions' / 'miracl-pipeline.all'}/",
        f"ready to upload:   {work / 'submissions' / 'miracl-pipeline.all.zip'}",
    ]
    after = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in work.rglob("*") if p.is_file()}
    assert after == before  # not a file touched, logs included
    # a bundle made again from the same runs is the same bytes: no clock in the manifest or the zip
    archive = work / "submissions" / "miracl-pipeline.all.zip"
    archive.unlink()
    remade = make("submission", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all")
    assert remade.returncode == 0, remade.stderr[-3000:]
    assert archive.read_bytes() == before[archive][1]
    write_lines(layout.topics_path("sw", "test-a"), ["41\tKilimanjaro", "42\tMlima"])
    third = make("submission", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all")
    assert third.returncode == 0, third.stderr[-3000:]
    assert '--lang "sw"' in third.stdout and '--lang "en"' not in third.stdout
    assert "42 Q0" in (bundle / "run.miracl.miracl-pipeline.sw.test-a.txt").read_text()


def test_a_data_root_that_is_not_a_folder_stops_make_with_its_name(empty_work_config, tmp_path):
    result = make("-n", "bm25", f"CONFIG={empty_work_config}", f"DATA={tmp_path / 'nowhere'}", plan_dir=tmp_path)
    assert result.returncode != 0
    # one line, make's own: no plan is made, so nothing complains about a missing one after it
    assert result.stderr.splitlines() == [
        f"Makefile:{_line_of('is not a folder: point DATA=')}: *** DATA={tmp_path / 'nowhere'} is not a folder: point "
        "DATA= at a MIRACL release (miracl-v1.0-<lang>/, miracl-corpus-v1.0-<lang>/).  Stop."
    ]
    assert list(tmp_path.glob("*.mk*")) == []


def test_a_data_root_in_the_config_that_is_not_a_folder_is_one_error_and_no_plan_stays(tmp_path):
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "work", data_root=tmp_path / "nowhere")
    result = make("-n", "bm25", f"CONFIG={config}", plan_dir=tmp_path)
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert f"config error: the data root {tmp_path / 'nowhere'} is not a folder" in line and line.endswith("Stop.")
    assert list(tmp_path.glob("*.mk*")) == []  # the next make asks the config again


def test_a_config_the_stages_refuse_stops_make_with_their_message_once(tmp_path):
    config = write_config(tmp_path / "c.yaml", work_root=tmp_path / "work", bm25={"k1": "high"})
    result = make("-n", "bm25", f"CONFIG={config}", plan_dir=tmp_path)
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "config error:" in line and "bm25.k1: expected float, got 'high'" in line
    assert list(tmp_path.glob("*.mk*")) == []


def test_a_config_that_is_not_yaml_is_one_line_however_its_text_reads(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("bm25:\n  k1: [0.9\nendef\n  b: $(shell true)\n", encoding="utf-8")
    result = make("-n", "bm25", f"CONFIG={config}", plan_dir=tmp_path)
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert f"config error: {config}: not valid YAML" in line and line.endswith("Stop.")
    assert list(tmp_path.glob("*.mk*")) == []


def _line_of(text: str) -> int:
    """The Makefile line that holds `text` (make's messages name it)."""
    lines = (REPO / "Makefile").read_text().splitlines()
    return next(number for number, line in enumerate(lines, start=1) if text in line)


def test_the_query_generator_recipe_trains_its_teacher_before_distilling_under_its_own_names(tmp_path):
    config = tmp_path / "qgen.yaml"
    config.write_text(f"extends: {REPO / 'configs' / 'recipes' / 'qgen.yaml'}\nwork_root: {tmp_path / 'work'}\n")
    result = make("-n", "rerank-bi", f"CONFIG={config}", "LANG=sw")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "-m stages." in line and "stages.config" not in line]
    order = [
        line.split("-m ")[1].split()[0] + (" " + line.split("--step ")[1].split()[0] if "--step" in line else "")
        for line in lines
    ]
    assert order.index("stages.train_qgen") < order.index("stages.train_bi kd") < order.index("stages.train_bi miracl")
    assert '--model bi-qgen --lang "sw"' in result.stdout and '--model bi-qgen-kd --lang "sw"' in result.stdout
    assert "models/bi/" not in result.stdout and "--model bi " not in result.stdout


@pytest.mark.parametrize("weight, trains_generator", [(0.5, True), (0.0, False)])
def test_the_query_alignment_generator_is_trained_before_distilling_when_the_task_is_on(
    tmp_path, weight, trains_generator
):
    # The default (bi-encoder) teacher: only the alignment task asks for the trained generator.
    config = write_config(
        tmp_path / "c.yaml",
        work_root=tmp_path / "work",
        bi_encoder={"distillation": {"query_alignment": {"weight": weight, "generator": "trained:qgen"}}},
    )
    result = make("-n", "train-bi", f"CONFIG={config}")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "-m stages." in line and "stages.config" not in line]
    order = [
        line.split("-m ")[1].split()[0] + (" " + line.split("--step ")[1].split()[0] if "--step" in line else "")
        for line in lines
    ]
    assert ("stages.train_qgen" in order) == trains_generator
    if trains_generator:
        assert order.index("stages.train_qgen") < order.index("stages.train_bi kd")


def test_the_token_task_makes_distillation_depend_on_its_parallel_files(tmp_path):
    missing = tmp_path / "sw.tsv"
    config = write_config(
        tmp_path / "c.yaml",
        work_root=tmp_path / "work",
        bi_encoder={"distillation": {"token": {"weight": 1.0, "parallel_files": {"sw": str(missing)}}}},
    )
    result = make("-n", "train-bi", f"CONFIG={config}")
    assert result.returncode != 0 and str(missing) in result.stderr  # a prerequisite of the kd model
    missing.write_text("The river.\tMto.\n", encoding="utf-8")
    result = make("-n", "train-bi", f"CONFIG={config}")
    assert result.returncode == 0, result.stderr
    assert "stages.train_bi --config" in result.stdout and "--step kd" in result.stdout


def test_nproc_launches_the_training_rows_under_torchrun_and_nothing_else(empty_work_config, tmp_path, monkeypatch):
    def commands(result, module):
        assert result.returncode == 0, result.stderr
        return [line for line in result.stdout.splitlines() if f"-m {module} " in line]

    monkeypatch.setenv("NPROC", "3")  # from the environment (a build script's) it is not a launch request
    plain = make("-n", "train-ce", f"CONFIG={empty_work_config}", plan_dir=tmp_path)
    assert "torchrun" not in plain.stdout
    assert [c.split(" -m ")[0] for c in commands(plain, "stages.train_ce")] == [".venv/bin/python"] * 2
    one_host = make("-n", "train-ce", f"CONFIG={empty_work_config}", "NPROC=2", plan_dir=tmp_path)
    launched = commands(one_host, "stages.train_ce")  # VERBOSE=1: torchrun's warnings too (LOGLEVEL)
    launcher = "LOGLEVEL=WARNING .venv/bin/torchrun --nproc_per_node=2 --standalone -m stages.train_ce --config"
    assert len(launched) == 2 and all(command.startswith(launcher) for command in launched)
    assert commands(one_host, "stages.tiny_model")[0].startswith(".venv/bin/python -m")  # not a training row
    hosts = make(
        "-n",
        "train-ce",
        f"CONFIG={empty_work_config}",
        "NPROC=4",
        "NNODES=2",
        "NODE_RANK=1",
        "MASTER_ADDR=10.0.0.1",
        plan_dir=tmp_path,
    )
    hosted = commands(hosts, "stages.train_ce")
    host_flags = "--nproc_per_node=4 --nnodes=2 --node_rank=1 --master_addr=10.0.0.1 --master_port=29500 -m"
    assert len(hosted) == 2 and all(host_flags in command for command in hosted)
    assert "make --no-print-directory -j1 " in hosts.stdout  # every host trains the same steps in the same order
    for args, message in (
        (["NPROC=0"], "NPROC=0: give the number of training processes per host, a positive integer"),
        (["NPROC=two"], "NPROC=two: give the number"),
        (["NNODES=2"], "NNODES=2 needs NPROC="),
        (["NPROC=2", "NNODES=2", "MASTER_ADDR=h"], "NNODES=2 needs NODE_RANK="),
        (["NPROC=2", "NNODES=2", "NODE_RANK=0"], "NNODES=2 needs MASTER_ADDR="),
    ):
        refused = make("-n", "train-ce", f"CONFIG={empty_work_config}", *args, plan_dir=tmp_path)
        assert refused.returncode != 0 and message in refused.stderr, (args, refused.stderr)


def test_models_from_another_collection_are_inputs_never_trained(empty_work_config, tmp_path):
    elsewhere = tmp_path / "other" / "models"
    elsewhere.mkdir(parents=True)
    result = make(
        "-n",
        "rerank-ce",
        "rerank-bi",
        "dense",
        f"CONFIG={empty_work_config}",
        f"MODELS={elsewhere}",
        "LANG=sw",
        plan_dir=tmp_path,
    )
    # make -n still lists the missing models' recipes: they are the error that names the folder, not training
    assert "-m stages.train_ce" not in result.stdout and "-m stages.train_bi" not in result.stdout
    assert "-m stages.tiny_model" not in result.stdout
    assert f"no model at {elsewhere}/ce/training.json: MODELS=" in result.stdout
    # the model file alone: its rule has no prerequisites under MODELS, so nothing else is built first
    run = make(
        str(elsewhere / "ce" / "training.json"), f"CONFIG={empty_work_config}", f"MODELS={elsewhere}", plan_dir=tmp_path
    )
    assert run.returncode != 0 and f"no model at {elsewhere}/ce/training.json" in run.stderr
    assert "train them there: make train-ce train-bi" in run.stderr
    assert not (tmp_path / "work").exists() or not list((tmp_path / "work").rglob("training.json"))


def test_training_under_models_of_another_collection_is_refused(empty_work_config, tmp_path):
    (tmp_path / "m").mkdir()
    result = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "python"),
            "-m",
            "stages.train_ce",
            "--config",
            str(empty_work_config),
            "--models",
            str(tmp_path / "m"),
            "--step",
            "nmt",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert f"MODELS={tmp_path / 'm'} is for reranking and retrieval" in result.stderr


@pytest.mark.slow
def test_a_cross_encoder_trained_on_one_collection_reranks_a_dev_only_one(tmp_path):
    make_release(tmp_path / "a")
    layout_b = make_release(tmp_path / "b")
    for lang in ("en", "sw"):
        layout_b.topics_path(lang, "train").unlink()
    train_cfg = write_config(
        tmp_path / "a.yaml",
        work_root=tmp_path / "work",
        languages=TINY_LANGUAGES,
        cross_encoder={
            "nmt_training": {"epochs": 1},
            "miracl_training": {"epochs": 1},
            "negatives": 1,
            "miracl": {"split": "dev"},
        },
    )  # the tiny release judges dev only
    trained = make("train-ce", f"CONFIG={train_cfg}", f"DATA={tmp_path / 'a'}", "LANG=all", plan_dir=tmp_path)
    assert trained.returncode == 0, trained.stderr[-3000:]
    models = tmp_path / "work" / "a" / "models"
    assert (models / "ce" / "training.json").is_file()

    languages_b = {code: dict(language, splits=["dev"]) for code, language in TINY_LANGUAGES.items()}
    cfg_b = write_config(tmp_path / "b.yaml", work_root=tmp_path / "work", languages=languages_b)
    reranked = make(
        "rerank-ce",
        "eval",
        f"CONFIG={cfg_b}",
        f"DATA={tmp_path / 'b'}",
        f"MODELS={models}",
        "LANG=all",
        plan_dir=tmp_path,
    )
    assert reranked.returncode == 0, reranked.stderr[-3000:]
    assert "-m stages.train_ce" not in reranked.stdout
    from stages.formats.runs import read_metadata

    run_b = tmp_path / "work" / "b" / "runs" / "ce" / "run.ce.sw.dev.txt"
    metadata = read_metadata(run_b)
    assert metadata["collection"] == "b"
    assert metadata["models"] == {"folder": str(models), "trained_on": "a"}
    assert not (tmp_path / "work" / "b" / "models").exists()
    header = (tmp_path / "work" / "b" / "runs" / "eval.dev.csv").read_text().splitlines()[0].split(",")
    assert "ce nDCG@10" in header  # the evaluation of collection b lists the run made with a's model


@pytest.mark.slow
def test_the_real_configs_training_steps_run_offline_on_the_packaged_stand_in(tmp_path):
    """configs/miracl-v1.0-offline.yaml through make: both cross-encoder steps and the three bi-encoder steps,
    every hub checkpoint replaced by e5-small, shrunk to a few groups (the real settings otherwise)."""
    make_release(tmp_path / "tiny")
    offline = yaml.safe_load((REPO / "configs" / "miracl-v1.0-offline.yaml").read_text())
    real = yaml.safe_load((REPO / "configs" / "miracl-v1.0.yaml").read_text())
    only = lambda keep, names: {name: (2 if name in keep else 0) for name in names}  # noqa: E731
    small = {"batch_size": 2, "gradient_accumulation": 1, "epochs": 1, "save_steps": 1000, "logging_steps": 1}
    child = {
        "extends": str(REPO / "configs" / "miracl-v1.0-offline.yaml"),
        "work_root": str(tmp_path / "work"),
        "languages": TINY_LANGUAGES,
        "expected_scores": None,
        "jobs": 1,
        "bm25": {"index_threads": 1, "search_threads": 1},
        # the tiny release judges dev only: the MIRACL steps train on it here
        "cross_encoder": {
            "negatives": 1,
            "miracl": {"split": "dev"},
            "nmt_training": small,
            "miracl_training": small,
            "nmt": {
                "root": str(REPO / "data" / "mmarco-mini"),
                "languages": only({"english", "spanish"}, real["cross_encoder"]["nmt"]["languages"]),
            },
        },
        "bi_encoder": {
            "negatives": 1,
            "miracl": {"split": "dev"},
            "distillation": {
                "training": small,
                "data": {
                    "candidates": 2,
                    "mmarco": only({"spanish"}, real["bi_encoder"]["distillation"]["data"]["mmarco"]),
                },
            },
            "miracl_training": small,
            "teacher": {"batch_size": 8},
        },
    }
    config = tmp_path / "offline.yaml"
    config.write_text(yaml.safe_dump(child, allow_unicode=True))
    trained = make(
        "train-ce",
        "train-bi",
        f"CONFIG={config}",
        f"DATA={tmp_path / 'tiny'}",
        "LANG=all",
        timeout=1200,
        plan_dir=tmp_path,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    models = tmp_path / "work" / "tiny" / "models"
    packaged = tmp_path / "work" / "packaged" / "multilingual-e5-small"
    ce_nmt = json.loads((models / "ce-nmt" / "training.json").read_text())
    bi_init = json.loads((models / "bi-init" / "training.json").read_text())
    # the records keep the real names and the stand-in that was read
    assert ce_nmt["base_model_spec"] == real["cross_encoder"]["base_model"]
    assert offline["model_paths"][ce_nmt["base_model_spec"]] == "packaged:multilingual-e5-small"
    assert ce_nmt["inputs"]["base_model"] == str(packaged)
    assert bi_init["inputs"]["base_model"] == real["bi_encoder"]["student"]["base_model"]
    assert bi_init["base_model"] == str(packaged)
    for step in ("ce-nmt", "ce", "bi-kd", "bi"):
        record = json.loads((models / step / "training.json").read_text())
        assert record["steps"] >= 1 and any("loss" in entry for entry in record["log_history"]), step


TARGETS_WITH_A_PLAN = ["bm25", "eval", "submission", "check", "rerank-ce", "fuse", "report"]


@pytest.mark.parametrize("target", TARGETS_WITH_A_PLAN + ["doctor", "validate"])
@pytest.mark.parametrize("variable", ["LANG", "SPLIT"])
def test_an_empty_selection_is_an_error_naming_the_allowed_values_in_every_target(empty_work_config, target, variable):
    result = make("-n", target, f"CONFIG={empty_work_config}", f"{variable}=", "FILE=Makefile")
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert f"{variable}= is empty" in line
    assert ("LANG=all" in line and 'LANG="ja yo"' in line) if variable == "LANG" else "SPLIT=dev" in line


@pytest.mark.parametrize("target", TARGETS_WITH_A_PLAN)
def test_an_unknown_split_is_named_with_the_configured_ones(empty_work_config, target):
    result = make("-n", target, f"CONFIG={empty_work_config}", "SPLIT=dev nosuchsplit")
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "unknown split(s) in SPLIT: nosuchsplit;" in line and "configures: dev test-a test-b train" in line


def test_validate_names_its_missing_file_once_in_make_terms(empty_work_config, tmp_path):
    result = make("validate", f"CONFIG={empty_work_config}")
    assert result.returncode != 0
    (line,) = result.stderr.splitlines()
    assert "make validate needs FILE=<run file>" in line and "LANG=sw SPLIT=test-a" in line
    result = make("validate", f"CONFIG={empty_work_config}", f"FILE={tmp_path / 'nope.txt'}")
    (line,) = result.stderr.splitlines()
    assert f"make validate FILE={tmp_path / 'nope.txt'}: no such file" in line


def test_validate_asks_for_language_and_split_as_make_variables(empty_work_config, tmp_path):
    run = tmp_path / "my-run.txt"
    run.write_text("1 Q0 1#0 1 1.0 t\n")
    result = make("validate", f"CONFIG={empty_work_config}", f"FILE={run}", verbose=False)
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        f"config error: {run}: cannot tell language and split from the name "
        "(run.<...>.<lang>.<split>.txt); give LANG=<code> and SPLIT=<split>"
    )
    assert "--lang" not in result.stderr


def test_every_make_target_the_readme_names_is_in_make_help():
    import re

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`make ([a-z][a-z0-9-]*)", readme))
    helped = set(re.findall(r"^  make ([a-z0-9-]+)", make("help").stdout, re.M))
    assert named and named - helped == set()


@pytest.mark.slow
def test_quiet_bm25_says_one_line_per_language_and_logs_the_rest(tmp_path):
    make_release(tmp_path / "tiny")
    cfg = write_config(tmp_path / "c.yaml", work_root=tmp_path / "work", languages=TINY_LANGUAGES)
    result = make("bm25", f"CONFIG={cfg}", f"DATA={tmp_path / 'tiny'}", "LANG=all", verbose=False, plan_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["bm25 en", "bm25 sw"]
    assert all("indexed 4 passages" in line and "train dev: 3 queries searched" in line for line in lines)
    logs = tmp_path / "work" / "tiny" / "logs"
    assert sorted(p.name for p in logs.iterdir()) == ["bm25.en.log", "bm25.sw.log"]
    text = (logs / "bm25.en.log").read_text()
    assert "IndexCollection" in text and "run written to" in text  # Anserini's log and the stage's own detail
