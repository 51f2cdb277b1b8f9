"""The GPU check: one script that measures the GPU paths on whatever GPU host it runs (`make gpu-check`).

    python -m stages.benchmarks.gpu_check        (make gpu-check; about 5 minutes on one GPU)

It needs nothing from a hub: the model is multilingual-e5-small converted from its PyPI packages
(stages.models.packaged), with a new classification head for reranking; texts and vectors are synthetic.
On a host without a CUDA GPU it stops at once with a message saying so. It is not part of `make test`.
Parts, each with its peak GPU memory:
  peak        bf16 matrix-multiply rate (8192^2), the reference for the next two
  rerank      bf16 cross-encoder scoring of synthetic pairs (pairs/s, FLOP/s, share of the peak)
  encode      bf16 passage encoding (passages/s, FLOP/s, share of the peak)
  train       50 steps of bf16 cross-encoder training with the Hugging Face Trainer on one GPU, then the
              same under torchrun on every visible GPU (steps/s, loss logged once)
  faiss       exact (Flat) and IVF search of clustered vectors on faiss-gpu beside faiss-cpu: recall@100
              against exact CPU search, queries/s (no memory figure: faiss allocates outside torch)
A part that fails is reported as failed and the others still run; report.json is rewritten after each.
Results: work/gpu-check/report.json (every figure) and report.md (the tables), dated and naming the GPU.
`--cpu-smoke` runs every part on the CPU at toy sizes, so the script itself is tested without a GPU
(tests/stages/benchmarks/test_gpu_check.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.benchmarks.backends import flops_fit
from stages.config import add_config_arguments, config_from_args
from stages.console import say, setup
from stages.formats import atomic_write
from stages.models.precision import measure_matmul

log = logging.getLogger("stages.benchmarks.gpu_check")


@dataclass
class Sizes:
    """How much work each part does: the GPU sizes fill about 5 minutes on one current GPU."""

    matmul: int = 8192
    pairs: int = 8192
    passages: int = 16384
    batch: int = 128
    max_length: int = 256
    train_steps: int = 50
    train_batch: int = 32
    vectors: int = 1_000_000
    dimension: int = 384
    queries: int = 1000
    clusters: int = 4096


SMOKE = Sizes(
    matmul=256,
    pairs=16,
    passages=16,
    batch=8,
    max_length=32,
    train_steps=2,
    train_batch=4,
    vectors=4000,
    dimension=16,
    queries=20,
    clusters=16,
)


class NoGPU(SystemExit):
    pass


def require_gpu() -> str:
    """The GPU's name, or a clear stop on a host without one."""
    import torch

    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise NoGPU(
            f"make gpu-check needs a CUDA GPU, and torch {torch.__version__} ({build}) sees none on this host. "
            "Run it on a GPU machine (the README's 'GPU check' says how); nothing was measured."
        )
    return torch.cuda.get_device_name()


def words(count: int, length: int, seed: int) -> list[str]:
    """`count` synthetic texts of about `length` made-up words (deterministic)."""
    rng = random.Random(seed)
    vocabulary = ["".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(3, 9))) for _ in range(5000)]
    return [" ".join(rng.choices(vocabulary, k=length)) for _ in range(count)]


def peak_memory(device: str, reset: bool = False) -> float:
    """GiB of GPU memory at its peak since the last reset (0 on the CPU)."""
    import torch

    if device != "cuda":
        return 0.0
    if reset:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        return 0.0
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / 2**30


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def timed_forward(hf_model, example: dict, run, count: int, unit: str, device: str, peak: float) -> dict:
    """`run()` timed once (after the caller's warm-up), its FLOPs counted over the batches `hf_model` saw:
    items/s, TFLOP/s, the share of the bf16 peak, the peak GPU memory."""
    from stages.benchmarks.backends import ShapeLog

    shapes = ShapeLog(hf_model)
    peak_memory(device, reset=True)
    started = time.perf_counter()
    run()
    sync(device)
    seconds = time.perf_counter() - started
    shapes.close()
    memory = peak_memory(device)
    flops = shapes.flops(flops_fit(hf_model.float().cpu(), example))  # counted on a float32 copy on the CPU
    return {
        f"{unit}_per_second": count / seconds,
        "tflops_per_second": flops / seconds / 1e12,
        "share_of_bf16_peak": flops / seconds / peak,
        "peak_memory_gib": memory,
    }


