"""`pubmedlm study run NAME`: every variant of a study (`spec.Study`) fine-tuned on the study's
datasets, each variant one tracked, resumable run beside the DVC pipeline.

**Why not `dvc exp run`.** A variant as a DVC experiment (`dvc exp run -S ... tune finetune`) was
weighed and set aside:

- the DAG's `tune`/`finetune` stages depend on `data/encoder`, which depends on `data/pretrain`:
  an experiment targeting them runs (or needs in the cache) corpus, vocab, pack and pretraining,
  even for a study that fine-tunes MiniLM; `--single-item` skips them only where their outputs
  were already committed to the cache;
- every variant writes the same paths (`data/finetune/<dataset>/`), so only one variant's results
  lie in the workspace at a time, while a study's report needs all of them at once (the per-seed
  scores and the best-dev seeds' prediction files of every variant: `dvc exp show` holds only the
  stage metrics, mean and std);
- queued (`--queue`) and `--temp` experiments run in a temporary copy of the repository, where the
  relative `sqlite:///mlflow.db` store and `runtime.storage_path` (the seeds' work folders that make
  a rerun train only missing seeds) point into that copy and are lost with it;
- each experiment needs a git repository and commits to it, and `-S` rewrites params.yaml.

**What it does instead.** Each variant runs the pipeline's own stage functions (`tune.run_task`,
`finetune.run_task`, as `pubmedlm blurb` does) with its resolved params (the study's base params
file + its common `overrides` + the variant's + `finetune.datasets`, `finetune.seeds` and, with
`hparams: fixed`, `tune.fixed` from the study + the command line's `--set`) into
`data/studies/<study>/<variant>/` (`tune/<dataset>/`, `finetune/<dataset>/`, `metrics/`,
`variant.json`). As DVC would, only what changed recomputes: a dataset whose outputs record (in
their `config.yaml`) the params the variant resolves to now is skipped, tuning is skipped when only
seed counts changed, and a seed trained under the same encoder, data, settings and hyperparameters
(`finetune.seeds.work_dir`, under `runtime.storage_path`, shared by all variants and studies) is read
back, not retrained: an interrupted study resumes where it stopped.

MLflow: one experiment `study-<name>`; per variant a parent run (tags `pubmedlm.kind=variant`,
`pubmedlm.study`, `pubmedlm.variant`, `pubmedlm.digest` of its resolved params, the overrides),
reopened by a rerun with the same params; each dataset's task run (trials, seeds) nests under it.
Variants run one after another (the stage calls are `evaluate_model.run_study_variant`: only
the entry points call stages), or `--jobs N` at a time as separate `pubmedlm study run --variant`
processes (default N: every variant when `runtime.ray_address` names a cluster, whose workers take
the seeds; else 1).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pubmedlm.config import Config, load_config, parse_override
from pubmedlm.studies.spec import Study, StudyError, load_study
from pubmedlm.text.models import PRETRAIN, pretrained_model

STUDIES = Path("pipelines") / "studies"
SECTIONS = ("finetune", "tune")
PRETRAINING = ("corpus", "vocab", "pack", "pretrain")  # what a study-pretrained model is made from
"""The params a variant's outputs record (`config.yaml`, as the tune and finetune stages write)."""
TUNE_IGNORES = frozenset({"datasets", "seeds", "seed"})
"""finetune keys the tune stage does not read (dvc.yaml's `tune` params leave them out too)."""
Progress = Callable[[str], None]


def available(root: Path) -> list[str]:
    return sorted(p.stem for p in (root / STUDIES).glob("*.yaml"))


def resolve(name: str, root: Path) -> tuple[Study, Path]:
    """A study by name (`pipelines/studies/<name>.yaml`) or by the path of its file."""
    path = Path(name)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = root / STUDIES / f"{name}.yaml"
    if not path.is_file():
        raise StudyError(f"unknown study {name!r}: no {root / STUDIES}/{name}.yaml; available: "
                         f"{', '.join(available(root)) or 'none'}")
    return load_study(path, root), path.resolve()


@dataclass(frozen=True)
class VariantPlan:
    """One variant's run: where its params come from and where its outputs go."""

    study: str
    variant: str
    study_file: Path
    params_file: Path
    overrides: tuple[str, ...]
    extra: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: int
    folder: Path
    pretrain: Path | None = None  # the sub-project that pretrains the model it fine-tunes (`pretrain_folder`)
    pretrain_sets: tuple[str, ...] = ()  # the `--set`s of its pack and pretrain stages

    @property
    def experiment(self) -> str:
        return f"study-{self.study}"

    def config(self) -> Config:
        return load_config(self.params_file, list(self.overrides))

    # what the stage side (`evaluate_model.run_study_variant`) asks of a plan, without importing this module
    def pending(self, cfg: Config | None = None) -> dict[str, str]:
        return pending(self, cfg)

    def digest(self, cfg: Config) -> str:
        return digest(cfg)

    def recipe(self, cfg: Config) -> dict[str, Any]:
        return recipe(cfg)

    def metrics(self) -> dict[str, float]:
        return variant_metrics(self)


