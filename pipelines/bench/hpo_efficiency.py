"""Benchmark: the paper's grid search against Optuna TPE + ASHA (the tune stage), in one run, on
real BLURB tasks (default NCBI-disease and GAD), with MiniLM.

- grid: LR {1e-5, 3e-5, 5e-5} x batch {16, 32}, each trained for the whole epoch budget `E`
  (the LR schedule spanning E epochs) with dev scored after every epoch, so the grid also picks
  the epoch count by dev: 6 x E trial-epochs. Runs in-process, one configuration after another.
- Optuna + ASHA: `finetune.search.run_search` (what the tune stage runs: Ray Tune trials, TPE
  over the paper profile's LR range [8e-6, 8e-5] on a log scale and batch {16, 32}, every trial
  scheduled for the same E epochs as the grid (`--search-epochs range` searches [1, E] too),
  ASHA on the per-epoch dev score (ties broken by training loss), grace 1 epoch, reduction
  factor 3), `--samples` trials of which `--startup` are TPE's random start-up trials, one at a
  time (ASHA's cut-offs then come from finished rungs), within a compute budget
  (`tune.budget_epochs`) of `--budget` x the grid's trial-epochs: when it is spent, the search
  stops. Async ASHA runs the first trial and each rung's leader to the end, so a few trials
  alone would spend 50-65% of the grid; the budget is what a user sets to bound a search.
Both sides share everything else: warm-up 0.1, weight decay 0.01, dropout 0.1, seed, bf16, the
same (optionally capped) training rows and the full dev split. The figure of merit is the best
dev score each side saw, at which compute: trial-epochs (epochs trained, summed over trials)
and wall time (the search's includes Ray's start-up of trials).

    .venv/bin/python pipelines/bench/hpo_efficiency.py                         # ~40 min on 2 CPU cores
    .venv/bin/python pipelines/bench/hpo_efficiency.py --max-train 0 --epochs 10  # full train sets (GPU)

`--overhead N` measures instead the per-trial overhead of the tune stage's search: N trials of one
epoch each (random search, no early stopping, no budget), one at a time, each reporting the seconds
from its start to its first optimizer step and from its last step to its result (`overhead_start_s`,
`overhead_end_s`: the dev scoring and the tracking call), and the search's wall time left outside the
trials (Ray Tune's scheduling):

    .venv/bin/python pipelines/bench/hpo_efficiency.py --overhead 5 --tasks NCBI-disease --max-train 200

Ends with `SUMMARY hpo_overhead: <task> first trial start A s / end B s; later trials start C s / end D s`.

Ends with one line:
`SUMMARY hpo_efficiency: <task> grid D1 (C1 trial-epochs) vs optuna+asha D2 (C2, x% of grid compute, \
gap G); ...`
Goal: Optuna + ASHA within 0.5 dev points of the grid at <= 40% of its compute (the whole search,
as measured, not the budget asked for). The summary also gives the trial-epochs it took to first
come within 0.5 points of the grid's best (trials run one at a time, so the count is exact), and
`--budget 0` runs the `--samples` trials without a budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _project import make_project

GRID_LR = (1e-5, 3e-5, 5e-5)
GRID_BATCH = (16, 32)
FIXED = {"warmup_ratio": 0.1, "weight_decay": 0.01, "dropout": 0.1}
SEED = 0


def grid(settings, epochs: int) -> dict:
    from pubmedlm.finetune.fit import HParams, fit, load_task

    data = load_task(settings, ("train", "dev"))
    rows, t0 = [], time.time()
    for lr in GRID_LR:
        for bs in GRID_BATCH:
            curve: list[float] = []
            fit(data, HParams(learning_rate=lr, batch_size=bs, epochs=epochs, **FIXED), SEED, settings,
                lambda e, dev, _s, c=curve: c.append(dev))
            rows.append({"learning_rate": lr, "batch_size": bs, "dev_curve": curve})
            print(f"  grid lr={lr:g} bs={bs}: dev by epoch {[round(x, 2) for x in curve]}", flush=True)
    best = max(max(r["dev_curve"]) for r in rows)
    return {"best": best, "trial_epochs": len(rows) * epochs, "wall": time.time() - t0, "rows": rows}


def search(cfg, settings, epochs: int, samples: int, startup: int, epoch_range: bool,
           budget: int | None, scheduler: str = "asha") -> dict:
    import mlflow

    from pubmedlm.config import FloatRange, SearchSpace, TuneConfig
    from pubmedlm.finetune.search import run_search
    from pubmedlm.infra.ray_runtime import init_ray, storage_path
    from pubmedlm.infra.tracking import RunRef
    from pubmedlm.project import project_root

    space = SearchSpace(learning_rate=FloatRange(low=8e-6, high=8e-5, log=True), batch_size=list(GRID_BATCH),
                        epochs=(1 if epoch_range else epochs, epochs),
                        **{k: FloatRange(low=v, high=v) for k, v in FIXED.items()})
    tune_cfg = TuneConfig(num_samples=samples, search=space, scheduler=scheduler, grace_period=1,
                          reduction_factor=3, startup_trials=startup, max_concurrent=1, seed=SEED,
                          budget_epochs=budget)
    mlflow.set_experiment("hpo-benchmark")
    with mlflow.start_run(run_name=f"{settings.task} optuna+asha") as run:
        init_ray(cfg)
        out = run_search(settings, SEED, tune_cfg, {"cpu": cfg.runtime.cpus_per_worker},
                         storage_path(cfg, project_root()),
                         RunRef(mlflow.get_tracking_uri(), run.info.experiment_id, run.info.run_id),
                         f"minilm-{time.time()}")
    for r in out["trials"]:
        print(f"  search trial {r['trial']}: lr={r['learning_rate']:.2e} bs={r['batch_size']} "
              f"epochs={r['epochs']} {r['status']}, "
              f"dev by epoch {[round(x, 2) for x in r['dev_curve']]}", flush=True)
    best = max(max(r["dev_curve"]) for r in out["trials"] if r["dev_curve"])
    return {"best": best, "trial_epochs": out["trial_epochs"], "wall": out["wall_seconds"],
            "rows": out["trials"]}


def overhead(cfg, settings, trials: int) -> str:
    """Per-trial overhead of `trials` one-epoch trials (see the module docstring); the summary part."""
    t0 = time.time()
    out = search(cfg, settings, 1, trials, trials, False, None, scheduler="fifo")
    print(f"{settings.task}: {trials} trials in {out['wall']:.1f} s (driver, Ray start-up included: "
          f"{time.time() - t0:.1f} s)")
    print("| trial | start -> first step s | last step -> result s | of which dev scoring s |\n"
          "|---|---|---|---|")
    for r in out["rows"]:
        print(f"| {r['trial']} | {r['overhead_start_s']:.2f} | {r['overhead_end_s']:.2f} | "
              f"{r['eval_s']:.2f} |")
    first, later = out["rows"][0], out["rows"][1:]

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in later)) if later else float("nan")

    return (f"{settings.task} first trial start {first['overhead_start_s']:.2f} s / end "
            f"{first['overhead_end_s']:.2f} s (dev scoring {first['eval_s']:.2f} s); later trials (median "
            f"of {len(later)}) start {med('overhead_start_s'):.2f} s / end {med('overhead_end_s'):.2f} s "
            f"(dev scoring {med('eval_s'):.2f} s); search wall {out['wall']:.0f} s")


def to_target(curves: list[list[float]], target: float) -> int | None:
    """Trial-epochs the search spent until a dev score first reached `target` (trials run one
    after another in creation order, so this is exact): the anytime view of the search."""
    spent = 0
    for curve in curves:
        for epoch, dev in enumerate(curve, 1):
            if dev >= target:
                return spent + epoch
        spent += len(curve)
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", nargs="+", default=["NCBI-disease", "GAD"])
    ap.add_argument("--epochs", type=int, default=6,
                    help="epoch budget E of the grid (and upper bound searched)")
    ap.add_argument("--samples", type=int, default=6, help="Optuna trials")
    ap.add_argument("--startup", type=int, default=3, help="TPE's random start-up trials among them")
    ap.add_argument("--search-epochs", choices=["fixed", "range"], default="fixed",
                    help="fixed: every trial scheduled for E epochs, ASHA stops it early (as the grid, which "
                         "picks the epoch count on dev); range: TPE also picks the epoch count in [1, E]")
    ap.add_argument("--budget", type=float, default=0.4,
                    help="the search's compute budget as a share of the grid's trial-epochs (0: none)")
    ap.add_argument("--max-train", type=int, default=500, help="cap on training rows (0: full train set)")
    ap.add_argument("--max-eval", type=int, default=0, help="cap on dev rows (0: full dev set)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--overhead", type=int, default=0,
                    help="measure the per-trial overhead with N trials instead")
    a = ap.parse_args()
    cap = a.max_train or None
    root = make_project(list(a.tasks), {
        "runtime": {"cpus_per_worker": 2, "progress": False, "micro_batch_size": 32},
        "finetune": {"model": "minilm", "max_train_examples": cap, "max_eval_examples": a.max_eval or None,
                     "attention_dropout": None}}, a.workdir)
    from pubmedlm.config import load_config
    from pubmedlm.finetune import plan
    from pubmedlm.project import data_dir
    from pubmedlm.text.models import resolve_model

    cfg = load_config(root / "params.yaml")
    if a.overhead:
        parts = [overhead(cfg, plan.settings(cfg, t, resolve_model("minilm"), data_dir("blurb_data", root)),
                          a.overhead) for t in a.tasks]
        print("SUMMARY hpo_overhead: " + "; ".join(parts))
        return
    summary, lines = [], ["| task | side | best dev | trial-epochs | wall s |", "|---|---|---|---|---|"]
    for task in a.tasks:
        settings = plan.settings(cfg, task, resolve_model("minilm"), data_dir("blurb_data", root))
        print(f"{task}: grid ({len(GRID_LR) * len(GRID_BATCH)} configs x {a.epochs} epochs)", flush=True)
        g = grid(settings, a.epochs)
        budget = int(a.budget * g["trial_epochs"]) or None
        print(f"{task}: Optuna + ASHA ({a.samples} trials, budget {budget or 'none'} trial-epochs)",
              flush=True)
        s = search(cfg, settings, a.epochs, a.samples, a.startup, a.search_epochs == "range", budget)
        share = s["trial_epochs"] / g["trial_epochs"]
        hit = to_target([r["dev_curve"] for r in sorted(s["rows"], key=lambda r: r["trial"])],
                        g["best"] - 0.5)
        reached = (f"reached grid best - 0.5 after {hit} trial-epochs ({hit / g['trial_epochs']:.0%})" if hit
                   else "never within 0.5 of the grid's best")
        lines += [f"| {task} | grid | {g['best']:.2f} | {g['trial_epochs']} | {g['wall']:.0f} |",
                  f"| {task} | optuna+asha | {s['best']:.2f} | {s['trial_epochs']} ({share:.0%}) | "
                  f"{s['wall']:.0f} |"]
        summary.append(f"{task} grid {g['best']:.2f} ({g['trial_epochs']} trial-epochs, "
                       f"{g['wall']:.0f} s) vs optuna+asha {s['best']:.2f} ({s['trial_epochs']}, "
                       f"{share:.0%} of grid compute, {s['wall'] / g['wall']:.0%} of its wall time, "
                       f"gap {s['best'] - g['best']:+.2f}; {reached}; "
                       f"goal {'met' if s['best'] >= g['best'] - 0.5 and share <= 0.4 else 'not met'})")
    print("\n" + "\n".join(lines))
    print(f"train rows: {'full' if cap is None else f'first-sample cap {cap}'}; dev: full")
    print("SUMMARY hpo_efficiency: " + "; ".join(summary))


if __name__ == "__main__":
    main()