def rerank_part(model_path: Path, device: str, sizes: Sizes, peak: float) -> dict:
    """bf16 cross-encoder scoring of synthetic pairs."""
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    model = CrossEncoder(
        str(model_path), num_labels=1, max_length=sizes.max_length, device=device,
        model_kwargs={"torch_dtype": torch.bfloat16},
    )  # fmt: skip
    pairs = list(zip(words(sizes.pairs, 8, 1), words(sizes.pairs, sizes.max_length, 2)))
    model.predict(pairs[: sizes.batch], batch_size=sizes.batch, show_progress_bar=False)
    run = lambda: model.predict(pairs, batch_size=sizes.batch, show_progress_bar=False)  # noqa: E731
    return timed_forward(model.model, model.tokenizer(["a"], ["b"]), run, sizes.pairs, "pairs", device, peak)


def encode_part(model_path: Path, device: str, sizes: Sizes, peak: float) -> dict:
    """bf16 passage encoding of synthetic passages."""
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(model_path), device=device, model_kwargs={"torch_dtype": torch.bfloat16})
    model.max_seq_length = sizes.max_length
    passages = words(sizes.passages, sizes.max_length, 3)
    model.encode_document(passages[: sizes.batch], batch_size=sizes.batch)
    run = lambda: model.encode_document(passages, batch_size=sizes.batch, show_progress_bar=False)  # noqa: E731
    transformer = model[0]
    example = transformer.tokenizer(["a"])
    return timed_forward(transformer.auto_model, example, run, sizes.passages, "passages", device, peak)


def train_part(model_path: Path, device: str, sizes: Sizes, out: Path) -> dict:
    """`sizes.train_steps` steps of bf16 cross-encoder training with the Hugging Face Trainer, in this
    process (one GPU, or every GPU torchrun started). Only rank 0 writes the record."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    torch.manual_seed(13)
    tokenizer = AutoTokenizer.from_pretrained(str(model_path))
    model = AutoModelForSequenceClassification.from_pretrained(str(model_path), num_labels=1)
    processes = max(1, int(os.environ.get("WORLD_SIZE", "1")))
    count = sizes.train_steps * sizes.train_batch * processes
    queries, passages = words(count, 8, 4), words(count, sizes.max_length, 5)
    encoded = tokenizer(queries, passages, truncation=True, max_length=sizes.max_length, padding="max_length")
    labels = [float(i % 2) for i in range(count)]
    data = Dataset.from_dict({**encoded, "labels": labels})
    cuda = device == "cuda"
    arguments = TrainingArguments(
        output_dir=str(out / "trainer"),
        max_steps=sizes.train_steps,
        per_device_train_batch_size=sizes.train_batch,
        learning_rate=2e-5,
        bf16=cuda,
        use_cpu=not cuda,
        logging_steps=max(1, sizes.train_steps // 5),
        save_strategy="no",
        report_to=[],
        seed=13,
        disable_tqdm=True,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=data)
    peak_memory(device, reset=True)
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {
        "processes": processes,
        "steps": sizes.train_steps,
        "steps_per_second": sizes.train_steps / seconds,
        "pairs_per_second": count / seconds,
        "train_loss": result.training_loss,
        "logged_losses": losses,
        "peak_memory_gib": peak_memory(device),
    }


def faiss_part(sizes: Sizes, use_gpu: bool) -> dict:
    """Flat and IVF (nprobe 32) search on faiss-cpu and, where faiss has GPUs, on faiss-gpu sharded over all of
    them: make bench-index's data and measurement (stages.benchmarks.index), recall@100 and queries/s."""
    from stages.benchmarks.indexes import clustered_vectors, measure
    from stages.config import IndexBenchParams, IndexSpec
    from stages.retrieval.dense import gpu_count

    ivf = f"IVF{sizes.clusters},Flat"
    params = IndexBenchParams(
        vectors=sizes.vectors,
        dimension=sizes.dimension,
        queries=sizes.queries,
        train_size=max(sizes.clusters * 40, 10_000),
        repeats=1,
        indexes=(IndexSpec("Flat"), IndexSpec(ivf, ("nprobe=32",))),
    )
    rng = np.random.default_rng(params.seed + 1)
    vectors, _ = clustered_vectors(params.vectors, params, rng)
    queries, _ = clustered_vectors(params.queries, params, rng)
    results = {}
    for place in ("cpu", "gpu") if use_gpu and gpu_count() else ("cpu",):
        measured = measure(params, vectors, queries, on_gpu=place == "gpu")
        for factory, name in (("Flat", "flat"), (ivf, "ivf")):
            (row,) = measured[factory]["search"].values()
            results[f"{place} {name}"] = {"recall_at_100": row["recall"], "queries_per_second": row["qps"]}
    if use_gpu and not gpu_count():
        results["gpu"] = {"error": "this faiss build has no GPU support (install the .[gpu] extra)"}
    return results


