"""The `encoder` stage: which encoder the BLURB stages fine-tune, pinned by its content.

`finetune.model` names it (`pretrain`: this pipeline's model in `data/pretrain/model/`; `minilm`;
a local HF folder or a hub id). The stage writes `data/encoder/encoder.json` with the name, the
resolved path and the content id (the DVC hash of the model folder; a hub id is its own id).
`tune`, `finetune` and `register` depend on this small file instead of on `data/pretrain`:
retraining the pipeline's model reruns them only when they fine-tune it, because with another
encoder this stage writes the same bytes again and DVC sees their dependency unchanged.

Outputs: `data/encoder/encoder.json` (only what pins the encoder, so that other finetune params
do not churn it), `metrics/encoder.json`.
"""

from __future__ import annotations

from pathlib import Path

from pubmedlm.config import Config
from pubmedlm.infra.lineage import content_id
from pubmedlm.project import atomic_dir, data_dir, metrics_path, project_root, write_json
from pubmedlm.stages import StageResult
from pubmedlm.text.models import model_label, resolve_encoder

STAGE = "encoder"
SECTIONS = ("finetune",)
MANIFEST = "encoder.json"


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.tracking import stage_run

    root = project_root()
    name = cfg.finetune.model
    path = resolve_encoder(name, root)
    shown = Path(path).relative_to(root).as_posix() if Path(path).is_relative_to(root) else (
        name if not Path(path).exists() else f"<{name}>")  # no machine paths in a versioned output
    pinned = {"model": name, "label": model_label(name), "path": shown, "content_id": content_id(path)}
    out = data_dir(STAGE, root)
    with stage_run(STAGE, cfg, SECTIONS, params_file) as tracked:
        with atomic_dir(out) as tmp:
            write_json(tmp / MANIFEST, pinned)
        write_json(metrics_path(STAGE, root), {"model": name, "content_id": pinned["content_id"]})
        tracked.set_tags({"encoder.model": name, "encoder.content_id": pinned["content_id"]})
    return StageResult(STAGE, {"encoder": out / MANIFEST}, pinned, tracked.run_id)


def summary(result: StageResult) -> str:
    return f"encoder {result.metrics['model']} ({result.metrics['path']}): {result.metrics['content_id']}"
