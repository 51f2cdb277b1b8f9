"""The table of stages (stages/plan.py): the Makefile's rules and the config stamps that come from it."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest
import yaml

from stages.config import config_chain, load_config
from stages.formats import ReleaseLayout
from stages.plan import make_vars
from stages.table import POOLED, Stage, config_values, model_file, stage_splits, stage_table
from tests.helpers import REPO, TINY_LANGUAGES, make_release, write_config, write_lines
from tests.test_makefile import make


def two_configs(tmp_path):
    """A parent config on a two-language release, and a child that only extends it."""
    make_release(tmp_path / "data")
    parent_keys = {
        "work_root": str(tmp_path / "work"),
        "data_root": str(tmp_path / "data"),
        "languages": TINY_LANGUAGES,
    }
    parent = write_config(tmp_path / "parent.yaml", **parent_keys)
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": str(parent)}), encoding="utf-8")
    return parent, child


def edit(config_file, section: str, key: str, value) -> None:
    data = yaml.safe_load(config_file.read_text(encoding="utf-8"))
    data.setdefault(section, {})[key] = value
    config_file.write_text(yaml.safe_dump(data), encoding="utf-8")


def stages_made(child, tmp_path, goals: list[str]) -> set[str]:
    """The table's stages that `make <goals>` ran, each standing in by tests/fake_stage.py."""
    wrapper, log = tmp_path / "python", tmp_path / "stages.log"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} {REPO / "tests" / "fake_stage.py"} "$@"\n')
    wrapper.chmod(0o755)
    log.write_text("")
    result = subprocess.run(
        ["make", "--no-print-directory", *goals, f"CONFIG={child}", f"PY={wrapper}", f"PLAN_DIR={tmp_path / 'plan'}"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if not k.startswith(("MAKE", "PIPELINE_"))}
        | {"FAKE_STAGE_LOG": str(log)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return set(log.read_text().split())


def test_an_edit_to_a_parent_config_makes_out_of_date_exactly_the_stages_that_read_the_key(tmp_path):
    parent, child = two_configs(tmp_path)
    config = load_config(child)
    table = stage_table(config)
    outputs = [str(p) for stage in table.values() for lang in stage.languages(config) for p in stage.outputs(lang)]
    assert stages_made(child, tmp_path, outputs) == set(table)
    assert stages_made(child, tmp_path, outputs) == set()

    edit(parent, "bm25", "search_threads", 1)  # the speed of a search, not its run
    assert stages_made(child, tmp_path, outputs) == set()

    edit(parent, "cross_encoder", "rerank_depth", 7)
    assert stages_made(child, tmp_path, outputs) == {
        "rerank-ce-nmt",
        "rerank-ce",
        # the fused systems include ce: its dev runs are tuned on, its runs fused
        "tune-pooled",
        "tune",
        "fuse",
    }

    edit(parent, "bm25", "k1", 1.5)
    # BM25 feeds the rerankers, the models trained on BM25 negatives (so dense retrieval too) and fusion;
    # the models that read no BM25 run are left alone.
    assert stages_made(child, tmp_path, outputs) == set(table) - {
        "tiny-model",
        "ce-nmt-model",
        "bi-init-model",
        "qgen-model",
    }


def test_a_stage_is_asked_for_the_splits_it_writes_and_fusion_for_those_all_its_inputs_have(tmp_path):
    _, child = two_configs(tmp_path)
    edit(child, "bi_encoder", "miracl", {"split": "dev"})  # the bi-encoder trained on dev: its runs leave dev out
    config = load_config(child)
    table = stage_table(config)
    assert table["bm25"].splits("sw") == ["train", "dev"]  # no test-a topics in the release
    assert table["rerank-ce"].splits("sw") == ["dev"]
    assert table["rerank-bi"].splits("sw") == table["dense"].splits("sw") == ["train"]
    assert table["fuse"].splits("sw") == []  # ce lacks train, bi and dense lack dev
    assert stage_splits(config, "rerank-ce", "sw", "dev train") == ["dev"]
    result = make("-n", "dense-runs", f"CONFIG={child}", "LANG=sw")
    assert '--lang "sw" --split "train"' in result.stdout


def test_tuning_reads_the_pooled_parameters_only_for_languages_with_too_few_dev_queries(tmp_path):
    _, child = two_configs(tmp_path)
    config = load_config(child)
    tune = stage_table(config)["tune"]
    pooled = config.work_dir / "fusion" / config.fusion.name / f"params.{POOLED}.yaml"
    assert config.fusion.tune.min_queries > 2  # two judged dev queries per language in the release
    assert all(pooled in tune.inputs(lang) for lang in ("en", "sw"))
    edit(child, "fusion", "tune", {"min_queries": 2})
    config = load_config(child)
    assert all(pooled not in stage_table(config)["tune"].inputs(lang) for lang in ("en", "sw"))


@pytest.mark.slow
def test_every_output_the_table_promises_is_written(tmp_path):
    _, child = two_configs(tmp_path)
    layout = ReleaseLayout(tmp_path / "data")
    write_lines(layout.qrels_path("en", "train"), ["13 Q0 1#1 1", "13 Q0 1#0 0"])  # the models train on these
    write_lines(layout.qrels_path("sw", "train"), ["23 Q0 9#1 1", "23 Q0 9#0 0"])
    edit(child, "fusion", "tune", {"min_queries": 2})
    edit(child, "cross_encoder", "negatives", 1)  # four passages a language: a group of 1 + 3 is rarely found
    edit(child, "bi_encoder", "negatives", 1)
    config = load_config(child)
    promised = [p for s in stage_table(config).values() for lang in s.languages(config) for p in s.outputs(lang)]
    result = make(*map(str, promised), f"CONFIG={child}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    # tiny model 1, bm25 and rm3 2 x 2 (train, dev), 6 models, 5 rerankers x 2 (dev), dense 2, tuning 1 + 2, fused 2
    assert len(promised) == 1 + 4 + 4 + 6 + 10 + 2 + 3 + 2
    assert [p for p in promised if not p.is_file()] == []


def test_the_plan_lists_languages_and_splits(sample_config):
    text = make_vars(sample_config, sample_config.work_dir / "stamps" / "x")
    assert f"ALL_LANGS := {' '.join(sample_config.languages)}" in text
    assert "SPLITS_yo := dev test-b" in text and "stage_splits_rerank-ce_yo := dev test-b" in text


def test_distillation_waits_for_the_alignment_generator_only_when_the_task_is_on(sample_config):
    def with_alignment(weight):
        kd = sample_config.bi_encoder.distillation
        kd = dataclasses.replace(kd, query_alignment=dataclasses.replace(kd.query_alignment, weight=weight))
        bi = dataclasses.replace(sample_config.bi_encoder, distillation=kd)
        return stage_table(dataclasses.replace(sample_config, bi_encoder=bi))["bi-kd-model"].inputs("")

    generator = model_file(sample_config, "qgen")  # the task's default generator: trained:qgen
    assert generator in with_alignment(0.5) and generator not in with_alignment(0.0)


def test_a_config_chain_lists_every_parent(tmp_path):
    _, child = two_configs(tmp_path)
    assert [p.name for p in config_chain(child)] == ["child.yaml", "parent.yaml", "tiny.yaml", "sample.yaml"]


def test_the_training_stages_hash_the_languages_splits_and_their_own_model_mapping(tmp_path):
    _, child = two_configs(tmp_path)
    edit(child, "model_paths", "tiny", "tiny")  # a mapping entry the cross-encoder's base reads
    config = load_config(child)
    table = stage_table(config)
    for name in ("tiny-model", "ce-model", "bi-kd-model", "bi-model", "qgen-model", "tune"):
        assert config_values(config, table[name])["languages.*.splits"] == {
            lang: ["train", "dev", "test-a"]
            for lang in ("en", "sw")  # as configured, with topics or not
        }
    assert config_values(config, table["ce-nmt-model"])["model_paths[tiny]"] == "tiny"
    teacher = config.bi_encoder.teacher.model
    assert config_values(config, table["bi-kd-model"])[f"model_paths[{teacher}]"] is None  # read, and unmapped
    assert "bi_encoder.distillation.training.seed" in config_values(config, table["bi-init-model"])


def test_a_second_config_over_the_same_work_folder_does_not_take_the_first_ones_outputs(tmp_path):
    parent, child = two_configs(tmp_path)
    config = load_config(child)
    table = stage_table(config)
    outputs = [str(p) for stage in table.values() for lang in stage.languages(config) for p in stage.outputs(lang)]
    assert stages_made(child, tmp_path, outputs) == set(table)
    # the stand-in stages record nothing, so nothing says these outputs were made from the other config's values
    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({"extends": str(parent), "cross_encoder": {"rerank_depth": 7}}), encoding="utf-8")
    assert stages_made(other, tmp_path, outputs) == set(table)
    assert stages_made(other, tmp_path, outputs) == set()


def test_each_models_folder_has_its_own_plan(tmp_path):
    _, child = two_configs(tmp_path)
    plan_dir = tmp_path / "plan"
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        result = make(
            "-n", "rerank-ce-runs", f"CONFIG={child}", f"MODELS={tmp_path / name}", "LANG=en", plan_dir=plan_dir
        )
        assert f"no model at {tmp_path / name}/ce/training.json" in result.stdout + result.stderr


def test_a_row_of_an_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind must be one of one, language, group"):
        Stage(name="x", command="stages.x", kind="grouped", hashes=(), outputs=list, inputs=list)