def train_subprocess(forwarded: list[str], sizes_name: str, out: Path, gpus: int, name: str, torchrun: bool) -> dict:
    """The training part in fresh processes: one plain process (on GPU 0 only: the Trainer would otherwise
    spread it over every visible GPU with DataParallel), or `gpus` under torchrun; the record rank 0 wrote."""
    record = out / f"{name}.json"
    record.unlink(missing_ok=True)
    worker = ["-m", "stages.benchmarks.gpu_check", *forwarded, "--train-only", str(record), "--sizes", sizes_name]
    env = dict(os.environ)
    if not torchrun:
        command = [sys.executable, *worker]
        if sizes_name == "gpu":
            env["CUDA_VISIBLE_DEVICES"] = env.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={gpus}", "--standalone", *worker]
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    except subprocess.TimeoutExpired:
        return {"error": "training ran past 600 s and was stopped"}
    (out / f"{name}.log").write_text(result.stdout + result.stderr)
    if result.returncode != 0 or not record.is_file():
        return {"error": f"exited {result.returncode}; see {out / (name + '.log')}"}
    data = json.loads(record.read_text())
    data["wall_seconds"] = time.perf_counter() - started
    return data


def report(record: dict) -> str:
    def row(label: str, part: dict, rate: str, flops: bool) -> str:
        if "error" in part:
            return f"| {label} | failed: {part['error']} | | | |"
        extra = f"{part['tflops_per_second']:.1f} | {part['share_of_bf16_peak']:.0%}" if flops else " | "
        return f"| {label} | {rate} | {extra} | {part['peak_memory_gib']:.2f} |"

    r, e, t, m = record["rerank"], record["encode"], record["train"], record["train_torchrun"]
    lines = [
        f"# GPU check, {record['date']}: {record['gpu']} x {record['gpus']}",
        "",
        f"bf16 matmul peak: {record['bf16_peak_tflops']:.1f} TFLOP/s ({record['sizes']['matmul']}^2).",
        "",
        "| part | rate | TFLOP/s | of the bf16 peak | peak GPU memory (GiB) |",
        "|---|---|---|---|---|",
        row("rerank (bf16)", r, f"{r.get('pairs_per_second', 0):.0f} pairs/s", True),
        row("encode (bf16)", e, f"{e.get('passages_per_second', 0):.0f} passages/s", True),
        row(f"train, 1 GPU ({t.get('steps')} steps)", t, f"{t.get('steps_per_second', 0):.2f} steps/s", False),
        row(
            f"train, torchrun x {m.get('processes')}",
            m,
            f"{m.get('steps_per_second', 0):.2f} steps/s ({m.get('pairs_per_second', 0):.0f} pairs/s)",
            False,
        ),
        "",
        "| faiss | recall@100 | queries/s |",
        "|---|---|---|",
    ]
    faiss_results = record["faiss"] if "error" not in record["faiss"] else {"faiss": record["faiss"]}
    for name, value in faiss_results.items():
        if "error" in value:
            lines.append(f"| {name} | {value['error']} | |")
        else:
            lines.append(f"| {name} | {value['recall_at_100']:.4f} | {value['queries_per_second']:.0f} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    from stages.models.packaged import ensure_packaged

    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.gpu_check", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--cpu-smoke", action="store_true", help="every part on the CPU at toy sizes (a test)")
    parser.add_argument("--sizes", choices=("gpu", "smoke"), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--train-only", default=None, help=argparse.SUPPRESS)  # torchrun's worker: record path
    parser.add_argument("--out", default=None, help="results folder (default: work/gpu-check)")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.gpu_check")
    config = config_from_args(args)
    smoke = args.cpu_smoke or args.sizes == "smoke"
    sizes = SMOKE if smoke else Sizes()
    device = "cpu" if smoke else "cuda"
    gpu = "CPU (smoke run: the figures mean nothing)" if smoke else require_gpu()
    model_path = ensure_packaged("multilingual-e5-small", config.work_root)
    out = Path(args.out) if args.out else config.work_root / "gpu-check"
    out.mkdir(parents=True, exist_ok=True)

    if args.train_only:
        result = train_part(model_path, device, sizes, out)
        if int(os.environ.get("RANK", "0")) == 0:
            Path(args.train_only).write_text(json.dumps(result, indent=2))
        return 0

    gpus = torch.cuda.device_count() if device == "cuda" else 1
    say(f"gpu-check on {gpu} x {gpus}: peak, rerank, encode, train, torchrun, faiss")
    record = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "gpu": gpu,
        "gpus": gpus,
        "torch": torch.__version__,
        "sizes": vars(sizes),
    }
    forwarded = ["--config", args.config, "--out", str(out)]
    forwarded += ["--data", args.data] if args.data else []
    forwarded += ["--models", args.models] if args.models else []
    sizes_name = "smoke" if smoke else "gpu"
    peak = measure_matmul("bfloat16", sizes.matmul, 3.0, device) * 1e9
    record["bf16_peak_tflops"] = peak / 1e12
    parts = {
        "rerank": lambda: rerank_part(model_path, device, sizes, peak),
        "encode": lambda: encode_part(model_path, device, sizes, peak),
        "train": lambda: train_subprocess(forwarded, sizes_name, out, 1, "train-one", torchrun=False),
        "train_torchrun": lambda: train_subprocess(forwarded, sizes_name, out, gpus, "train-torchrun", torchrun=True),
        "faiss": lambda: faiss_part(sizes, use_gpu=device == "cuda"),
    }
    for name, part in parts.items():
        try:  # a part that fails (memory, NCCL, a faiss build) is a row of the report, not the end of it
            record[name] = part()
        except Exception as error:
            log.warning("gpu-check part %s failed", name, exc_info=True)
            record[name] = {"error": f"{type(error).__name__}: {error}"}
        if device == "cuda":
            torch.cuda.empty_cache()
        say(f"{name}: {summary(record[name])}")
        with atomic_write(out / "report.json") as handle:  # after every part: a later crash keeps the rest
            json.dump(record, handle, indent=2)
    text = report(record)
    with atomic_write(out / "report.md") as handle:
        handle.write(text)
    say(text.rstrip("\n"))
    say(f"saved {out / 'report.md'}")
    return 0


def summary(result: dict) -> str:
    if "error" in result:
        return f"failed: {result['error']}"
    return ", ".join(f"{k} {v:.3g}" for k, v in result.items() if isinstance(v, float)) or "done"


if __name__ == "__main__":
    sys.exit(main())
