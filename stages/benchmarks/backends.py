"""What `make bench-rerank` and `make bench-encode` share: every inference backend beside
sentence-transformers in float32, on the dev shortlists of every language, in one run.

Each backend (stages.models.backends) scores the same work, timed once, after a warm-up batch:
  sentence-transformers   the baseline: CrossEncoder.predict / SentenceTransformer.encode_document in
                          float32, over all languages' items in one call
  fp32, bf16, onnx-fp32,  ours: the reranker's own scoring with the model's transformer run by that
  openvino-fp32, onnx-int8  backend (bf16 is left out where this CPU's bf16 matmul measured slower)
and the scores become runs whose dev nDCG@10 is compared with float32's, language by language.
The work is every language's dev BM25 shortlist (stages.training.curve.dev_sets, the learning curve's).
FLOP/s: the model's FLOPs per sequence are counted by torch's FlopCounterMode at three lengths and fitted
as c + a*s + b*s^2 (head, linear layers, attention), then summed over the padded batches the baseline ran; each rate
is set against this machine's matrix-multiply peak in the backend's precision (float32 and bfloat16
timed with torch, int8 with ONNX Runtime's MatMulInteger), named in each row. The count is taken on the torch
model as loaded, before any backend stands an exported graph in its place (the counter sees no FLOPs there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from stages.benchmarks import save_report
from stages.formats import Run
from stages.training.curve import DevSet

log = logging.getLogger("stages.benchmarks.backends")


# ---------------------------------------------------------------- the machine


def cpu_description() -> dict:
    """The CPU's model name and the flags that decide which kernels run."""
    from stages.models.precision import cpu_info

    model, flags = cpu_info()
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
    return {"model": model, "flags": [f for f in wanted if f in flags.split()]}


