"""A training step's learning curve (`python -m stages.learning_curve` draws one; its docstring tells how): the
step trained again into a scratch folder, with a trainer callback scoring the model in training by the
reranking stage's own code and metric (dev nDCG@10 over BM25's candidates), and the curve written as a
table, a plot and the json of every point.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from stages.config import Config, ConfigError
from stages.errors import InputDataError
from stages.formats import ReleaseLayout, read_run
from stages.formats.jsonfile import write_json

log = logging.getLogger("stages.training.curve")


CE_STEPS = ("ce-nmt", "ce")  # the cross-encoder's models; the bi-encoder's are named by bi_encoder.name


@dataclass
class DevSet:
    """One language's judged dev queries with BM25's candidates and their passage texts."""

    topics: dict[str, str]
    shortlist: dict[str, list[str]]
    texts: dict[str, str]
    qrels: dict


def dev_sets(config: Config, depth: int) -> dict[str, DevSet]:
    """Every language with judged dev queries and a BM25 dev run."""
    from stages.data.passages import fetch_passages
    from stages.retrieval.shortlist import candidates

    layout, split, sets = ReleaseLayout(config.data_root), config.evaluation.split, {}
    for lang in config.languages:
        bm25 = config.run_path("bm25", lang, split)
        if split not in config.languages[lang].splits or not layout.has_qrels(lang, split):
            continue
        if not bm25.is_file():
            raise InputDataError(None, None, f"no BM25 {split} run at {bm25}; `make bm25` writes it")
        shortlist = candidates(read_run(bm25), depth)
        texts = fetch_passages(layout.corpus_dir(lang), {d for docids in shortlist.values() for d in docids})
        sets[lang] = DevSet(layout.topics(lang, split), shortlist, texts, layout.qrels(lang, split))
    if not sets:
        raise InputDataError(None, None, f"no language has judged {split} queries with BM25 candidates to score")
    return sets


def scorer(config: Config, model_name: str):
    """(depth, score(model, dev_set) -> run) of the reranker that serves `model_name`."""
    from stages.models.precision import PRECISIONS, resolve

    def torch_precision(setting: str) -> str:
        # Checkpoints change every few steps and an export each would cost more than it saves: an exported
        # backend's setting means float32 torch here, and auto keeps torch's own rule (stages.models.precision).
        return resolve(setting if setting in PRECISIONS else "fp32", config.work_root)

    if model_name in CE_STEPS:
        from stages.retrieval.rerank_ce import rerank

        ce = config.cross_encoder
        precision = torch_precision(ce.rerank_precision)
        return ce.rerank_depth, lambda model, d: rerank(
            model, d.topics, d.shortlist, d.texts, ce.rerank_batch_size, "curve", precision
        )
    from stages.retrieval.rerank_bi import rerank

    bi = config.bi_encoder
    precision = torch_precision(bi.encode_precision)
    return bi.rerank_depth, lambda model, d: rerank(
        model, d.topics, d.shortlist, d.texts, bi.encode_batch_size, "curve", precision
    )


def dev_ndcg(model, sets: dict[str, DevSet], score) -> dict[str, float]:
    """nDCG@10 per language of `model` reranking each dev set, in inference mode, the model's mode restored."""
    from stages.retrieval.evaluation import evaluate_run

    was_training = model.training
    try:
        return {lang: evaluate_run(d.qrels, score(model, d), ["ndcg@10"])["ndcg@10"] for lang, d in sets.items()}
    finally:
        model.train(was_training)


def read_points(path: Path) -> dict[int, dict]:
    """Points by step (a resumed curve re-scores its first step: the later line wins)."""
    points = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                point = json.loads(line)
                points[point["step"]] = point
    return points


def curve_callback(sets: dict[str, DevSet], score, every: int, points_file: Path):
    """A TrainerCallback scoring the model at the first step it sees, every `every` steps, and at the end."""
    from transformers import TrainerCallback

    # The Trainer's own evaluation loop computes losses on an eval dataset; a ranking metric over
    # BM25's candidates needs the reranker's scoring, which no sentence-transformers evaluator shares.
    class DevCurve(TrainerCallback):
        def __init__(self):
            self.scored = set()

        def _score(self, state, model):
            if state.global_step in self.scored:
                return
            by_language = dev_ndcg(model, sets, score)
            losses = [
                entry["loss"] for entry in state.log_history if "loss" in entry and entry["step"] <= state.global_step
            ]
            point = {
                "step": state.global_step,
                "epoch": round(float(state.epoch or 0.0), 4),
                "ndcg@10": round(float(np.mean(list(by_language.values()))), 6),
                "training_loss": round(losses[-1], 6) if losses else None,
                "by_language": {lang: round(v, 6) for lang, v in by_language.items()},
            }
            with points_file.open("a", encoding="utf-8") as out:
                out.write(json.dumps(point) + "\n")
            self.scored.add(state.global_step)
            log.info(
                "step %d: dev nDCG@10 %.4f (training loss %s)", point["step"], point["ndcg@10"], point["training_loss"]
            )

        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self._score(state, model)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every == 0:
                self._score(state, model)

        def on_train_end(self, args, state, control, model=None, **kwargs):
            self._score(state, model)

    return DevCurve()