def variant_folder(root: Path, study: str, variant: str) -> Path:
    """Where a variant's outputs live: `data/studies/<study>/<variant>/`."""
    return root / "data" / "studies" / study / variant


def pretrain_folder(root: Path, cfg: Config) -> Path:
    """Where a study pretrains the model of a variant that fine-tunes `pretrain`: a project of its own,
    `data/study_models/<12 hex digits of its corpus, vocab, pack and pretrain params>/`, whose `data/corpus`
    and `data/vocab` are this project's; shared by every variant and study with that recipe."""
    if cfg.pretrain is None:
        raise StudyError("finetune.model: pretrain, but the params have no `pretrain` section")
    recipe_ = {name: cfg.section(name) for name in PRETRAINING}
    return root / "data" / "study_models" / hashlib.sha256(
        json.dumps(recipe_, sort_keys=True).encode()).hexdigest()[:12]


def protocol(study: Study) -> list[str]:
    """What the study itself sets on every variant: its datasets, seed count and fixed hyperparameters."""
    out = [f"finetune.datasets={json.dumps(study.datasets)}", f"finetune.seeds={{default: {study.seeds}}}"]
    if study.fixed is not None:
        out.append(f"tune.fixed={json.dumps(study.fixed.model_dump(mode='json'))}")
    if study.fixed_per_dataset:
        out.append(f"tune.fixed_per_dataset={json.dumps(study.fixed_per_dataset)}")
    return out


def make_plan(study: Study, study_file: Path, root: Path, variants: Sequence[str] | None = None,
              extra: Sequence[str] = ()) -> list[VariantPlan]:
    """Each chosen variant's plan (all, in file order, by default). `extra` (`--set` of the command
    line) goes last; it may not set a param some variant sets (that would undo the comparison)."""
    unknown = [v for v in variants or [] if v not in study.variants]
    if unknown:
        raise StudyError(f"study {study.name}: unknown --variant {', '.join(map(repr, unknown))}; "
                         f"variants: {', '.join(study.variants)}")
    varied = {parse_override(o)[0] for sets in study.variants.values() for o in sets}
    clash = sorted({parse_override(o)[0] for o in extra} & varied)
    if clash:
        raise StudyError(f"--set {clash[0]}: the study {study.name} varies this param between its variants "
                         f"({study_file}); a --set would make them equal")
    plans = []
    for v in [v for v in study.variants if not variants or v in variants]:
        overrides = (*study.overrides_of(v), *protocol(study), *extra)
        plan = VariantPlan(study.name, v, study_file, root / study.params, overrides, tuple(extra),
                           tuple(study.datasets), study.seeds, variant_folder(root, study.name, v))
        cfg = plan.config()  # the command line's --set too must make valid params, before any compute
        if cfg.finetune.model == PRETRAIN:  # its own model, pretrained with its params (equal steps)
            sub = pretrain_folder(root, cfg)
            model = f"finetune.model={pretrained_model(sub)}"
            plan = replace(plan, overrides=(*overrides, model), pretrain=sub, pretrain_sets=overrides)
        plans.append(plan)
    return plans


def recipe(cfg: Config, ignore: frozenset[str] = frozenset({"datasets"})) -> dict[str, Any]:
    data = {name: cfg.section(name) for name in SECTIONS}
    data["finetune"] = {k: v for k, v in data["finetune"].items() if k not in ignore}
    return data


def digest(cfg: Config) -> str:
    """12 hex digits naming a variant's resolved recipe (not the dataset list, not the runtime)."""
    return hashlib.sha256(json.dumps(recipe(cfg), sort_keys=True).encode()).hexdigest()[:12]


def _made_with(folder: Path, cfg: Config, ignore: frozenset[str] = frozenset({"datasets"})) -> bool:
    """Whether an output folder's `config.yaml` records the recipe `cfg` resolves to."""
    import yaml

    from pubmedlm.stages import RESOLVED_CONFIG

    path = folder / RESOLVED_CONFIG
    if not path.is_file():
        return False
    recorded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    recorded["finetune"] = {k: v for k, v in recorded.get("finetune", {}).items() if k not in ignore}
    return json.loads(json.dumps(recorded)) == json.loads(json.dumps(recipe(cfg, ignore)))


