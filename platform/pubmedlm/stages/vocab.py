"""The `vocab` stage: train the in-domain uncased WordPiece vocabulary and report its fragmentation.

Reads `data/corpus/train-*.jsonl` (training) and `heldout-*.jsonl` (analysis), plus what the
blurb-data stage exported for it (`data/blurb_data/exports/`: NER train mentions, model inputs of
each published split). Writes:

* `data/vocab/`: the tokenizer (`vocab.txt`, `tokenizer.json`, `tokenizer_config.json`) that
  `AutoTokenizer.from_pretrained` loads, and `config.yaml` (the `vocab` params that made it);
* `metrics/vocab.json`: headline numbers, e.g. `ner_mentions.ours.pieces_per_word` against
  `ner_mentions.reference.pieces_per_word`, the same under `heldout`, `input_length.<dataset>.<split>`;
* `reports/vocab/vocab.md` and `reports/vocab/fragmentation.png`.

The MLflow run gets the metrics, the training time and the report folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pubmedlm.blurb import exports, tasks
from pubmedlm.config import Config, ConfigError
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.shards import iter_texts, shard_paths
from pubmedlm.project import data_dir, metrics_path, project_root, publication, reports_dir
from pubmedlm.stages import StageResult, write_resolved_config
from pubmedlm.text.models import load_tokenizer
from pubmedlm.vocab import fragmentation as frag
from pubmedlm.vocab.report import render_chart, render_markdown
from pubmedlm.vocab.train import save_tokenizer, train_vocab

STAGE = "vocab"
SECTIONS = ("vocab",)


def load_reference(name: str):
    """The reference tokenizer; a bad path or hub id is a params error, reported before any work."""
    try:
        return load_tokenizer(name)
    except (OSError, ValueError) as e:
        raise ConfigError(f"vocab.reference_tokenizer={name!r}: cannot load a tokenizer from it: {e}") from e


def analyse(cfg: Config, ours, reference, corpus_dir: Path, blurb_dir: Path | None) -> dict[str, Any]:
    """Every comparison of the report, ours against the reference tokenizer; `examples` (tokens,
    not numbers) goes to the report only, the rest to metrics/vocab.json. BLURB rows need
    blurb-data's exports (`blurb_dir`; None: none)."""
    vc, progress = cfg.vocab, cfg.runtime.progress
    heldout = list(iter_texts(shard_paths(corpus_dir, "heldout"), vc.heldout_max_documents))
    mentions = exports.read_ner_mentions(blurb_dir) if blurb_dir else {}
    folders = [t.folder for t in tasks.all_tasks().values()]  # the exports' dataset names
    lengths = (frag.compare_input_lengths(ours, reference, blurb_dir, folders, tasks.SPLITS, progress)
               if blurb_dir else {})
    return {
        "reference": {"name": vc.reference_tokenizer, "vocab_size": len(reference)},
        "heldout": frag.compare_heldout(ours, reference, heldout) if heldout else None,
        "ner_mentions": frag.compare_mentions(ours, reference, mentions, progress),
        "input_length": lengths,
        "examples": frag.example_words(ours, reference, vc.example_words),
    }


def notes(metrics: dict[str, Any], blurb_dir: Path | None) -> list[str]:
    """What the report lacks, and why (the reader must not mistake a gap for a result)."""
    out = []
    if metrics["heldout"] is None:
        out.append("No held-out corpus documents (corpus.heldout_fraction = 0?): held-out rows omitted.")
    if blurb_dir is None:
        out.append("No BLURB exports (run `pubmedlm blurb-data` first): no NER mention or input-length rows.")
        return out
    table = tasks.all_tasks().values()
    by_dataset = metrics["ner_mentions"]["by_dataset"]
    missing = [t.folder for t in table if t.task_type == "ner" and t.folder not in by_dataset]
    if missing:
        out.append(f"NER train sets blurb-data did not prepare (not pooled): {', '.join(missing)}.")
    absent = [t.folder for t in table if t.folder not in metrics["input_length"]]
    if absent:
        out.append(f"BLURB datasets blurb-data did not prepare: {', '.join(absent)}.")
    partial = [f"{n} ({', '.join(s for s in tasks.SPLITS if s not in splits)})"
               for n, splits in metrics["input_length"].items() if len(splits) < len(tasks.SPLITS)]
    if partial:
        out.append(f"Splits with no published BLURB file (converted or proxy splits are not measured): "
                   f"{'; '.join(partial)}.")
    return out


def run(cfg: Config, params_file: str | Path = "params.yaml") -> StageResult:
    from pubmedlm.infra.tracking import stage_run

    root = project_root()
    corpus_dir, out_dir, report_dir = (data_dir("corpus", root), data_dir(STAGE, root),
                                       reports_dir(STAGE, root))
    mpath = metrics_path(STAGE, root)
    blurb_dir = data_dir("blurb_data", root)
    blurb_dir = blurb_dir if exports.folder(blurb_dir).is_dir() else None  # without it: no BLURB rows, a note
    reference = load_reference(cfg.vocab.reference_tokenizer)
    if not shard_paths(corpus_dir, "train"):
        raise CorpusError(f"{corpus_dir}: no train-*.jsonl shards (run the corpus stage first)")
    with stage_run(STAGE, cfg, SECTIONS, params_file) as run_:
        run_.add_inputs([Path("data/corpus"), Path("data/blurb_data")])
        started = time.perf_counter()
        tokenizer, facts = train_vocab(corpus_dir, cfg.vocab, cfg.runtime.progress)
        train_seconds = time.perf_counter() - started
        # The tokenizer, the report and the metrics file are published together, or not at all.
        with publication(out_dir, report_dir) as staged:
            tmp, report_tmp = staged.dirs
            save_tokenizer(tokenizer, tmp)
            write_resolved_config(tmp, cfg, SECTIONS)
            ours = load_tokenizer(tmp)  # reloaded from disk, exactly as later stages will
            # Recipe facts only, no timings: the metrics file is the same on every machine.
            metrics = {"vocab": {**facts, "lowercase": cfg.vocab.lowercase},
                       **analyse(cfg, ours, reference, corpus_dir, blurb_dir)}
            examples = metrics.pop("examples")
            text = render_markdown(metrics, examples, notes(metrics, blurb_dir))
            (report_tmp / "vocab.md").write_text(text, encoding="utf-8")
            render_chart(metrics, report_tmp / "fragmentation.png")
            staged.write_json(mpath, metrics)
        run_.log_metrics(metrics)
        run_.log_metrics({"train_seconds": round(train_seconds, 2)})
        run_.log_artifact(mpath)
        run_.log_artifact(report_dir, artifact_path="report")
    return StageResult(
        STAGE,
        {"vocab": out_dir, "metrics": mpath, "report": report_dir / "vocab.md"},
        _headline(metrics) | {"train_seconds": round(train_seconds, 2)},
        run_.run_id,
    )


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """Pieces per word, ours and reference, on NER mentions and held-out text (where measured)."""
    out: dict[str, Any] = {"vocab_size": metrics["vocab"]["vocab_size"]}
    measured = {"ner_mentions": metrics["ner_mentions"]["mentions"] > 0,
                "heldout": metrics["heldout"] is not None}
    for part in (p for p, ok in measured.items() if ok):
        for side in ("ours", "reference"):
            out[f"{part}.{side}.pieces_per_word"] = metrics[part][side]["pieces_per_word"]
    return out