def train_with_curve(config: Config, model_name: str, out: Path, callback) -> Path:
    """Train `model_name`'s step into `out`, as its make target would, with `callback` on the trainer."""
    if model_name in CE_STEPS:
        from stages.training.ce import train_step

        return train_step(config, "nmt" if model_name == "ce-nmt" else "miracl", out, [callback])
    from stages.training.bi import train_kd, train_miracl

    train = train_kd if model_name.endswith("-kd") else train_miracl
    return train(config, out, [callback])


def steps(config: Config) -> list[str]:
    """The models a training step makes (bi-init trains nothing)."""
    bi = config.bi_encoder.name
    return [*CE_STEPS, f"{bi}-kd", bi]


def write_curve(points: list[dict], model_name: str, out_dir: Path, record: dict) -> dict[str, Path]:
    """The curve as a table (markdown, csv), a plot, and the json of every point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    frame = pd.DataFrame([{k: p[k] for k in ("step", "epoch", "training_loss", "ndcg@10")} for p in points])
    paths = {kind: out_dir / f"curve.{model_name}.{kind}" for kind in ("md", "csv", "png", "json")}
    out_dir.mkdir(parents=True, exist_ok=True)
    shown = pd.DataFrame(
        {
            "step": frame["step"].astype(int).astype(str),
            "epoch": frame["epoch"].map("{:.2f}".format),
            "training loss (last logged)": frame["training_loss"].map(lambda v: "" if pd.isna(v) else f"{v:.4f}"),
            "dev nDCG@10": frame["ndcg@10"].map("{:.4f}".format),
        }
    )
    table = shown.to_markdown(index=False, disable_numparse=True, colalign=("right",) * 4) + "\n"
    for kind, text in (("md", table), ("csv", frame.to_csv(index=False))):
        tmp = paths[kind].with_name(paths[kind].name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(paths[kind])
    figure, axis = plt.subplots(figsize=(6, 3.5))
    axis.plot(frame["step"], frame["ndcg@10"], marker="o", label="dev nDCG@10 (18-language mean)")
    axis.set_xlabel("training step")
    axis.set_ylabel("dev nDCG@10")
    axis.set_title(f"{model_name}: dev nDCG@10 while training")
    if frame["training_loss"].notna().any():
        loss_axis = axis.twinx()
        loss_axis.plot(frame["step"], frame["training_loss"], color="grey", linestyle="--", label="training loss")
        loss_axis.set_ylabel("training loss (last logged)")
    figure.tight_layout()
    tmp = paths["png"].with_name(paths["png"].stem + ".tmp.png")
    figure.savefig(tmp, dpi=120)
    plt.close(figure)
    tmp.replace(paths["png"])
    write_json(paths["json"], record | {"points": points})
    return paths


def learning_curve(config: Config, model_name: str, every: int) -> dict[str, Path]:
    if every < 1:
        raise ConfigError(f"--every {every}: score the model every 1 or more training steps")
    if model_name not in steps(config):
        raise ConfigError(f"no training step makes {model_name}; choose one of {', '.join(steps(config))}")
    depth, score = scorer(config, model_name)
    sets = dev_sets(config, depth)
    scratch = config.work_dir / "curves" / model_name
    scratch.mkdir(parents=True, exist_ok=True)
    points_file = scratch / "points.jsonl"
    model = train_with_curve(config, model_name, scratch / "model", curve_callback(sets, score, every, points_file))
    training = json.loads((model / "training.json").read_text(encoding="utf-8"))
    points = sorted(read_points(points_file).values(), key=lambda p: p["step"])
    record = {
        "model": model_name,
        "every": every,
        "config": str(config.source),
        "collection": config.collection,
        "split": config.evaluation.split,
        "depth": depth,
        "languages": list(sets),
        "training_inputs": training.get("inputs"),
        "seconds": training.get("seconds"),
    }
    paths = write_curve(points, model_name, config.work_dir / "reports", record)
    shutil.rmtree(scratch)  # the scratch model (hundreds of MB for e5-small) and its points, now in the json
    log.info(
        "%s: %d points, dev nDCG@10 %.4f at step 0 -> %.4f at step %d -> %s",
        model_name,
        len(points),
        points[0]["ndcg@10"],
        points[-1]["ndcg@10"],
        points[-1]["step"],
        paths["md"],
    )
    return paths
