"""The `pretrain` stage: masked-LM (+ NSP) pretraining on Ray Train, resumable, tracked.

Everything that can be wrong with the input is checked before Ray starts
(`train.pretraining.check_inputs`). The Ray run is named after a digest of the recipe and the packed data, so
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

from pubmedlm.config import Config
from pubmedlm.project import data_dir, metrics_path, project_root, publication
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.text.models import pack_tokenizer, resolve_model

STAGE = "pretrain"
SECTIONS = ("pretrain",)


def _tokenizer_path(cfg: Config, root: Path) -> str:
    """From scratch: the tokenizer that packed the data (`pack.tokenizer`: the in-domain vocab, or a
    general model's vocab); continued pretraining: the init model's own tokenizer."""
    return (pack_tokenizer(cfg.pack.tokenizer, root) if cfg.pretrain.init == "scratch"
            else resolve_model(cfg.pretrain.init))


def validate(cfg: Config, root: Path) -> tuple[str, str]:
    """Check every input before any compute; returns (init, tokenizer path) for the job."""
    from pubmedlm.train.pretraining import check_inputs

    init = ("scratch" if cfg.pretrain is None or cfg.pretrain.init == "scratch"
            else resolve_model(cfg.pretrain.init))
    tokenizer = _tokenizer_path(cfg, root) if cfg.pretrain else ""
    check_inputs(cfg.pretrain, cfg.runtime, data_dir("pack", root), init, tokenizer)
    return init, tokenizer


def run_name(cfg: Config, root: Path) -> str:
    """Same recipe + same packed data -> same Ray run name -> a rerun resumes it."""
    from pubmedlm.infra.lineage import dvc_hash

    digest = hashlib.sha256()
    digest.update(json.dumps(cfg.section("pretrain"), sort_keys=True).encode())
    digest.update(json.dumps([cfg.runtime.num_workers, cfg.runtime.micro_batch_size]).encode())
    for meta in sorted(data_dir("pack", root).rglob("meta.json")):
        digest.update(meta.read_bytes())
    vocab = Path(_tokenizer_path(cfg, root)) / "vocab.txt"
    digest.update(dvc_hash(vocab).encode() if vocab.is_file() else b"")
    return f"pretrain-{digest.hexdigest()[:12]}"


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra import cost
    from pubmedlm.infra.ray_runtime import init_ray, storage_path
    from pubmedlm.infra.tracking import stage_run
    from pubmedlm.train.pretraining import unigram_baseline
    from pubmedlm.train.ray_pretrain import HF_DIR, PretrainJob, make_trainer

    root = project_root()
    pack = data_dir("pack", root)
    init, tokenizer = validate(cfg, root)
    out_dir, mpath = data_dir(STAGE, root), metrics_path(STAGE, root)
    name = run_name(cfg, root)
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        # Lineage: the packed data it trains on, and the corpus and vocab versions behind it.
        upstream = ([Path("data/pack"), Path("data/corpus")]
                    + ([Path("data/vocab")] if init == "scratch" and cfg.pack.tokenizer == "vocab" else []))
        tracked.add_inputs([p for p in upstream if (root / p).exists()])
        tracked.set_tags({"ray.run_name": name, "ray.storage_path": storage_path(cfg, root)})
        job = PretrainJob(cfg.pretrain, cfg.runtime, init, tokenizer, str(pack), tracked.ref)
        init_ray(cfg)
        t0 = time.time()
        result = make_trainer(job, name, storage_path(cfg, root)).fit()
        wall = time.time() - t0
        baseline = unigram_baseline(cfg.pretrain, pack, tokenizer, cfg.runtime.micro_batch_size)
        metrics = {**{k: v for k, v in result.metrics.items() if isinstance(v, int | float)},
                   "unigram_baseline_accuracy": baseline}
        metrics[cost.KEY] = cost.entry(cfg.runtime, wall, metrics.get("tokens_seen"), wall,
                                       workers=cfg.runtime.num_workers)
        with publication(out_dir) as staged, result.checkpoint.as_directory() as ckpt:
            shutil.copytree(Path(ckpt) / HF_DIR, staged.dirs[0] / "model")
            write_resolved_config(staged.dirs[0], cfg, SECTIONS)
            staged.write_json(mpath, metrics)
        tracked.log_metrics({f"final/{k}": v for k, v in metrics.items() if k != cost.KEY})
        tracked.log_cost(metrics[cost.KEY])
        tracked.log_artifact(mpath)
    return StageResult(STAGE, {"model": out_dir / "model", "metrics": mpath}, metrics, tracked.run_id)
