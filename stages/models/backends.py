"""Inference backends: which engine runs a sentence-transformers model's transformer, chosen by measuring.

A reranking or encoding setting (`cross_encoder.rerank_precision`, `bi_encoder.encode_precision`) is one of
  fp32, bf16, fp16   torch, under autocast in that precision (stages.models.precision)
  onnx-fp32          the transformer exported to ONNX, run by ONNX Runtime in float32
  openvino-fp32      the same ONNX graph compiled by OpenVINO, float32
  onnx-int8          the ONNX graph with its matrix products quantized to int8 by ONNX Runtime's own
                     dynamic quantizer (weights int8 per tensor, activations quantized per batch)
  auto               on a GPU, bf16 (fp16 without bf16 support); on a CPU, the fastest of the above whose
                     scores rank a calibration slice the way fp32 does (Spearman correlation at least
                     `inference.min_rank_correlation`), timed on this machine once per model and recorded.

Only the transformer changes: tokenisation, prompts, pooling, normalisation and the score stay
sentence-transformers' own, because an exported backend stands in for the Hugging Face model inside the
model's Transformer module(s), as sentence-transformers' own `backend="onnx"` does. That route itself
(optimum-onnx, optimum-intel) cannot be installed beside the transformers release we pin, hence the
export here: torch's ONNX exporter, then ONNX Runtime's quantizer, so no quantizer is written by hand.

An export is cached beside its source, in `<models>/.exports/<model>/<backend>-<module>-<sha>/`, keyed by
the hash of the source's weights and config; when the weights change, the next use exports again and
the stale folder is removed. Exports are written to a temporary folder and renamed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import shutil
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from stages.config import ConfigError, InferenceParams
from stages.errors import EnvironmentProblem
from stages.formats.jsonfile import read_json, write_json

log = logging.getLogger("stages.models.backends")

TORCH = ("fp32", "bf16", "fp16")
EXPORTED = ("onnx-fp32", "openvino-fp32", "onnx-int8")
SETTINGS = ("auto", *TORCH, *EXPORTED)  # stages.config.InferencePrecision


# ---------------------------------------------------------------- exporting


def source_sha256(model_path: Path) -> str:
    """Hash of what an export is made from: the model's weights and its config files. Kept per process for
    files whose size and modification time are unchanged (the weights of e5-small are 470 MB)."""
    from stages.formats.hashing import file_sha256
    from stages.training import weights_sha256

    model_path = Path(model_path)
    files = sorted(p for p in model_path.rglob("*") if p.is_file() and ".exports" not in p.parts)
    stamp = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if _HASHES.get(model_path, (None,))[0] != stamp:
        configs = [p for p in files if p.name.startswith("config") and p.suffix == ".json"]
        parts = [weights_sha256(model_path) or ""] + [file_sha256(p) for p in configs]
        _HASHES[model_path] = (stamp, hashlib.sha256("".join(parts).encode()).hexdigest())
    return _HASHES[model_path][1]


_HASHES: dict[Path, tuple] = {}


def export_folder(model_path: Path, backend: str, module: int, sha: str) -> Path:
    """Where the export of `model_path`'s module number `module` for `backend` lives."""
    kind = "onnx-int8" if backend == "onnx-int8" else "onnx-fp32"  # OpenVINO compiles the float32 ONNX graph
    model_path = Path(model_path)
    return model_path.parent / ".exports" / model_path.name / f"{kind}-{module}-{sha[:16]}"


