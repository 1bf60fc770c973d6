"""Assembling one BLURB dataset's normalized train/dev/test from whatever sources are available.

Owns the source policy of the `blurb-data` stage and the per-split choice of how a split is built:

* **Sources.** A path declared in a catalog (the built-in one or `blurb_data.catalogs`) is fetched
  and verified against its sha256 (a mismatch is an error). A path declared nowhere but present in
  the data mirror at the task table's path (BC2GM, BioASQ: kept out of the built-in catalog) is used
  with its sha256 recorded and flagged `verified: false`. Anything else is absent, with the reason.
* **Splits.** The published BLURB file when it is available; otherwise, for ChemProt and DDI, the
  converter run on the raw corpus. Whenever the raw corpus is at hand, the converter is also run on
  the published splits and must reproduce them byte for byte, so that converted and published
  splits are one dataset (and a changed converter or NLTK cannot silently drift); its rows then
  carry each mention's offsets in the unmasked sentence (`entities`), which the entity-marker and
  original-text RE inputs need.
* **EBM PICO train.** `blurb_data.pico_train` (a catalog path or a local BLURB-format file) wins;
  then a train file in the mirror; then, only with `pico_proxy_from_dev`, a proxy carved from dev by
  whole abstracts (dev keeps the rest; test is untouched); else the stage stops with what to do.
* **Counts.** Each split is counted in the paper's unit and compared with the paper: a difference
  is a deviation, documented (task table `deviations`, or the proxy) or flagged as undocumented.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pubmedlm.blurb import chemprot, ddi
from pubmedlm.blurb.flags import PROXY_NOTE
from pubmedlm.blurb.formats import BlurbFormatError, RelationRow, relation_tsv_text
from pubmedlm.blurb.normalized import Row, count_units, read_conll, read_split, relation_rows
from pubmedlm.blurb.tasks import SPLITS, Task
from pubmedlm.infra.sources import Catalog, SourceError, mirror_root, resolve, sha256_file


@dataclass(frozen=True)
class Located:
    """One source file found locally: its catalog/mirror path, local file, sha256, verification."""

    path: str
    local: Path
    sha256: str
    verified: bool


class SourceFinder:
    """Finds task-table paths: declared -> fetched and verified; undeclared in the mirror -> unverified."""

    def __init__(self, catalog: Catalog, cache_dir: Path, progress: bool = False) -> None:
        self.catalog, self.cache_dir, self.progress = catalog, cache_dir, progress
        self.mirror = mirror_root()
        self.reasons: dict[str, str] = {}

    def _declared(self, path: str) -> list[Located] | None:
        sources = self.catalog.under(path) if path.endswith("/") else [self.catalog.get(path)]
        out = []
        for src in sources:
            try:
                out.append(Located(src.path, resolve(src, self.cache_dir, self.progress), src.sha256, True))
            except SourceError as e:
                if "checksum mismatch" in str(e):
                    raise
                self.reasons[path] = f"declared in {src.catalog} but not available: {e}"
                return None
        return out

    def find(self, path: str) -> list[Located] | None:
        """The local file(s) for a task-table path (a folder path ends in '/'), or None when absent."""
        if path in self.catalog or (path.endswith("/") and self.catalog.under(path)):
            return self._declared(path)
        candidate = self.mirror / path if self.mirror else None
        if candidate is not None and candidate.is_file():
            return [Located(path, candidate, sha256_file(candidate), False)]
        # No mirror path in the reason: it lands in the stage's outputs, whose bytes must not
        # depend on where this machine keeps its mirror.
        where = ("absent from the data mirror" if self.mirror
                 else "no data mirror is set (PUBMEDLM_DATA_MIRROR)")
        self.reasons[path] = f"not declared in any source catalog and {where}"
        return None

    def find_all(self, paths: tuple[str, ...]) -> list[Located] | None:
        found = [self.find(p) for p in paths]
        return None if any(f is None for f in found) else [x for f in found for x in f]

    def user_file(self, spec: str) -> Located:
        """A file the user names in params: a catalog path (verified) or a local path (unverified)."""
        if spec in self.catalog:
            found = self._declared(spec)
            if found is None:
                raise SourceError(self.reasons[spec])
            return found[0]
        local = Path(spec).expanduser()
        if not local.is_file():
            raise SourceError(f"'{spec}' is neither declared in a source catalog nor an existing file")
        return Located(spec, local, sha256_file(local), False)


@dataclass
class Prepared:
    """One dataset's outcome: its rows per split and how each was built, or why it is missing."""

    task: Task
    rows: dict[str, list[Row]] = field(default_factory=dict)
    # Each split as read from its published BLURB file, before converter rows or a proxy carve
    # replace it: what `derive.py` exports for the vocab analysis describes the published data.
    published: dict[str, list[Row]] = field(default_factory=dict)
    built_from: dict[str, str] = field(default_factory=dict)
    sources: dict[str, Located] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    proxy: dict[str, Any] | None = None
    missing: str | None = None

    @property
    def status(self) -> str:
        return "missing" if self.missing else "proxy" if self.proxy else "ok"

    @property
    def verified(self) -> bool:
        return all(s.verified for s in self.sources.values())

    def use(self, located: list[Located]) -> list[Path]:
        self.sources.update({s.path: s for s in located})
        return [s.local for s in located]

    def counts(self) -> dict[str, int]:
        return {s: count_units(self.task.task_type, self.rows[s]) for s in SPLITS if s in self.rows}

    def deviations(self) -> list[dict[str, Any]]:
        """Every split whose count differs from the paper's, with the reason."""
        out = []
        for split, ours in self.counts().items():
            paper = self.task.paper_counts[split]
            if ours == paper:
                continue
            known = self.task.deviations.get(split)
            if self.proxy and split in ("train", "dev"):
                reason, documented = f"{PROXY_NOTE}: {self.proxy['note']}", True
            elif known is not None and known.count == ours:
                reason, documented = known.reason, True
            elif self.built_from.get(split, "").startswith("user"):
                reason, documented = (
                    "user-supplied file (blurb_data.pico_train) differs from the paper's", False)
            else:
                reason, documented = "not documented in the task table", False
            out.append({"split": split, "ours": ours, "paper": paper, "reason": reason,
                        "documented": documented})
        return out