def dataset_state(plan: VariantPlan, cfg: Config, dataset: str) -> str:
    """`done` (fine-tuned with these params and seeds), `tuned` (tuned with them) or `todo`."""
    ft = plan.folder / "finetune" / dataset
    if _made_with(ft, cfg) and (ft / "results.json").is_file():
        results = json.loads((ft / "results.json").read_text())
        if results.get("status") != "ok" or len(results["seeds"]) == cfg.finetune.seeds_for(dataset):
            return "done"
    tuned = plan.folder / "tune" / dataset
    return "tuned" if _made_with(tuned, cfg, TUNE_IGNORES) and (tuned / "best.json").is_file() else "todo"


def pending(plan: VariantPlan, cfg: Config | None = None) -> dict[str, str]:
    """The datasets still to run (dataset -> `tuned` or `todo`), in the study's order."""
    cfg = cfg or plan.config()
    states = {d: dataset_state(plan, cfg, d) for d in plan.datasets}
    return {d: s for d, s in states.items() if s != "done"}


def describe(plans: Sequence[VariantPlan]) -> str:
    """The dry run: variants x datasets x seeds, each variant's full override list and what is left."""
    lines = []
    for p in plans:
        todo = pending(p)
        left = ", ".join(f"{d} ({'fine-tune' if s == 'tuned' else 'tune + fine-tune'})"
                         for d, s in todo.items()) or "nothing (done)"
        lines += [f"{p.study}/{p.variant}: {len(p.datasets)} dataset(s) x {p.seeds} seed(s) -> {p.folder}",
                  f"  params: {p.params_file}", *[f"  --set {o}" for o in p.overrides]]
        if p.pretrain is not None:
            done = (pretrained_model(p.pretrain) / "config.json").is_file()
            lines.append(f"  model: from {p.pretrain} ({'done' if done else 'pack + pretrain first'})")
        lines.append(f"  to run: {left}")
    return "\n".join(lines)


def summary_line(plan: VariantPlan) -> str:
    """`<variant>: <dataset> mean ± std (n seeds), ...` from the variant's results."""
    parts = []
    for d in plan.datasets:
        path = plan.folder / "finetune" / d / "results.json"
        r = json.loads(path.read_text()) if path.is_file() else {"status": "not run"}
        parts.append(f"{d} {r['test']['mean']:.2f} ± {r['test']['std']:.2f} ({r['test']['n']} seeds)"
                     if r["status"] == "ok" else f"{d} {r['status']}")
    return f"{plan.study}/{plan.variant}: " + "; ".join(parts)


def variant_metrics(plan: VariantPlan) -> dict[str, float]:
    """`test_mean/<dataset>`, `test_std/<dataset>`, `seeds/<dataset>` of the datasets done."""
    out = {}
    for d in plan.datasets:
        path = plan.folder / "finetune" / d / "results.json"
        r = json.loads(path.read_text()) if path.is_file() else {}
        if r.get("status") == "ok":
            out.update({f"test_mean/{d}": r["test"]["mean"], f"test_std/{d}": r["test"]["std"],
                        f"seeds/{d}": r["test"]["n"]})
    return out


def _spawn(plan: VariantPlan) -> int:
    """One variant as its own `pubmedlm study run` process (its own Ray driver and MLflow state)."""
    sets = [x for o in plan.extra for x in ("--set", o)]
    cmd = [sys.executable, "-m", "pubmedlm.cli", "study", "run", str(plan.study_file),
           "--variant", plan.variant, "--jobs", "1", *sets]
    return subprocess.run(cmd, check=False).returncode


def run_study(plans: Sequence[VariantPlan], execute: Callable[[VariantPlan, Progress], None],
              jobs: int | None = None, progress: Progress = print,
              spawn: Callable[[VariantPlan], int] = _spawn) -> list[str]:
    """Run every variant with work left (`jobs` at a time): in this process by `execute` (the stages'
    side, `evaluate_model.run_study_variant`), or each as its own process; a summary line per variant."""
    if not plans:
        return []
    cfg = plans[0].config()
    jobs = jobs or (len(plans) if cfg.runtime.ray_address else 1)
    todo = [p for p in plans if pending(p)]
    for p in plans:
        if p not in todo:
            progress(f"[{p.study}/{p.variant}] done earlier: skipped")
    if jobs == 1 or len(todo) <= 1:
        for p in todo:
            execute(p, progress)
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            codes = dict(zip([p.variant for p in todo], pool.map(spawn, todo), strict=True))
        failed = [f"{v} (exit {c})" for v, c in codes.items() if c != 0]
        if failed:
            raise StudyError(f"study {plans[0].study}: variants failed: {', '.join(failed)}; their output is "
                             "above; a rerun resumes them")
    return [summary_line(p) for p in plans]


__all__ = ["STUDIES", "VariantPlan", "available", "describe", "digest", "make_plan", "pending",
           "pretrain_folder", "protocol", "recipe", "resolve", "run_study", "summary_line", "variant_folder",
           "variant_metrics"]