def _positional(model, names: Sequence[str], output: str):
    """`model` as a module of positional tensors with one output: what torch's exporter traces."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors)), return_dict=True)[output]

    return Positional()


def export_onnx(hf_model, example: dict, output: str, target: Path) -> None:
    """`hf_model` as an ONNX graph at `target`/model.onnx, with batch and sequence axes left free."""
    import torch

    names = list(example)
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    axes[output] = {0: "batch", 1: "sequence"} if output == "last_hidden_state" else {0: "batch"}
    was_training = hf_model.training
    hf_model.eval()
    with warnings.catch_warnings(record=True) as caught, torch.no_grad():
        warnings.simplefilter("always")
        torch.onnx.export(
            _positional(hf_model, names, output),
            tuple(example[name] for name in names),
            str(target / "model.onnx"),
            input_names=names,
            output_names=[output],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,  # the TorchScript exporter: dynamic axes without onnxscript's rewriting
        )
    for warning in caught:
        log.debug("onnx export: %s", warning.message)
    hf_model.train(was_training)


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantization of every matrix product of `source` into `target`."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        quantize_dynamic(
            str(source / "model.onnx"),
            str(target / "model.onnx"),
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["MatMul"],  # the embedding lookup (Gather) stays float: it costs nothing
        )


def ensure_export(hf_model, example: dict, output: str, model_path: Path, backend: str, module: int) -> Path:
    """The cached export for `backend`, built (atomically) when missing or when the source has changed."""
    sha = source_sha256(model_path)
    folder = export_folder(model_path, backend, module, sha)
    if (folder / "model.onnx").is_file():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    prefix = folder.name.rsplit("-", 1)[0] + "-"
    with _lock(folder.parent / f".{prefix}lock"):
        if (folder / "model.onnx").is_file():
            return folder
        started = time.perf_counter()
        temporary = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir()
        if backend == "onnx-int8":
            fp32 = ensure_export(hf_model, example, output, model_path, "onnx-fp32", module)
            quantize_int8(fp32, temporary)
        else:
            export_onnx(hf_model, example, output, temporary)
        write_json(temporary / "source.json", {"model": str(model_path), "source_sha256": sha, "backend": backend})
        for stale in folder.parent.glob(f"{prefix}*"):
            if stale.is_dir() and not stale.name.endswith(".tmp"):
                shutil.rmtree(stale)
                log.info("removed the stale export %s (its source changed)", stale)
        temporary.rename(folder)
        log.info(
            "exported %s module %d for %s in %.1f s -> %s",
            model_path,
            module,
            backend,
            time.perf_counter() - started,
            folder,
        )
    return folder


@contextlib.contextmanager
def _lock(path: Path):
    """An exclusive lock on `path`, so languages run side by side (make -j) export and measure once."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---------------------------------------------------------------- running


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def session(folder: Path, backend: str) -> Callable[[dict], np.ndarray]:
    """feed -> first output, for the export in `folder` run by `backend`'s engine on this CPU."""
    if backend == "openvino-fp32":
        import openvino

        compiled = openvino.Core().compile_model(
            str(folder / "model.onnx"),
            "CPU",
            {"INFERENCE_NUM_THREADS": _threads(), "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
        )
        request = compiled.create_infer_request()
        return lambda feed: np.asarray(request.infer(feed)[compiled.output(0)])
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.log_severity_level = 3
    runner = onnxruntime.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
    return lambda feed: runner.run(None, feed)[0]


def exported_module(run: Callable[[dict], np.ndarray], names: Sequence[str], output: str, config):
    """A torch module that stands where the Hugging Face model stood: same keyword inputs, its output
    (`logits` or `last_hidden_state`) computed by the exported graph."""
    import torch

    class Exported(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = config
            self.register_buffer("placement", torch.zeros(0), persistent=False)  # model.device reads it

        def forward(self, **features):
            missing = [name for name in names if features.get(name) is None]
            if missing:
                raise ValueError(f"the exported model needs {', '.join(missing)}")
            feed = {name: features[name].cpu().numpy().astype(np.int64) for name in names}
            return {output: torch.from_numpy(np.ascontiguousarray(run(feed), dtype=np.float32))}

    return Exported()


def transformers_of(model) -> list:
    """The sentence-transformers Transformer modules of `model` (one, or one per tower)."""
    from sentence_transformers.base.modules import Transformer

    return [m for m in model.modules() if isinstance(m, Transformer)]


def _output_name(transformer) -> str | None:
    params = transformer.modality_config.get("text", {})
    output = params.get("method_output_name")
    output = output[0] if isinstance(output, (list, tuple)) and len(output) == 1 else output
    if params.get("method") != "forward" or output not in ("logits", "last_hidden_state"):
        return None
    return output


def use_backend(model, model_path: Path, backend: str):
    """`model` with its transformer(s) run by `backend` (torch for fp32/bf16/fp16: the original modules
    put back). Returns the precision torch should compute the rest in."""
    import torch

    if backend not in SETTINGS or backend == "auto":
        raise ConfigError(f"an inference backend must be one of {', '.join(SETTINGS[1:])}, got {backend!r}")
    originals = vars(model).get("_torch_transformers", {})
    if backend in TORCH and not originals:  # never exported: nothing to put back (nor to look for)
        return backend
    modules = transformers_of(model)
    for index, transformer in enumerate(modules):
        if index in originals:
            transformer.model = originals[index]
    if backend in TORCH:
        return backend
    originals = vars(model).setdefault("_torch_transformers", {})
    for index, transformer in enumerate(modules):
        output = _output_name(transformer)
        weights = next(transformer.model.parameters(), None)
        if weights is not None and (weights.device.type != "cpu" or weights.dtype != torch.float32):
            raise ConfigError(
                f"{backend} runs on the CPU from float32 weights, but {model_path} is loaded on "
                f"{weights.device.type} in {weights.dtype}: on a GPU host use bf16 or fp32 (or auto)"
            )
        if output is None:
            raise ConfigError(
                f"{model_path}: module {index} is not a text transformer the {backend} backend can export"
            )
        hf_model = transformer.model
        example = _example(transformer)
        folder = ensure_export(hf_model, example, output, Path(model_path), backend, index)
        originals[index] = hf_model
        transformer.model = exported_module(session(folder, backend), list(example), output, hf_model.config)
    return "fp32"


def _example(transformer) -> dict:
    """Tokenised example inputs, the keys the model's forward takes, in the order the tokenizer gives."""
    import inspect

    tokens = transformer.tokenizer(
        ["an example query", "a second, longer example text"],
        ["a passage", "another passage to score"],
        padding=True,
        return_tensors="pt",
    )
    accepted = set(inspect.signature(transformer.model.forward).parameters)
    return {name: tensor for name, tensor in tokens.items() if name in accepted}


# ---------------------------------------------------------------- choosing


def available(backend: str) -> str | None:
    """Why `backend` cannot run here, or None when it can."""
    modules = {"onnx-fp32": "onnxruntime", "onnx-int8": "onnxruntime", "openvino-fp32": "openvino"}
    if backend in modules:
        try:
            __import__(modules[backend])
        except ImportError:
            return f"{modules[backend]} is not installed"
    return None


def cpu_candidates(work_root: Path) -> dict[str, str | None]:
    """Every CPU backend, each with the reason it is left out (None: it is timed)."""
    from stages.models.precision import cpu_rates

    rates = cpu_rates(work_root)["gflops"]
    reasons: dict[str, str | None] = {"fp32": None}
    reasons["bf16"] = (
        None
        if rates["bfloat16"] >= rates["float32"]
        else f"bfloat16 matmul measured slower than float32 ({rates['bfloat16']} against {rates['float32']} GFLOP/s)"
    )
    reasons["fp16"] = "float16 on a CPU: no fast kernels"
    for backend in EXPORTED:
        reasons[backend] = available(backend)
    return reasons


def engines() -> dict[str, str]:
    """The versions of the inference engines installed (a new one may change the choice)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("onnxruntime", "openvino"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation of two score vectors; where one is constant (no ranks to correlate),
    1.0 if both sort the items alike, else 0.0."""
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(np.argsort(a), np.argsort(b)) else 0.0
    return float(spearmanr(a, b).statistic)


def measure(
    model,
    model_path: Path,
    backends: Sequence[str],
    score: Callable[[object, str], np.ndarray],
    count: int,
    rounds: int = 2,
) -> dict[str, dict]:
    """For each backend: the calibration items scored per second (best of `rounds`, the order reversed each
    round, so a slow spell of a shared machine does not decide) and the rank correlation of its scores with
    fp32's. `score(model, precision)` scores the calibration slice (of `count` items) with the model as it
    stands."""
    order = ["fp32", *[b for b in backends if b != "fp32"]]
    results: dict[str, dict] = {}
    reference = None
    for round_ in range(rounds):
        for backend in order if round_ % 2 == 0 else order[::-1]:
            if "error" in results.get(backend, {}):
                continue
            try:
                precision = use_backend(model, model_path, backend)
                score(model, precision)  # warm-up: kernel choice, graph compilation
                started = time.perf_counter()
                scores = np.asarray(score(model, precision), dtype=np.float64)
                elapsed = time.perf_counter() - started
            except Exception as error:  # an engine that cannot run this model is reported, not fatal
                log.warning("backend %s failed on %s: %s", backend, model_path, error, exc_info=True)
                results[backend] = {"error": f"{type(error).__name__}: {error}"}
                continue
            if backend in results:
                results[backend]["items_per_second"] = max(
                    results[backend]["items_per_second"], round(count / elapsed, 3)
                )
                continue
            reference = scores if reference is None else reference
            results[backend] = {
                "items_per_second": round(count / elapsed, 3),
                "rank_correlation": round(spearman(scores, reference), 6),
                "max_abs_difference": float(np.abs(scores - reference).max()) if len(scores) else 0.0,
            }
    use_backend(model, model_path, "fp32")
    return {backend: results[backend] for backend in order if backend in results}


def pick(results: dict[str, dict], params: InferenceParams) -> str:
    """The fastest backend ranking like fp32; one must beat fp32 by `speed_margin` to replace it."""
    if "items_per_second" not in results.get("fp32", {}):
        raise EnvironmentProblem(
            f"float32 torch, the reference, could not score the calibration slice: {results.get('fp32')}"
        )
    fp32 = results["fp32"]["items_per_second"]
    best, best_rate = "fp32", fp32 * params.speed_margin
    for backend, result in results.items():
        if "items_per_second" not in result or result["rank_correlation"] < params.min_rank_correlation:
            continue
        if backend != "fp32" and result["items_per_second"] > best_rate:
            best, best_rate = backend, result["items_per_second"]
    return best


def choose(
    setting: str,
    work_root: Path,
    model_path: Path,
    kind: str,
    params: InferenceParams,
    calibrate: Callable[[], tuple[object, Callable[[object, str], np.ndarray], int, str]],
) -> str:
    """The backend `setting` means for this model on this machine. For `auto` on a CPU, the recorded choice
    for (this CPU, the model's weights, `kind`), measured first when there is none: `calibrate()` gives
    (the loaded model, score(model, precision), the slice's size, what the slice is)."""
    import torch

    if setting not in SETTINGS:
        raise ConfigError(f"inference precision must be one of {', '.join(SETTINGS)}, got {setting!r}")
    if setting != "auto":
        return setting
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    from stages.models.precision import cpu_identity

    if params.calibration_rounds < 1 or params.calibration_size < 2:
        raise ConfigError("inference.calibration_rounds must be at least 1 and inference.calibration_size at least 2")
    identity = cpu_identity() | {"model_sha256": source_sha256(model_path), "kind": kind, "engines": engines()}
    identity |= {
        k: getattr(params, k)
        for k in ("calibration_size", "calibration_rounds", "min_rank_correlation", "speed_margin")
    }
    key = hashlib.sha256(repr(sorted(identity.items())).encode()).hexdigest()[:16]
    path = Path(work_root) / ".machine" / f"backend-{Path(model_path).name}-{key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = read_json(path)
    if isinstance(record, dict) and record.get("identity") == identity:
        return record["choice"]
    # One calibration at a time on the machine (make -j starts the rerankers together): two timed at once
    # would each see half the cores. Another process may have recorded this one while we waited.
    with _lock(path.parent / "calibration.lock"):
        record = read_json(path)
        if isinstance(record, dict) and record.get("identity") == identity:
            return record["choice"]
        reasons = cpu_candidates(work_root)
        model, score, count, slice_ = calibrate()
        candidates = [b for b, why in reasons.items() if why is None]
        results = measure(model, model_path, candidates, score, count, params.calibration_rounds)
        for backend, why in reasons.items():
            if why is not None:
                results[backend] = {"skipped": why}
        choice = pick(results, params)
        write_json(
            path,
            {
                "identity": identity,
                "model": str(model_path),
                "calibration": slice_,
                "results": results,
                "choice": choice,
                "measured": time.strftime("%Y-%m-%d %H:%M:%S"),
            },
        )
    from stages.console import say

    timed = ", ".join(
        f"{b} {r['items_per_second']:.1f}/s (rank corr. {r['rank_correlation']:.4f})"
        for b, r in results.items()
        if "items_per_second" in r
    )
    say(f"backend for {Path(model_path).name} ({kind}) on this CPU: {choice} [{timed}] (recorded in {path})")
    return choice
