"""What the training stages share: the weights hash (subfolders included), the record that names it, and the
check that a model folder's tokenizer fits its embedding table."""

import hashlib
import json
import os
from pathlib import Path

import pytest

from stages.errors import CacheError
from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json
from stages.training import check_tokenizer_fits, save_model, tokenizer_ids, weights_sha256


def write_weights(folder, files):
    for name, content in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(content)


def test_the_weights_hash_covers_module_subfolders_and_keeps_top_level_hashes(tmp_path):
    write_weights(tmp_path, {"model.safetensors": b"encoder"})
    top_only = weights_sha256(tmp_path)
    assert top_only == hashlib.sha256(file_sha256(tmp_path / "model.safetensors").encode()).hexdigest()
    write_weights(tmp_path, {"1_Dense/model.safetensors": b"projection"})
    with_projection = weights_sha256(tmp_path)
    write_weights(tmp_path, {"1_Dense/model.safetensors": b"another projection"})
    assert len({top_only, with_projection, weights_sha256(tmp_path)}) == 3  # a changed projection is another model
    assert weights_sha256(tmp_path / "absent") is None


def test_a_saved_models_record_names_its_exact_weights(tmp_path):
    out = tmp_path / "bi-init"
    save_model(lambda path: write_weights(Path(path), {"model.safetensors": b"w1"}), out, {"step": "init"})
    first = read_json(out / "training.json")
    assert first["weights_sha256"] == weights_sha256(out)
    # Same record otherwise (an unseeded layer, a nondeterministic GPU): the record still differs, so runs
    # whose inputs hash it are redone.
    save_model(lambda path: write_weights(Path(path), {"model.safetensors": b"w2"}), out, {"step": "init"})
    second = read_json(out / "training.json")
    assert second["weights_sha256"] == weights_sha256(out) != first["weights_sha256"]


def write_model_folder(folder: Path, rows: int, pieces: int, added_ids=()) -> Path:
    """Only what the tokenizer check reads: the embedding rows and a Unigram tokenizer.json."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"vocab_size": rows}))
    (folder / "tokenizer.json").write_text(
        json.dumps(
            {
                "model": {"type": "Unigram", "vocab": [[f"p{i}", 0.0] for i in range(pieces)]},
                "added_tokens": [{"id": i, "content": f"<a{i}>"} for i in added_ids],
            }
        )
    )
    (folder / "training.json").write_text(json.dumps({"collection": "elsewhere"}))
    return folder


def test_a_tokenizer_within_the_embedding_table_passes(tmp_path):
    # 8 pieces and an added token at id 9: ids 0..9, ten rows needed
    model = write_model_folder(tmp_path / "ok", rows=10, pieces=8, added_ids=[9])
    assert tokenizer_ids(model / "tokenizer.json") == 10
    check_tokenizer_fits(model)


def test_a_tokenizer_of_another_model_is_refused_naming_both_files(tmp_path):
    model = write_model_folder(tmp_path / "mixed", rows=10, pieces=12)
    with pytest.raises(CacheError) as error:
        check_tokenizer_fits(model)
    message = str(error.value)
    assert str(model / "tokenizer.json") in message and "12 token ids" in message
    assert str(model / "config.json") in message and "10 rows" in message


def test_a_replaced_tokenizer_is_checked_again_not_served_from_the_cache(tmp_path):
    model = write_model_folder(tmp_path / "m", rows=10, pieces=8)
    check_tokenizer_fits(model)
    write_model_folder(model, rows=10, pieces=12)  # same folder, a tokenizer of another model copied in
    os.utime(model / "tokenizer.json", ns=(1, 10**18))  # a new mtime, whatever the filesystem's resolution
    with pytest.raises(CacheError, match="12 token ids"):
        check_tokenizer_fits(model)


def test_a_reranker_refuses_a_models_folder_whose_tokenizer_does_not_match(tmp_path):
    from stages.config import load_config
    from stages.retrieval.shortlist import trained_model
    from tests.helpers import write_config

    write_model_folder(tmp_path / "models" / "ce", rows=10, pieces=250)
    config = load_config(write_config(tmp_path / "c.yaml", work_root=tmp_path / "work"), None, tmp_path / "models")
    with pytest.raises(CacheError, match="250 token ids"):
        trained_model(config, "ce", "train-ce")


def test_a_trained_model_is_reported_in_one_line_with_its_loss_curve(capsys, tmp_path):
    from stages.training import report_training

    record = {
        "steps": 42,
        "seconds": 201.4,
        "train_params": {"precision": "bf16"},
        "log_history": [
            {"loss": 1.3852, "step": 5},
            {"loss": 0.9, "step": 10},
            {"loss": 0.5711, "step": 40},
            {"train_loss": 0.8, "step": 42},
        ],
    }
    report_training(tmp_path / "ce-nmt", record, "168 groups")
    report_training(tmp_path / "bi", record | {"log_history": [{"loss": 1.327, "step": 5}]}, "119 rows")
    assert capsys.readouterr().out.splitlines() == [
        "train ce-nmt: 168 groups, 42 steps, loss 1.385 -> 0.571, bf16 (3 min 21 s)",
        "train bi: 119 rows, 42 steps, loss 1.327, bf16 (3 min 21 s)",
    ]


def test_several_processes_get_the_trainers_distributed_settings_and_one_process_none(monkeypatch):
    import torch

    from stages.training import PREPARE_TIMEOUT_SECONDS, distributed_flags

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert distributed_flags() == {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    on_cpu = {} if torch.cuda.is_available() else {"use_cpu": True, "ddp_backend": "gloo"}
    assert distributed_flags() == {"ddp_static_graph": True, "ddp_timeout": PREPARE_TIMEOUT_SECONDS} | on_cpu
