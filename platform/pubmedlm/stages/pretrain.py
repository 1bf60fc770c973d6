"""The `pretrain` stage: masked-LM (+ NSP) pretraining on Ray Train, resumable, tracked.

Everything that can be wrong with the input is checked here, before Ray starts: the `pretrain`
section exists, every phase's sequence length was packed and its splits are not empty, the global
batch divides into workers × micro-batch, the init checkpoint holds a model whose vocab matches
its tokenizer. The Ray run is named after a digest of the recipe and the packed data, so
rerunning the stage after a crash finds the same run in `runtime.storage_path` and resumes from
its latest checkpoint instead of starting over.

Outputs: `data/pretrain/model/` (HF format, safetensors, with its tokenizer), `config.yaml`
beside it, and `metrics/pretrain.json` (held-out MLM loss and accuracy, the unigram-frequency
baseline accuracy, tokens seen, device-hours, throughput).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np

from pubmedlm.config import Config
from pubmedlm.project import atomic_dir, clear_stale, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.text.models import resolve_model
from pubmedlm.train.packing import PackedSet
from pubmedlm.train.pretraining import PretrainError, check_batching

STAGE = "pretrain"
SECTIONS = ("pretrain",)


def _tokenizer_path(cfg: Config, root: Path) -> str:
    if cfg.pretrain.init == "scratch":
        return str(data_dir("vocab", root))
    return resolve_model(cfg.pretrain.init)


def validate(cfg: Config, root: Path) -> dict:
    """All input checks, before any compute; returns facts the run needs."""
    from transformers import AutoConfig

    from pubmedlm.stages.pack import PACK_INFO
    from pubmedlm.text.models import load_tokenizer

    if cfg.pretrain is None:
        raise PretrainError("params: the `pretrain` section is missing (see pipelines/profiles/paper.yaml)")
    pack = data_dir("pack", root)
    world, micro = cfg.runtime.num_workers, cfg.runtime.micro_batch_size
    for i, phase in enumerate(cfg.pretrain.phases):
        check_batching(phase.global_batch, micro, world, i)
        for split in ("train", "heldout"):
            folder = pack / f"len{phase.seq_len}" / split
            if not (folder / "meta.json").is_file():
                raise PretrainError(f"pretrain.phases[{i}]: no packed data for seq_len {phase.seq_len} ({folder}); "
                                    f"add it to pack.seq_lengths and rerun the pack stage")
            try:
                PackedSet(folder)
            except ValueError as e:
                raise PretrainError(str(e)) from None
    init = resolve_model(cfg.pretrain.init)
    if cfg.pretrain.init != "scratch" and Path(init).exists() and not (Path(init) / "config.json").is_file():
        raise PretrainError(f"pretrain.init: {init} holds no model (config.json missing)")
    tok_path = _tokenizer_path(cfg, root)
    tokenizer = load_tokenizer(Path(tok_path))
    packed_vocab = json.loads((pack / PACK_INFO).read_text())["vocab_size"]
    if packed_vocab != len(tokenizer):
        raise PretrainError(
            f"vocab mismatch: data/pack was tokenized with a {packed_vocab}-entry vocab, the model's tokenizer "
            f"({tok_path}) has {len(tokenizer)}; set pack.tokenizer to match pretrain.init and rerun pack"
        )
    if cfg.pretrain.init == "scratch":
        if cfg.pretrain.model.max_position_embeddings < max(p.seq_len for p in cfg.pretrain.phases):
            raise PretrainError("pretrain.model.max_position_embeddings is shorter than a phase's seq_len")
    else:
        init = resolve_model(cfg.pretrain.init)
        model_vocab = AutoConfig.from_pretrained(init).vocab_size
        if model_vocab != len(tokenizer):
            raise PretrainError(f"pretrain.init: model vocab_size {model_vocab} != its tokenizer's {len(tokenizer)} entries")
    return {"tokenizer": tok_path, "vocab_size": len(tokenizer)}


def run_name(cfg: Config, root: Path) -> str:
    """Same recipe + same packed data -> same Ray run name -> a rerun resumes it."""
    from pubmedlm.infra.lineage import dvc_hash

    digest = hashlib.sha256()
    digest.update(json.dumps(cfg.section("pretrain"), sort_keys=True).encode())
    digest.update(json.dumps([cfg.runtime.num_workers, cfg.runtime.micro_batch_size]).encode())
    for meta in sorted(data_dir("pack", root).rglob("meta.json")):
        digest.update(meta.read_bytes())
    digest.update(dvc_hash(Path(_tokenizer_path(cfg, root)) / "vocab.txt").encode()
                  if (Path(_tokenizer_path(cfg, root)) / "vocab.txt").is_file() else b"")
    return f"pretrain-{digest.hexdigest()[:12]}"


def unigram_baseline(cfg: Config, root: Path, tokenizer_path: str) -> float:
    """MLM accuracy of always predicting the most frequent training piece, on the held-out targets."""
    from pubmedlm.text.models import load_tokenizer
    from pubmedlm.train.mlm import IGNORE, vocab_info
    from pubmedlm.train.pretraining import heldout_batches

    p = cfg.pretrain
    last = p.phases[-1].seq_len
    info = vocab_info(load_tokenizer(Path(tokenizer_path)))
    train = PackedSet(data_dir("pack", root) / f"len{last}" / "train")
    sample = np.asarray(train.input_ids[: min(len(train), 2000)]).ravel().astype(np.int64)
    sample = sample[~info.special.numpy()[sample]]
    top = int(np.bincount(sample, minlength=info.size).argmax())
    heldout = PackedSet(data_dir("pack", root) / f"len{last}" / "heldout")
    batches = heldout_batches(heldout, info, p.mlm_probability, p.whole_word_mask, p.eval_batches,
                              cfg.runtime.micro_batch_size, p.seed)
    labels = np.concatenate([b["labels"].numpy().ravel() for b in batches])
    labels = labels[labels != IGNORE]
    return float((labels == top).mean())


def _trainer(cfg: Config, worker_cfg: dict, name: str, storage: str):
    import ray.train
    from ray.train.torch import TorchTrainer

    from pubmedlm.train.ray_pretrain import pretrain_worker

    rt = cfg.runtime
    use_gpu = rt.gpus_per_worker > 0
    resources = {"CPU": rt.cpus_per_worker, **({"GPU": rt.gpus_per_worker} if use_gpu else {})}
    return TorchTrainer(
        pretrain_worker,
        train_loop_config=worker_cfg,
        scaling_config=ray.train.ScalingConfig(num_workers=rt.num_workers, use_gpu=use_gpu,
                                               resources_per_worker=resources,
                                               placement_strategy=rt.placement_strategy),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=cfg.pretrain.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.ray_runtime import init_ray, storage_path
    from pubmedlm.infra.tracking import stage_run, tracking_uri
    from pubmedlm.train.ray_pretrain import HF_DIR

    root = project_root()
    facts = validate(cfg, root)
    out_dir = data_dir(STAGE, root)
    clear_stale(out_dir)
    name = run_name(cfg, root)
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        # Lineage: the packed data it trains on, and the corpus and vocab versions behind it.
        upstream = [Path("data/pack"), Path("data/corpus")] + ([Path("data/vocab")] if cfg.pretrain.init == "scratch" else [])
        tracked.add_inputs([p for p in upstream if (root / p).exists()])
        tracked.set_tags({"ray.run_name": name, "ray.storage_path": storage_path(cfg, root)})
        worker_cfg = {
            "pretrain": cfg.section("pretrain"), "init": resolve_model(cfg.pretrain.init),
            "tokenizer": facts["tokenizer"], "pack_dir": str(data_dir("pack", root)),
            "micro_batch": cfg.runtime.micro_batch_size, "threads": cfg.runtime.cpus_per_worker,
            "total_steps": sum(p.steps for p in cfg.pretrain.phases), "world": cfg.runtime.num_workers,
            "run_id": tracked.run_id, "tracking_uri": tracking_uri(cfg, root), "peak_flops": cfg.runtime.peak_flops,
        }
        init_ray(cfg)
        t0 = time.time()
        result = _trainer(cfg, worker_cfg, name, storage_path(cfg, root)).fit()
        hours = (time.time() - t0) / 3600 * cfg.runtime.num_workers
        metrics = {**{k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
                   "unigram_baseline_accuracy": unigram_baseline(cfg, root, facts["tokenizer"]),
                   "worker_hours": hours}
        with atomic_dir(out_dir) as tmp, result.checkpoint.as_directory() as ckpt:
            shutil.copytree(Path(ckpt) / HF_DIR, tmp / "model")
            write_resolved_config(tmp, cfg, SECTIONS)
        mpath = metrics_path(STAGE, root)
        write_json(mpath, metrics)
        tracked.log_metrics({f"final/{k}": v for k, v in metrics.items()})
        tracked.log_artifact(mpath)
    return StageResult(STAGE, {"model": out_dir / "model", "metrics": mpath}, metrics, tracked.run_id)
