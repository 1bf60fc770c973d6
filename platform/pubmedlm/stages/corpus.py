"""The `corpus` stage: PubMed/MEDLINE XML, PMC full text and plain-text corpora in; cleaned,
deduplicated, BLURB-test-free JSONL shards out (`data/corpus/`), with `metrics/corpus.json`.

The work lives in `pubmedlm.corpus` (readers, cleaning, staging, exclusion, shard writing); this
module resolves inputs, reads the BLURB test documents the blurb-data stage exported
(`data/blurb_data/exports/`: the stage runs after blurb-data), wires tracking and publishes the
output atomically (`project.publication`): the new folder and metrics file replace the earlier ones
only when the whole build succeeded; a failure or a signal leaves them as they were.
"""

from __future__ import annotations

import time
from pathlib import Path

from pubmedlm.blurb.exports import read_test_documents
from pubmedlm.config import Config
from pubmedlm.corpus.build import build_corpus
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.exclusion import BlurbExclusion, load_exclusion
from pubmedlm.corpus.inputs import resolve_inputs
from pubmedlm.infra.tracking import stage_run
from pubmedlm.project import data_dir, metrics_path, project_root, publication
from pubmedlm.stages import StageResult, write_resolved_config

STAGE = "corpus"


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def _exclusion(cfg: Config, root: Path) -> BlurbExclusion:
    """The index of the BLURB test documents blurb-data exported."""
    blurb_dir = data_dir("blurb_data", root)
    try:
        docs = read_test_documents(blurb_dir)
    except FileNotFoundError as e:
        raise CorpusError(f"corpus.exclude_blurb_test is on but {e}") from None
    return load_exclusion(docs, cfg.corpus.exclusion_ngram, cfg.corpus.exclusion_min_hits, str(blurb_dir))


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    """Build the pretraining corpus; returns its folder, metrics file and MLflow run."""
    root = project_root()
    out, metrics_file = data_dir(STAGE, root), metrics_path(STAGE, root)
    c, progress = cfg.corpus, cfg.runtime.progress
    cache = root / cfg.runtime.cache_dir
    inputs = resolve_inputs(c.inputs, c.catalogs, cache, root, progress)  # found and verified first
    with stage_run(STAGE, cfg, (STAGE,), params_file) as tracker:
        tracker.add_sources({i.label: i.sha256 for i in inputs})
        tracker.add_inputs([i.path for i in inputs if _inside(i.path, root)])
        exclusion = None
        if c.exclude_blurb_test:
            exclusion = _exclusion(cfg, root)
            tracker.add_inputs([Path("data/blurb_data")])
        start = time.perf_counter()
        with publication(out) as staged:
            metrics = build_corpus(inputs, c, staged.dirs[0], exclusion, progress)
            write_resolved_config(staged.dirs[0], cfg, (STAGE,))
            staged.write_json(metrics_file, metrics)
        seconds = time.perf_counter() - start
        # Per-source counts stay in the metrics file: file names make poor MLflow metric keys.
        tracker.log_metrics({k: v for k, v in metrics.items() if k != "sources"})
        tracker.log_metrics({"build_seconds": seconds,
                             "records_per_second": metrics["records_read"] / seconds})
        tracker.log_artifact(metrics_file)
    return StageResult(STAGE, {"corpus": out, "metrics": metrics_file}, metrics, tracker.run_id)
