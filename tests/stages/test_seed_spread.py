"""make check-tolerance: the child config of each seed, and the machine records it shares."""

from stages.config import load_config
from stages.seed_spread import seeded_config, share_machine_records
from tests.helpers import write_config


def test_a_seeded_config_changes_every_training_seed_and_the_work_folder_only(tmp_path):
    parent = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "work"))
    path = seeded_config(parent, 16, tmp_path / "seeds")
    child = load_config(path)

    def trainings(c):
        return [
            c.cross_encoder.nmt_training,
            c.cross_encoder.miracl_training,
            c.bi_encoder.distillation.training,
            c.bi_encoder.miracl_training,
            c.query_generator.training,
        ]

    assert {t.seed for t in trainings(child)} == {16} and {t.seed for t in trainings(parent)} == {13}
    assert child.work_root == tmp_path / "seeds" / "seed-16" and child.data_root == parent.data_root
    assert child.expected_scores == parent.expected_scores
    assert [t.learning_rate for t in trainings(child)] == [t.learning_rate for t in trainings(parent)]
    # written again with the same content, it keeps its time: make would otherwise rebuild every run of the seed
    stamp = path.stat().st_mtime_ns
    seeded_config(parent, 16, tmp_path / "seeds")
    assert path.stat().st_mtime_ns == stamp


def test_the_seed_reuses_this_machines_precision_record_and_packaged_models(tmp_path):
    parent = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "work"))
    (parent.work_root / ".machine").mkdir(parents=True)
    (parent.work_root / ".machine" / "matmul-x.json").write_text("{}")
    child = load_config(seeded_config(parent, 14, tmp_path / "seeds"))
    share_machine_records(parent, child)
    assert (child.work_root / ".machine" / "matmul-x.json").read_text() == "{}"