def int8_matmul_peak(size: int = 2048, seconds: float = 2.0) -> float:
    """Operations/s of ONNX Runtime's int8 matrix product (MatMulInteger, uint8 x int8), what the int8
    backend's quantized layers run."""
    import onnxruntime
    from onnx import TensorProto, helper

    from stages.models.backends import _threads

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
        "int8-matmul",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size]),
            helper.make_tensor_value_info("b", TensorProto.INT8, [size, size]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {
        "a": rng.integers(0, 255, (size, size), dtype=np.uint8),
        "b": rng.integers(-127, 127, (size, size), dtype=np.int8),
    }
    session.run(None, feed)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        session.run(None, feed)
        runs += 1
    return 2 * size**3 * runs / (time.perf_counter() - started)


def peaks(bf16: bool) -> dict[str, float]:
    """Matrix-multiply peaks in operations/s, by precision (bf16 only where it is timed)."""
    from stages.models.precision import measure_matmul

    found = {"float32": measure_matmul("float32", 2048, 2.0) * 1e9, "int8": int8_matmul_peak()}
    if bf16:
        found["bfloat16"] = measure_matmul("bfloat16", 2048, 2.0) * 1e9
    return found


PEAK_OF = {"fp32": "float32", "onnx-fp32": "float32", "openvino-fp32": "float32", "bf16": "bfloat16",
           "onnx-int8": "int8", "sentence-transformers": "float32"}  # fmt: skip


def peak_label(precision: str, value: float) -> str:
    """'float32 171 GFLOP/s': a measured peak, int8's in operations."""
    return f"{precision} {value / 1e9:.0f} G{'OP' if precision == 'int8' else 'FLOP'}/s"


# ---------------------------------------------------------------- FLOPs


def flops_fit(hf_model, feature: dict) -> tuple[float, float, float]:
    """(c, a, b) with FLOPs(one sequence of s tokens) = c + a*s + b*s^2 (head, linear layers, attention),
    solved from torch's FlopCounterMode counts at three lengths. Where the counter does not see the
    attention products (CPU attention kernels), b is 4 * hidden * layers: QK^T and the weighted sum of V,
    2 FLOPs per multiply-add. `hf_model` is the torch model: an exported backend's stand-in
    (stages.models.backends.exported_module) runs outside torch, where the counter sees nothing, and is refused."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    if next(hf_model.parameters(), None) is None:
        raise ValueError(
            f"{type(hf_model).__name__} has no torch weights (an exported backend's stand-in?): "
            "count the FLOPs on the torch model as loaded, before a backend replaces it"
        )
    lengths, counts = (32, 64, 128), []
    for length in lengths:
        inputs = {name: torch.ones(1, length, dtype=torch.long) for name in feature}
        if "token_type_ids" in inputs:
            inputs["token_type_ids"] = torch.zeros(1, length, dtype=torch.long)
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            hf_model(**inputs)
        counts.append(counter.get_total_flops())
    c, a, b = np.linalg.solve(np.array([[1, s, s * s] for s in lengths], dtype=np.float64), np.array(counts, float))
    if a <= 0:
        raise ValueError(f"FlopCounterMode counted no per-token FLOPs in {type(hf_model).__name__} ({counts})")
    config = hf_model.config
    analytic = 4 * config.hidden_size * config.num_hidden_layers
    if b < 0.5 * analytic:  # the attention products were not counted
        b = analytic
    return float(c), float(a), float(b)


class ShapeLog:
    """Records the (batch, length) of every forward of a Hugging Face model, to count the work done. The hook
    sits on the token embedding: sentence-transformers calls the model's `forward` itself, past its hooks."""

    def __init__(self, hf_model):
        self.shapes: list[tuple[int, int]] = []
        self.handle = hf_model.get_input_embeddings().register_forward_pre_hook(self.record)

    def record(self, module, args):
        self.shapes.append(tuple(args[0].shape[:2]))

    def flops(self, fit: tuple[float, float, float]) -> float:
        c, a, b = fit
        return float(sum(n * (c + a * s + b * s * s) for n, s in self.shapes))

    def close(self):
        self.handle.remove()


# ---------------------------------------------------------------- the comparison


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def ndcg_by_language(sets: dict[str, DevSet], runs: dict[str, Run]) -> dict[str, float]:
    from stages.retrieval.evaluation import evaluate_run

    return {lang: evaluate_run(sets[lang].qrels, runs[lang], ["ndcg@10"])["ndcg@10"] for lang in sets}


def compare(
    work_root: Path,
    run_backend: Callable[[str], tuple[dict[str, Run], float]],
    run_baseline: Callable[[], tuple[dict[str, Run], float]],
    sets: dict[str, DevSet],
) -> dict[str, dict]:
    """For the baseline and each backend this CPU runs: seconds, runs' nDCG@10 per language; failures and
    the backends left out (with why) are reported too."""
    from stages.models.backends import cpu_candidates

    reasons = cpu_candidates(work_root)
    backends = [b for b, why in reasons.items() if why is None]
    results: dict[str, dict] = {}
    for name in ["sentence-transformers", *backends]:  # the baseline first: it runs the model as loaded
        try:
            runs, seconds = run_baseline() if name == "sentence-transformers" else run_backend(name)
        except Exception as error:  # a backend that cannot run this model is a row of the table, not a crash
            log.warning("%s failed: %s", name, error, exc_info=True)
            results[name] = {"error": f"{type(error).__name__}: {error}"}
            continue
        results[name] = {"seconds": seconds, "ndcg@10": ndcg_by_language(sets, runs)}
        log.info("%s: %.1f s", name, seconds)
    results |= {backend: {"skipped": why} for backend, why in reasons.items() if why is not None}
    return results


def table(results: dict[str, dict], items: int, unit: str, flops: float, peak: dict[str, float]) -> list[str]:
    """The markdown rows: rate, ratio to the baseline, FLOP/s and its share of the peak, nDCG change."""
    base = results.get("sentence-transformers", {})
    base_rate = items / base["seconds"] if "seconds" in base else float("nan")
    rows = [
        f"| backend | {unit}/s | / sentence-transformers fp32 | GFLOP/s | of the matmul peak in the row's precision "
        "(the peak used) | mean dev nDCG@10 | largest change vs fp32 (language) |",
        "|---|---|---|---|---|---|---|",
    ]
    reference = results.get("fp32", {}).get("ndcg@10")
    for name, result in results.items():
        if "error" in result:
            rows.append(f"| {name} | failed: {result['error']} | | | | | |")
            continue
        rate = items / result["seconds"]
        achieved = flops / result["seconds"]
        precision = PEAK_OF.get(name)
        if precision in peak:
            of_peak = f"{achieved / peak[precision]:.0%} of {peak_label(precision, peak[precision])}"
        else:
            of_peak = f"n/a (no {precision or name} peak measured)"
        scores = result["ndcg@10"]
        if reference:
            lang = max(scores, key=lambda k: abs(scores[k] - reference[k]))
            change = f"{scores[lang] - reference[lang]:+.4f} ({lang})"
        else:
            change = "n/a"
        rows.append(
            f"| {name} | {rate:.1f} | {rate / base_rate:.2f} | {achieved / 1e9:.1f} | "
            f"{of_peak} | {np.mean(list(scores.values())):.4f} | {change} |"
        )
    return rows


def largest_change(results: dict[str, dict]) -> dict[str, float]:
    """Per backend: the largest absolute dev nDCG@10 change from fp32 over the languages."""
    reference = results.get("fp32", {}).get("ndcg@10")
    if not reference:
        return {}
    return {
        name: max(abs(r["ndcg@10"][lang] - reference[lang]) for lang in reference)
        for name, r in results.items()
        if "ndcg@10" in r
    }


def write_report(root, title, unit, items, model_path, sets, results, flops, peak, fit) -> None:
    """report.md (the table) and report.json (every figure) under `root`."""
    import torch

    cpu = cpu_description()
    timed_results = {k: v for k, v in results.items() if "skipped" not in v}
    skipped = [f"{k} ({v['skipped']})" for k, v in results.items() if "skipped" in v]
    lines = [
        f"# {title}: every backend beside sentence-transformers (float32), {time.strftime('%Y-%m-%d')}",
        "",
        f"CPU: {cpu['model']}, {torch.get_num_threads()} threads, flags {' '.join(cpu['flags']) or 'none of note'}. "
        f"Model: {model_path}. Work: {items} {unit} (the dev BM25 shortlists of {len(sets)} languages), "
        f"timed once per backend after a warm-up batch.",
        "",
        *table(timed_results, items, unit, flops, peak),
        "",
        f"FLOPs: {flops / 1e9:.0f} GFLOP in all over the padded batches ({fit[1] / 1e6:.1f} MFLOP per token, "
        f"{fit[2] / 1e3:.1f} kFLOP per token pair of attention, {fit[0] / 1e6:.2f} MFLOP per sequence). "
        "Matmul peaks measured here: "
        + ", ".join(peak_label(name, value) for name, value in peak.items())
        + (
            " (onnx-int8 quantizes the linear layers; its attention products run in float32)."
            if "onnx-int8" in results
            else "."
        ),
    ]
    if skipped:
        lines.append(f"Not timed: {'; '.join(skipped)}.")
    lines.append("")
    record = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "model": str(model_path),
        "items": items,
        "unit": unit,
        "flops": flops,
        "flops_fit": fit,
        "matmul_peak": peak,
        "results": results,
        "largest_ndcg_change": largest_change(timed_results),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    save_report(root, "\n".join(lines), record)
