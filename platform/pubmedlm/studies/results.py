"""`pubmedlm study report NAME`: a study's runs read back, analysed and written.

Every variant's per-dataset `finetune/<dataset>/results.json` under `data/studies/<study>/<variant>/`
(what `study run` writes: per-seed test scores, the best-dev seed, its prediction files) becomes a
`blurb.compare.RunResults`; `analysis.analyse` compares them with the baseline (Welch over seeds,
and with `bootstrap` > 0 the paired bootstrap over test examples on the best-dev seeds), and
`render.write` writes `reports/studies/<name>/<name>.{md,json,png}`. Whatever is missing (a variant
not run, a dataset not run or unavailable, fewer seeds than the study asks) is named in the report's
notes, not an error; only a study with no baseline results cannot be compared and says so.
The report is logged to the study's MLflow experiment (`study-<name>`) as a run named `report`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pubmedlm.blurb.compare import RunResults
from pubmedlm.project import reports_dir
from pubmedlm.studies.runner import SECTIONS, protocol, variant_folder
from pubmedlm.studies.spec import Study, StudyError


def collect(study: Study, root: Path) -> tuple[dict[str, RunResults], list[str]]:
    """Variant -> its results (variants with none left out), and notes on what is missing."""
    runs: dict[str, RunResults] = {}
    notes: list[str] = []
    for variant in study.variants:
        folder = variant_folder(root, study.name, variant)
        run, missing = RunResults(variant, folder / "finetune"), []
        for dataset in study.datasets:
            path = folder / "finetune" / dataset / "results.json"
            r = json.loads(path.read_text()) if path.is_file() else {"status": "not run"}
            if r["status"] != "ok":
                missing.append(f"{variant} / {dataset}: {r['status']}"
                               + (f" ({r['reason']})" if r.get("reason") else ""))
                continue
            if len(r["seeds"]) < study.seeds:
                notes.append(f"{variant} / {dataset}: {len(r['seeds'])} of {study.seeds} seeds")
            run.results[dataset] = r
        info = folder / "variant.json"
        extra = json.loads(info.read_text()).get("extra") if info.is_file() else None
        if extra:
            notes.append(f"{variant}: run with " + ", ".join(f"`--set {o}`" for o in extra))
        if run.results:
            runs[variant] = run
            notes += missing
    return runs, notes


def report(study: Study, root: Path, bootstrap: int = 1000) -> dict[str, Path]:
    """Analyse and write the study's report; log it to MLflow. Returns the written files."""
    from pubmedlm.config import load_config
    from pubmedlm.infra.tracking import stage_run
    from pubmedlm.project import data_dir
    from pubmedlm.studies import render
    from pubmedlm.studies.analysis import analyse

    runs, notes = collect(study, root)
    if study.baseline not in runs:
        raise StudyError(f"study {study.name}: no results of the baseline {study.baseline!r} under "
                         f"{variant_folder(root, study.name, study.baseline)}; run `pubmedlm study run "
                         f"{study.name}` first")
    result = analyse(study, runs, gold_dir=data_dir("blurb_data", root), bootstrap=bootstrap)
    result["notes"] = notes
    out = render.write(result, reports_dir("studies", root) / study.name, stem=study.name)
    params_file = root / study.params
    cfg = load_config(params_file, [*study.overrides, *protocol(study)])
    with stage_run("study", cfg, SECTIONS, params_file, run_name="report", experiment=f"study-{study.name}",
                   tags={"pubmedlm.kind": "report", "pubmedlm.study": study.name,
                         "study.claim": result["claim"]["outcome"],
                         "study.missing": ",".join(result["missing"])}) as tracked:
        tracked.log_metrics(_metrics(result))
        for path in out.values():
            tracked.log_artifact(path, "study")
    return out


def _metrics(result: dict[str, Any]) -> dict[str, float]:
    """`mean/<variant>/<dataset>` and `diff/<variant>/<dataset>` (against the baseline)."""
    out = {f"mean/{row['variant']}/{place}": cell["mean"]
           for row in result["table"] for place, cell in row["cells"].items() if "mean" in cell}
    out.update({f"diff/{d['variant']}/{d['dataset']}": d["diff"] for d in result["differences"]})
    return out


__all__ = ["collect", "report"]