def _convert(task: Task, split: str, raw: list[Located]) -> list[Row]:
    """Rebuild a ChemProt/DDI split from its raw inputs (task table `raw` order)."""
    local = {s.path: s.local for s in raw}
    paths = task.raw[split]
    if task.converter == "chemprot":
        from pubmedlm.text.sentences import punkt_from_files

        abstracts = local[paths[0]]
        raw_dir = abstracts.parents[1]
        if any(local[p] != raw_dir / Path(p).relative_to(Path(paths[0]).parents[1]) for p in paths[:3]):
            raise SourceError(f"ChemProt {split}: raw files must lie in one folder tree; "
                              f"got {[local[p] for p in paths[:3]]}")
        tables = [s for s in raw if s.path.startswith(paths[3])]
        splitter = punkt_from_files({Path(s.path).name: s.local for s in tables},
                                    {Path(s.path).name: s.sha256 for s in tables})
        converted = chemprot.convert_chemprot(raw_dir, split, splitter)
    else:
        converted = ddi.convert_ddi(local[paths[0]], local[paths[1]])
    return relation_rows(converted, task.labels, f"{task.converter} converter ({split})")


def _check_converter(task: Task, prepared: Prepared, finder: SourceFinder) -> None:
    """The converter must reproduce each published split it can rebuild exactly; its rows (same ids,
    text and labels) then replace the published ones, adding the entity spans the raw corpus has."""
    if not task.converter:
        return
    for split, how in prepared.built_from.items():
        if how != "published":
            continue
        raw = finder.find_all(task.raw[split])
        if raw is None:
            prepared.checks[f"converter_{split}"] = "not run: raw inputs absent"
            continue
        prepared.use(raw)
        rows = _convert(task, split, raw)
        published = prepared.sources[task.files[split][0]].local
        rebuilt = relation_tsv_text(RelationRow(r["id"], r["text"], r["label"]) for r in rows)
        if rebuilt.encode("utf-8") != published.read_bytes():
            raise BlurbFormatError(
                f"{published}: the {task.converter} converter's rebuild of {split} differs "
                f"from this published file, so the converted splits would not be BLURB's")
        prepared.checks[f"converter_{split}"] = f"identical to the published file ({len(rows)} rows)"
        prepared.rows[split] = rows


def carve_proxy(dev: list[Row], share: float, seed: int) -> tuple[list[Row], list[Row], dict[str, Any]]:
    """Split dev rows by whole abstracts (`doc_id`): a `share` of them, shuffled with `seed`, to train."""
    docs = list(dict.fromkeys(r["doc_id"] for r in dev))
    if None in docs or len(docs) < 2:
        raise BlurbFormatError("EBM PICO dev: a proxy split needs at least two -DOCSTART- abstracts")
    order = sorted(docs)
    random.Random(seed).shuffle(order)
    n_train = min(max(round(len(docs) * share), 1), len(docs) - 1)
    chosen = set(order[:n_train])
    info = {"from": "dev", "seed": seed, "train_share": share, "train_abstracts": n_train,
            "dev_abstracts": len(docs) - n_train,
            "note": f"train carved from dev ({n_train} of {len(docs)} abstracts, seed {seed}); "
                    "dev is the rest"}
    return [r for r in dev if r["doc_id"] in chosen], [r for r in dev if r["doc_id"] not in chosen], info


