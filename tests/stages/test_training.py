"""What the training stages share: the weights hash (subfolders included) and the record that names it."""
import hashlib
from pathlib import Path

from stages.formats.hashing import file_sha256
from stages.formats.jsonfile import read_json
from stages.training import save_model, weights_sha256


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
