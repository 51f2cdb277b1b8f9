import pytest

from stages.config import ConfigError, load_config, make_vars
from tests.helpers import REPO, write_config


def test_sample_config_has_the_18_languages_with_miracl_splits(sample_config):
    assert len(sample_config.languages) == 18
    assert sample_config.languages["de"].splits == ("dev", "test-b")
    assert sample_config.languages["yo"].splits == ("dev", "test-b")
    assert sample_config.languages["ja"].splits == ("train", "dev", "test-a")
    assert sample_config.bm25.k1 == 0.9 and sample_config.bm25.b == 0.4 and sample_config.bm25.hits == 100


def test_generated_files_are_namespaced_by_collection(tmp_path):
    sample = load_config(REPO / "configs" / "sample.yaml")
    real = load_config(REPO / "configs" / "sample.yaml", data_root=tmp_path / "miracl-v1.0")
    assert sample.work_dir.name == "miracl-mini"
    assert real.work_dir.name == "miracl-v1.0"
    assert real.work_dir.parent == sample.work_dir.parent


def test_language_selection_accepts_all_lists_and_nothing(sample_config):
    assert sample_config.select_languages("all") == list(sample_config.languages)
    assert sample_config.select_languages(None) == list(sample_config.languages)
    assert sample_config.select_languages("ja yo") == ["ja", "yo"]
    assert sample_config.select_languages("ja,yo ja") == ["ja", "yo"]
    with pytest.raises(ConfigError, match="unknown language code\\(s\\) xx"):
        sample_config.select_languages("ja xx")


def test_split_selection_keeps_configured_splits_only(sample_config):
    assert sample_config.select_splits("de", "train dev") == ["dev"]
    assert sample_config.select_splits("ar", None) == ["train", "dev", "test-a"]
    with pytest.raises(ConfigError, match="unknown split"):
        sample_config.select_splits("ar", "validation")


def test_extends_merges_and_unknown_keys_are_errors(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", bm25={"hits": 1000}))
    assert config.bm25.hits == 1000 and config.bm25.k1 == 0.9
    with pytest.raises(ConfigError, match=r"bm25: unknown key\(s\) k2"):
        load_config(write_config(tmp_path / "bad.yaml", bm25={"k2": 1.0}))
    with pytest.raises(ConfigError, match=r"bm25.hits: expected int"):
        load_config(write_config(tmp_path / "bad2.yaml", bm25={"hits": "many"}))


def test_unknown_split_in_a_language_entry_is_an_error(tmp_path):
    bad = {"xx": {"name": "X", "analyzer": "xx", "splits": ["validation"], "probe": "p"}}
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        load_config(write_config(tmp_path / "c.yaml", languages=bad))


def test_real_data_config_loads():
    config = load_config(REPO / "configs" / "miracl-v1.0.yaml")
    assert config.bm25.index_threads == 8 and len(config.languages) == 18


def test_make_vars_lists_languages_and_splits(sample_config):
    text = make_vars(sample_config)
    assert f"ALL_LANGS := {' '.join(sample_config.languages)}" in text
    assert "SPLITS_yo := dev test-b" in text


def test_make_vars_name_the_alignment_generator_only_when_the_task_is_on(sample_config):
    import dataclasses

    assert "BI_ALIGN_GENERATOR := \n" in make_vars(sample_config)  # weight 0: nothing to train first
    qgen = load_config(REPO / "configs" / "recipes" / "qgen.yaml")
    assert "BI_ALIGN_GENERATOR := trained:qgen\n" in make_vars(qgen)
    distillation = dataclasses.replace(
        qgen.bi_encoder.distillation,
        query_alignment=dataclasses.replace(qgen.bi_encoder.distillation.query_alignment, weight=0.0),
    )
    off = dataclasses.replace(qgen, bi_encoder=dataclasses.replace(qgen.bi_encoder, distillation=distillation))
    assert "BI_ALIGN_GENERATOR := \n" in make_vars(off)


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "configs" / "recipes").glob("*.yaml")))
def test_every_recipe_loads_under_its_own_names_with_its_files_in_the_repository(recipe):
    config = load_config(REPO / "configs" / "recipes" / recipe)
    bi = config.bi_encoder
    assert bi.name != "bi" and bi.dense.name != "dense" and config.fusion.name != "fusion"  # beside the default
    assert bi.name in config.fusion.systems and bi.dense.model == bi.name
    for path in bi.distillation.token.parallel_files.values():
        assert path.is_absolute() and path.is_file(), path  # relative to the repository, like data_root