def _pico_train(task: Task, prepared: Prepared, finder: SourceFinder, opts: Any) -> None:
    """Fill EBM PICO's train split per the policy in the module docstring."""
    if opts.pico_train:
        located = finder.user_file(opts.pico_train)
        prepared.rows["train"] = read_conll(prepared.use([located])[0], "train", task.labels)
        prepared.built_from["train"] = "user file (blurb_data.pico_train)"
    elif "train" not in prepared.rows and opts.pico_proxy_from_dev:
        train, dev, prepared.proxy = carve_proxy(prepared.rows["dev"], opts.pico_proxy_train_share, opts.seed)
        prepared.rows.update(train=train, dev=dev)
        prepared.built_from.update(train="proxy from dev", dev="published (rest of the proxy split)")
    elif "train" not in prepared.rows:
        raise SourceError(
            f"EBM-PICO train is missing ({task.files['train'][0]}: "
            f"{finder.reasons.get(task.files['train'][0], 'not found')}). "
            "Supply a BLURB-format train file with --set blurb_data.pico_train=PATH (a catalog path or a "
            "local file), or allow a proxy carved from dev with --set blurb_data.pico_proxy_from_dev=true "
            f"(every score built on it is then marked '{PROXY_NOTE}'), or drop EBM-PICO from "
            "blurb_data.datasets."
        )


def _pmid_checks(task: Task, prepared: Prepared, finder: SourceFinder) -> None:
    """EBM PICO: compare each split's abstracts with BLURB's PMID list (recorded, not enforced)."""
    for split, path in task.checks.get("pmid_list", {}).items():
        if split not in prepared.rows or (prepared.proxy and split != "test"):
            continue
        found = finder.find(path)
        if found is None:
            prepared.checks[f"pmid_list_{split}"] = "not run: PMID list absent"
            continue
        listed = {p.strip() for p in
                  prepared.use(found)[0].read_text(encoding="utf-8").replace("\n", ",").split(",")}
        ours = {r["doc_id"] for r in prepared.rows[split]}
        listed.discard("")
        prepared.checks[f"pmid_list_{split}"] = (
            f"matches BLURB's {len(listed)} PMIDs" if ours == listed
            else f"differs: {len(ours - listed)} abstracts not in BLURB's list, {len(listed - ours)} missing")


def _pubmedqa_checks(task: Task, prepared: Prepared, finder: SourceFinder) -> None:
    """PubMedQA: the fold-0 test split must be the official test set, ids and labels."""
    for split, path in task.checks.get("test_ground_truth", {}).items():
        found = finder.find(path)
        if found is None or split not in prepared.rows:
            prepared.checks["test_ground_truth"] = "not run: file absent"
            continue
        truth_path = prepared.use(found)[0]
        truth = json.loads(truth_path.read_text(encoding="utf-8"))
        ours = {r["id"]: r["label"] for r in prepared.rows[split]}
        if ours != truth:
            raise BlurbFormatError(f"{truth_path}:1: the {split} split differs from the official "
                                   f"ground truth ({len(set(ours) ^ set(truth))} ids differ)")
        prepared.checks["test_ground_truth"] = f"identical to the official test set ({len(truth)} questions)"


def _missing_reason(task: Task, absent: list[str], finder: SourceFinder) -> str:
    """`no train/dev/test split: <paths>: <cause>; ...`, paths grouped by cause."""
    by_cause: dict[str, list[str]] = {}
    for split in absent:
        for path in (*task.files[split], *task.raw.get(split, ())):
            if path in finder.reasons and path not in by_cause.get(finder.reasons[path], []):
                by_cause.setdefault(finder.reasons[path], []).append(path)
    causes = "; ".join(f"{', '.join(paths)}: {cause}" for cause, paths in by_cause.items())
    return f"no {'/'.join(absent)} split ({causes})"


def prepare(task: Task, finder: SourceFinder, opts: Any) -> Prepared:
    """Build one dataset's normalized splits (see the module docstring); `opts` is the
    `blurb_data` config section (pico_train, pico_proxy_from_dev, pico_proxy_train_share, seed)."""
    prepared = Prepared(task)
    for split in SPLITS:
        if task.task_type == "pico" and split == "train" and opts.pico_train:
            continue  # the user's file replaces any train file in the mirror
        published = finder.find_all(task.files[split])
        if published is not None:
            rows = read_split(task, split, prepared.use(published))
            prepared.rows[split] = prepared.published[split] = rows
            prepared.built_from[split] = "published"
        elif task.converter and (raw := finder.find_all(task.raw[split])) is not None:
            prepared.rows[split] = _convert(task, split, raw)
            prepared.use(raw)
            prepared.built_from[split] = "converted"
    if task.task_type == "pico" and {"dev", "test"} <= prepared.rows.keys():
        _pico_train(task, prepared, finder, opts)
    absent = [s for s in SPLITS if s not in prepared.rows]
    if absent:
        return Prepared(task, missing=_missing_reason(task, absent, finder))
    _check_converter(task, prepared, finder)
    _pmid_checks(task, prepared, finder)
    _pubmedqa_checks(task, prepared, finder)
    return prepared


__all__ = ["Located", "Prepared", "SourceFinder", "carve_proxy", "prepare"]
