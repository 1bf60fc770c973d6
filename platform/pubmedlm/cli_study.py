"""`pubmedlm study run|report NAME`: the command line of the studies (a sub-app of `cli.py`, kept
here so the CLI module stays within its size; the work is `studies.runner` and `studies.results`)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

study_app = typer.Typer(
    help="The paper's controlled comparisons (pipelines/studies/<name>.yaml): run every variant, then "
         "report the differences to the baseline and whether the paper's claim holds.",
    no_args_is_help=True)
console = Console(stderr=True)

NameArg = Annotated[str, typer.Argument(help="Study name (pipelines/studies/<name>.yaml) or a study file.")]


@study_app.command("run")
def run_cmd(
    name: NameArg,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", "-v", help="Only this variant (repeatable; default: all).")] = None,
    jobs: Annotated[int | None, typer.Option(
        "--jobs", "-j", min=1, help="Variants at once, each its own process (default: all of them when "
                                    "runtime.ray_address names a cluster, else 1).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (variants x datasets x seeds, every override) and what is left; "
                          "run nothing.")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", "-s", help="Override a param of every variant (repeatable), e.g. training caps; not one "
                            "the variants differ in.")] = None,
) -> None:
    """Fine-tune every variant of a study on its datasets into data/studies/<name>/<variant>/, tracked
    in the MLflow experiment study-<name>; a rerun runs only what is not done with the same params."""
    from pubmedlm.evaluate_model import run_study_variant
    from pubmedlm.infra.tracking_uri import check_tracking, tracking_uri
    from pubmedlm.project import project_root, stop_on_signals
    from pubmedlm.studies import runner

    root = project_root()
    study, path = runner.resolve(name, root)
    plans = runner.make_plan(study, path, root, variant, set_ or [])
    if dry_run:
        typer.echo(runner.describe(plans))
        return
    check_tracking(tracking_uri(plans[0].config(), root))
    with stop_on_signals():
        lines = runner.run_study(plans, run_study_variant, jobs,
                                 progress=lambda m: console.print(m, markup=False, highlight=False))
    for line in lines:
        typer.echo(line)


@study_app.command("report")
def report_cmd(
    name: NameArg,
    bootstrap: Annotated[int, typer.Option(
        help="Paired bootstrap resamples over test examples (best-dev seeds); 0: Welch over seeds "
             "only.")] = 1000,
) -> None:
    """Analyse a study's runs into reports/studies/<name>/<name>.{md,json,png} (logged to MLflow as the
    run `report` of study-<name>); variants or seeds not run are named, not an error."""
    from pubmedlm.project import project_root
    from pubmedlm.studies import results, runner

    root = project_root()
    study, _ = runner.resolve(name, root)
    out = results.report(study, root, bootstrap=bootstrap)
    typer.echo(out["markdown"].read_text(encoding="utf-8"))
    console.print(f"report: {out['markdown']} ({out['json'].name}, {out['plot'].name}); MLflow experiment "
                  f"study-{study.name}")
