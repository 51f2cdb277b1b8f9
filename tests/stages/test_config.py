import typing
from pathlib import Path

import pytest

from stages.config import ConfigError, load_config
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


@pytest.mark.parametrize("recipe", sorted(p.name for p in (REPO / "configs" / "recipes").glob("*.yaml")))
def test_every_recipe_loads_under_its_own_names_with_its_files_in_the_repository(recipe):
    config = load_config(REPO / "configs" / "recipes" / recipe)
    bi = config.bi_encoder
    assert bi.name != "bi" and bi.dense.name != "dense" and config.fusion.name != "fusion"  # beside the default
    assert bi.name in config.fusion.systems and bi.dense.model == bi.name
    for path in bi.distillation.token.parallel_files.values():
        assert path.is_absolute() and path.is_file(), path  # relative to the repository, like data_root


def test_a_value_outside_its_allowed_set_is_refused_naming_the_key_path_and_the_allowed_values(tmp_path):
    path = write_config(tmp_path / "c.yaml", bi_encoder={"student": {"pooling": "max"}})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == f"{path}: bi_encoder.student.pooling: expected one of mean, cls, got 'max'"


def test_a_string_of_digits_for_an_int_field_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: bm25\.hits: expected int, got '5'$"):
        load_config(write_config(tmp_path / "c.yaml", bm25={"hits": "5"}))


def test_true_for_an_int_field_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"c\.yaml: bm25\.hits: expected int, got True$"):
        load_config(write_config(tmp_path / "c.yaml", bm25={"hits": True}))


def test_an_int_for_a_float_field_is_read_as_a_float(tmp_path):
    config = load_config(write_config(tmp_path / "c.yaml", bm25={"k1": 1}))
    assert config.bm25.k1 == 1.0 and type(config.bm25.k1) is float


def test_an_unknown_key_is_refused_naming_the_allowed_keys(tmp_path):
    path = write_config(tmp_path / "c.yaml", bm25={"k2": 1.0})
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value) == (
        f"{path}: bm25: unknown key(s) k2; expected some of b, batch_size, hits, index_threads, k1, rm3, search_threads"
    )


def test_replace_takes_the_place_of_a_parent_mapping_while_a_plain_mapping_merges(tmp_path):
    # configs/sample.yaml (under tiny.yaml) tries k, gamma, phi and sigma.
    parent = REPO / "configs" / "tiny.yaml"
    merged, replaced = tmp_path / "merged.yaml", tmp_path / "replaced.yaml"
    merged.write_text(f"extends: {parent}\nfusion:\n  tune:\n    values: {{k: [60]}}\n", encoding="utf-8")
    replaced.write_text(f"extends: {parent}\nfusion:\n  tune:\n    values: !replace {{k: [60]}}\n", encoding="utf-8")
    assert load_config(merged).fusion.tune.values == {
        "k": (60.0,),
        "gamma": (0.5, 1.0, 1.5, 2.0),
        "phi": (0.5, 0.7, 0.8, 0.9, 0.95),
        "sigma": (0.001, 0.01, 0.1),
    }
    assert load_config(replaced).fusion.tune.values == {"k": (60.0,)}


def test_a_loaded_config_holds_the_python_types_that_run_metadata_hashes():
    # Stages hash dataclasses.asdict of these objects: a list for a tuple, a str for a Path or an int for a
    # float would change every hash and rerun every stage.
    config = load_config(REPO / "configs" / "recipes" / "drdecr.yaml")
    assert type(config.languages["ja"].splits) is tuple and config.languages["ja"].splits == ("train", "dev", "test-a")
    assert type(config.evaluation.metrics) is tuple
    assert type(config.data_root) is type(Path()) and config.data_root.is_absolute()
    assert type(config.cross_encoder.nmt.root) is type(Path()) and config.cross_encoder.nmt.root.is_absolute()
    files = config.bi_encoder.distillation.token.parallel_files
    assert files and all(type(k) is str and type(v) is type(Path()) for k, v in files.items())
    assert config.fusion.tune.values["k"] == (5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 100.0)  # written as ints
    assert all(type(v) is float for v in config.fusion.tune.values["k"])
    epochs = config.cross_encoder.nmt_training.epochs  # written 2
    assert epochs == 2.0 and type(epochs) is float
    assert load_config(REPO / "configs" / "tiny.yaml").expected_scores is None  # written null
    assert all(type(k) is str and type(v) is int for k, v in config.cross_encoder.nmt.languages.items())


def test_the_allowed_values_of_the_config_are_those_the_stages_accept():
    from ensemble.methods import METHODS, NORMS, ONE_PARAMETER
    from stages import config as c
    from stages.losses.tokens import LOSSES
    from stages.models.backends import SETTINGS
    from stages.models.precision import PRECISIONS
    from stages.models.teachers import TEACHERS
    from stages.training.token_task import ALIGNMENTS

    def allowed(literal):
        return typing.get_args(literal)

    assert allowed(c.FusionMethod) == METHODS and allowed(c.FusionNorm) == NORMS
    assert set(allowed(c.FusionParameter)) == set(ONE_PARAMETER.values())
    assert allowed(c.Precision) == PRECISIONS
    assert allowed(c.InferencePrecision) == SETTINGS
    assert allowed(c.TeacherKind) == tuple(TEACHERS)
    assert allowed(c.TokenAlignment) == ALIGNMENTS and allowed(c.TokenLoss) == LOSSES
