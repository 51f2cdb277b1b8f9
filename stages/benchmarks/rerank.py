"""Benchmark: cross-encoder reranking throughput, our scoring beside a straightforward baseline.

    python -m stages.benchmarks.rerank          (make bench-rerank)

On a fixed sample of query-passage pairs (`bench.rerank_pairs`, built from the sample collection's
dev queries and passages, up to `max_length` tokens, seeded) and one model (by default a randomly
initialised encoder of MiniLM-L6's shape over the project's tokenizer: speed depends on the shape,
not the weights), it times, alternately and `bench.repeats` times:
  ours       stages.models.cross_encoder.score_pairs on the model as the stage loads it (batches sorted by
             length, no gradients; bfloat16 on a GPU)
  baseline   sentence-transformers' CrossEncoder.predict over the pairs in their given order
It reports pairs/s for each (median), their ratio, the model's FLOPs per pair (counted with torch's
FlopCounterMode on a full-length batch), the achieved FLOP/s, and the machine's matrix-multiply peak
measured here with torch (float32, and bfloat16), so the distance to the hardware's limit is visible.
Results: work/bench/rerank/report.md and report.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from stages.config import Config, add_config_arguments, config_from_args
from stages.console import say, setup
from stages.formats import ReleaseLayout, atomic_write, iter_corpus


def bench_pairs(config: Config, count: int, seed: int) -> list[tuple[str, str]]:
    """Dev queries with 1-4 concatenated passages of the same language: varied lengths, as BM25 lists are."""
    layout, rng = ReleaseLayout(config.data_root), random.Random(seed)
    pools = []
    for lang in config.languages:
        split = config.evaluation.split
        if split in config.languages[lang].splits and layout.topics_path(lang, split).is_file():
            texts = [f"{p.title}: {p.text}" for _, _, p in iter_corpus(layout.corpus_dir(lang))]
            pools.append((list(layout.topics(lang, split).values()), texts))
    pairs = []
    while len(pairs) < count:
        queries, texts = rng.choice(pools)
        pairs.append((rng.choice(queries), " ".join(rng.sample(texts, rng.randint(1, 4)))))
    return pairs


def shaped_model(config: Config, out: Path) -> Path:
    """A randomly initialised XLM-R with the configured shape, over the project's tiny tokenizer."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaForSequenceClassification

    from stages.models.tiny import ensure_tiny_model

    bench = config.bench
    tokenizer = AutoTokenizer.from_pretrained(ensure_tiny_model(config))
    torch.manual_seed(bench.seed)
    model = XLMRobertaForSequenceClassification(
        XLMRobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=bench.rerank_hidden,
            num_hidden_layers=bench.rerank_layers,
            num_attention_heads=bench.rerank_heads,
            intermediate_size=bench.rerank_intermediate,
            max_position_embeddings=bench.rerank_max_length + 2,
            num_labels=1,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def flops_per_pair(model, pairs: list[tuple[str, str]], batch_size: int) -> float:
    """Forward FLOPs of one pair padded to the longest in a batch of the longest pairs."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    longest = sorted(pairs, key=lambda p: -(len(p[0]) + len(p[1])))[:batch_size]
    features = model.preprocess(longest)
    features = {k: v.to(model.device) if hasattr(v, "to") else v for k, v in features.items()}
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(features)
    return counter.get_total_flops() / len(longest), int(features["input_ids"].shape[1])


def matmul_peak(dtype_name: str, size: int = 2048, seconds: float = 2.0) -> float:
    """FLOP/s of repeated size x size matrix products in this dtype, on the device the model uses."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, dtype_name)
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.matmul(a, b)
    runs, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        torch.matmul(a, b)
        runs += 1
    if device == "cuda":
        torch.cuda.synchronize()
    return 2 * size**3 * runs / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    import torch
    from sentence_transformers.cross_encoder import CrossEncoder

    from stages.models.cross_encoder import load_model, score_pairs

    parser = argparse.ArgumentParser(prog="python -m stages.benchmarks.rerank", description=__doc__.splitlines()[0])
    add_config_arguments(parser, lang=False, split=False)
    parser.add_argument("--model", default=None, help="a model folder to time instead of the configured shape")
    args = parser.parse_args(argv)
    setup("stages.benchmarks.rerank")
    config = config_from_args(args)
    bench = config.bench
    root = config.work_root / "bench" / "rerank"
    root.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else shaped_model(config, root / "model")
    pairs = bench_pairs(config, bench.rerank_pairs, bench.seed)
    ours_model = load_model(model_path, bench.rerank_max_length)
    baseline_model = CrossEncoder(str(model_path), num_labels=1, max_length=bench.rerank_max_length)
    flops, tokens = flops_per_pair(baseline_model, pairs, bench.rerank_batch_size)
    times = {"ours": [], "baseline": []}
    score_pairs(ours_model, pairs[:64], bench.rerank_batch_size, "warm-up")
    for round_ in range(bench.repeats):
        for name in ("baseline", "ours") if round_ % 2 else ("ours", "baseline"):
            started = time.perf_counter()
            if name == "ours":
                score_pairs(ours_model, pairs, bench.rerank_batch_size, "ours")
            else:
                baseline_model.predict(pairs, batch_size=bench.rerank_batch_size, show_progress_bar=False)
            times[name].append(time.perf_counter() - started)
            say(f"round {round_ + 1} {name}: {len(pairs) / times[name][-1]:.1f} pairs/s")
    rate = {name: len(pairs) / statistics.median(t) for name, t in times.items()}
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU, {torch.get_num_threads()} threads"
    result = {
        "device": device,
        "pairs": len(pairs),
        "max_length": bench.rerank_max_length,
        "longest_batch_tokens": tokens,
        "model": str(model_path),
        "repeats": bench.repeats,
        "pairs_per_second": rate,
        "ratio_ours_to_baseline": rate["ours"] / rate["baseline"],
        "gflops_per_pair_at_longest": flops / 1e9,
        "matmul_peak_gflops": {k: v / 1e9 for k, v in peaks.items()},
        "seconds": times,
    }
    report = "\n".join(
        [
            f"# Cross-encoder reranking, {len(pairs)} pairs (up to {bench.rerank_max_length} tokens), {device}",
            "",
            "| | pairs/s | ours / baseline |",
            "|---|---|---|",
            f"| ours (stages.rerank_ce) | {rate['ours']:.1f} | {rate['ours'] / rate['baseline']:.2f} |",
            f"| baseline (CrossEncoder.predict) | {rate['baseline']:.1f} | 1.00 |",
            "",
            f"Model: {bench.rerank_layers} layers, hidden {bench.rerank_hidden} ({model_path}); "
            f"{flops / 1e9:.2f} GFLOP per pair at {tokens} tokens (an upper bound: most pairs are shorter).",
            f"Achieved at that bound: ours {rate['ours'] * flops / 1e9:.1f} GFLOP/s, baseline {rate['baseline'] * flops / 1e9:.1f} GFLOP/s; "
            f"measured matmul peak here: {peaks['float32'] / 1e9:.1f} GFLOP/s float32, {peaks['bfloat16'] / 1e9:.1f} GFLOP/s bfloat16.",
            "",
        ]
    )
    with atomic_write(root / "report.md") as out:
        out.write(report)
    with atomic_write(root / "report.json") as out:
        json.dump(result, out, indent=2)
    say(report.rstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
