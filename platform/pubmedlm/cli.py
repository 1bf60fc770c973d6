"""Command line: one subcommand per pipeline stage, plus helpers for params, sources and DVC.

Every stage command takes `--params FILE` (default: params.yaml) and any number of
`--set section.key=value` overrides (values parsed as YAML). Errors in input or config print one
clear message naming the file, line or key, and exit with status 2.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from pubmedlm.cli_study import study_app
from pubmedlm.config import describe, load_config

app = typer.Typer(
    help="pubmedlm: biomedical LM pretraining (PubMedBERT recipe) and BLURB evaluation, tracked in MLflow.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
sources_app = typer.Typer(help="Declared external inputs: list, verify, pin new ones.", no_args_is_help=True)
app.add_typer(sources_app, name="sources")
app.add_typer(study_app, name="study")
console = Console(stderr=True)

ParamsOpt = Annotated[Path, typer.Option("--params", "-p", help="Params file (YAML).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a param: section.key=value (repeatable; value is YAML)."),
]


DebugOpt = Annotated[bool, typer.Option(
    "--debug", help="Show the traceback of every error, also of bad input (or PUBMEDLM_DEBUG=1).")]


@app.callback()
def _options(debug: DebugOpt = False) -> None:
    if debug:
        os.environ["PUBMEDLM_DEBUG"] = "1"


def _run_stage(name: str, params: Path, overrides: list[str] | None, **kwargs: object) -> None:
    from pubmedlm.infra.tracking_uri import check_tracking, tracking_uri
    from pubmedlm.project import output_lock, stop_on_signals

    cfg = load_config(params, overrides or [])
    check_tracking(tracking_uri(cfg))  # an unreachable server fails here, before any compute
    module = importlib.import_module(f"pubmedlm.stages.{name}")
    # one writer per output (a second run is refused, naming the first); SIGTERM unwinds the stage
    # like Ctrl-C: temporary files go, outputs stay
    with output_lock(name + (f"@{kwargs['task']}" if "task" in kwargs else "")), stop_on_signals():
        result = module.run(cfg, params_file=params, **kwargs)
    console.print(f"[green]{name}[/green] done; MLflow run {result.run_id}")
    for label, path in result.outputs.items():
        console.print(f"  {label}: {path}")
    if hasattr(module, "summary"):  # a stage may print a table of its results (blurb-data: counts vs paper)
        Console(width=None if sys.stdout.isatty() else 160).print(module.summary(result))


def _stage_command(name: str, help_text: str) -> None:
    def command(params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
        _run_stage(name, params, set_)

    command.__doc__ = help_text
    app.command(name=name.replace("_", "-"), help=help_text)(command)


_stage_command(
    "corpus",
    "Build the pretraining corpus: read PubMed XML / PMC nxml / text sources, clean, dedupe, "
    "exclude BLURB test documents, write shards and metrics/corpus.json.",
)
_stage_command(
    "vocab",
    "Train the in-domain uncased WordPiece vocabulary and report its fragmentation against a "
    "reference tokenizer (metrics/vocab.json, reports/vocab/).",
)
_stage_command(
    "pack",
    "Tokenize the corpus with the stage's vocab and pack fixed-length sequences per schedule phase "
    "(memory-mapped arrays in data/pack/, metrics/pack.json).",
)
_stage_command(
    "pretrain",
    "Masked-LM pretraining with whole-word masking on Ray Train (from scratch with the in-domain "
    "vocab, or continued from a checkpoint); resumable; final model in data/pretrain/model.",
)


_stage_command(
    "blurb_data",
    "Prepare every BLURB dataset whose sources are available: verify sha256, read or convert, write "
    "normalized train/dev/test JSONL in data/blurb_data/ and counts vs the paper in metrics/blurb_data.json.",
)


_stage_command(
    "encoder",
    "Pin the encoder the BLURB stages fine-tune (finetune.model) by its content: data/encoder/encoder.json "
    "(name, path, DVC hash), the dependency of tune, finetune and register.",
)


_stage_command(
    "register",
    "Register the encoder and each dataset's fine-tuned model in the MLflow Model Registry with their "
    "lineage; alias `candidate`, and `champion` when the gate passes (metrics/register.json).",
)


_stage_command(
    "report",
    "Write the BLURB leaderboard (reports/report/leaderboard.md and a self-contained index.html) with "
    "plots of pretraining, scores against the published models, HPO trials and vocab fragmentation.",
)


TaskOpt = Annotated[str, typer.Option("--task", "-t", help="BLURB dataset id (e.g. NCBI-disease).")]


@app.command("tune")
def tune_cmd(task: TaskOpt, params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Search fine-tuning hyperparameters on one task's dev split (Ray Tune + Optuna TPE + ASHA); the best
    configuration and the trial table go to data/tune/<task>/, every trial to MLflow under the task's run."""
    _run_stage("tune", params, set_, task=task)


@app.command("finetune")
def finetune_cmd(task: TaskOpt, params: ParamsOpt = Path("params.yaml"), set_: SetOpt = None) -> None:
    """Fine-tune one task with its tuned configuration for N seeds; test mean ± std, every seed's
    predictions and the best-dev seed's model in data/finetune/<task>/."""
    _run_stage("finetune", params, set_, task=task)


def _report_name(name: str | None, predictions: Path) -> str:
    """The name of a scored prediction folder, used as reports/evaluate/<name>.{json,md}: a plain
    file name (no path separator, not `.`/`..`, no leading dot) other than the pipeline's own report."""
    from pubmedlm.stages.evaluate import REPORT

    label = name if name is not None else predictions.resolve().name
    given = f"{label!r}" + ("" if name is not None else f" (the default: the folder name of {predictions})")
    if not label or "/" in label or "\\" in label or label.startswith(".") or "\0" in label:
        raise typer.BadParameter(f"{given} is not a plain file name (no path separators, no leading "
                                 "dot, not empty)", param_hint="--name")
    if label == REPORT:
        raise typer.BadParameter(f"{given} is the pipeline's own report (reports/evaluate/{REPORT}.*, "
                                 "a DVC output); choose another name",
                                 param_hint="--name")
    return label


@app.command("evaluate")
def evaluate_cmd(
    predictions: Annotated[Path | None, typer.Option(
        "--predictions", help="Score a folder of <dataset id>.jsonl "
                              "prediction files instead of the pipeline's fine-tuned tasks.")] = None,
    name: Annotated[str | None, typer.Option(
        help="Name shown for these predictions (default: the folder name).")] = None,
    gold: Annotated[Path | None, typer.Option(
        help="Prepared BLURB data (default: the project's data/blurb_data).")] = None,
    split: Annotated[str, typer.Option(help="Gold split scored: test or dev.")] = "test",
    output: Annotated[Path | None, typer.Option(
        help="Scores JSON (default reports/evaluate/<name>.json; a .md beside it).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """The BLURB score of the fine-tuned tasks beside the published models (metrics/evaluate.json,
    reports/evaluate/blurb.md); with --predictions, score any system's prediction files instead."""
    if predictions is None:
        _run_stage("evaluate", params, set_)
        return
    from pubmedlm.blurb.predictions import comparison_markdown, rich_table, score_predictions
    from pubmedlm.project import data_dir, project_root, reports_dir, write_json

    root = project_root()
    label = _report_name(name, predictions)
    result = score_predictions(gold or data_dir("blurb_data", root), predictions, split)
    out = output or reports_dir("evaluate", root) / f"{label}.json"
    write_json(out, {"name": label, **result})
    out.with_suffix(".md").write_text(comparison_markdown(result, label), encoding="utf-8")
    Console().print(rich_table(result, label))
    console.print(f"scores: {out} (markdown beside the published models: {out.with_suffix('.md')})")


@app.command("blurb")
def blurb_cmd(
    model: Annotated[str, typer.Option("--model", "-m", help="Encoder: a local HF folder, a hub id, "
                                       "`minilm`, or `pretrain` (this pipeline's model).")],
    datasets: Annotated[list[str] | None, typer.Option("--dataset", "-d", help="Only these datasets "
                                                       "(repeatable; default: finetune.datasets).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
) -> None:
    """Score any HF encoder on every available BLURB dataset the paper's way: tune on dev, fine-tune N
    seeds, test mean, BLURB score beside the published models. Tracked in MLflow (experiment
    blurb-<model>, one parent run per dataset with its trials and seeds); outputs in data/blurb/<model>/."""
    from pubmedlm.evaluate_model import run_blurb
    from pubmedlm.infra.tracking_uri import check_tracking, tracking_uri
    from pubmedlm.project import stop_on_signals

    cfg = load_config(params, set_ or [])
    check_tracking(tracking_uri(cfg))
    with stop_on_signals():
        result = run_blurb(cfg, model, datasets or None, params_file=params)
    Console(width=None if sys.stdout.isatty() else 160).print(
        Path(result.outputs["report"]).read_text(encoding="utf-8"))
    console.print(f"[green]blurb[/green] done: {result.outputs['report']} "
                  f"(MLflow experiment {result.metrics['experiment']})")


@app.command("compare")
def compare_cmd(
    run_a: Annotated[str, typer.Argument(
        help="Run A: a `pubmedlm blurb` folder, a model under data/blurb/, a project root, or `pipeline`.")],
    run_b: Annotated[str, typer.Argument(help="Run B, the same kinds.")],
    bootstrap: Annotated[int, typer.Option(
        help="Paired bootstrap over test examples with N resamples (best-dev seeds) instead of the seeds' "
             "Welch interval.")] = 0,
    json_out: Annotated[Path | None, typer.Option(
        "--json", help="Also write the comparison as JSON here.")] = None,
) -> None:
    """Per-dataset and BLURB differences A - B with 95% intervals; says which are significant."""
    import json

    from pubmedlm.blurb.compare import compare, load_run
    from pubmedlm.project import data_dir, project_root

    root = project_root()
    result = compare(load_run(run_a, root), load_run(run_b, root), bootstrap=bootstrap,
                     gold_dir=data_dir("blurb_data", root))
    table = Table(title=(
        f"A = {run_a}   B = {run_b}   ("
        f"{'paired bootstrap, ' + str(bootstrap) + ' resamples' if bootstrap else 'Welch over seeds'}, 95%)"))
    for col in ("dataset", "A mean ± std (n)", "B mean ± std (n)", "A - B", "95% interval", "p",
                "significant"):
        table.add_column(col, justify="left" if col == "dataset" else "right")

    def verdict(r: dict) -> str:
        if "low" not in r:
            return "n/a (1 seed: use --bootstrap)"
        return ("A better" if r["diff"] > 0 else "B better") if r["significant"] else "no"

    for r in result["rows"]:
        table.add_row(r["dataset"], f"{r['a_mean']:.2f} ± {r['a_std']:.2f} ({r['a_n']})",
                      f"{r['b_mean']:.2f} ± {r['b_std']:.2f} ({r['b_n']})", f"{r['diff']:+.2f}",
                      f"[{r['low']:+.2f}, {r['high']:+.2f}]" if "low" in r else "–",
                      f"{r['p']:.3f}" if "p" in r else "–", verdict(r))
    b = result["blurb"]
    table.add_row(f"BLURB ({b['datasets']} datasets)", f"{b['a_mean']:.2f}", f"{b['b_mean']:.2f}",
                  f"{b['diff']:+.2f}", f"[{b['low']:+.2f}, {b['high']:+.2f}]" if "low" in b else "–", "–",
                  verdict(b))
    Console(width=None if sys.stdout.isatty() else 180).print(table)
    if result["not_shared"]:
        console.print(f"not in both runs (left out): {', '.join(result['not_shared'])}")
    if json_out:
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command("params")
def params_cmd(
    params: ParamsOpt = Path("params.yaml"),
    set_: SetOpt = None,
    reference: Annotated[bool, typer.Option(help="List every key with its type and meaning.")] = False,
) -> None:
    """Validate a params file (with overrides) and print the resolved config, or the key reference."""
    import yaml

    if reference:
        table = Table("key", "type", "meaning")
        for key, kind, text in describe():
            table.add_row(key, kind, text)
        Console().print(table)
        return
    cfg = load_config(params, set_ or [])
    typer.echo(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False))


@sources_app.command("list")
def sources_list(
    catalog: Annotated[list[Path] | None, typer.Option(help="Extra catalog TSV files.")] = None,
) -> None:
    """List every declared source with its URL and sha256."""
    from pubmedlm.infra.sources import Catalog

    table = Table("path", "bytes", "sha256", "url")
    for src in sorted(Catalog(catalog or []).sources.values(), key=lambda s: s.path):
        table.add_row(src.path, str(src.bytes or ""), src.sha256[:12] + "…", src.url)
    Console().print(table)


@sources_app.command("verify")
def sources_verify(
    prefix: Annotated[str, typer.Argument(help="Only sources under this path prefix.")] = "",
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Fetch (mirror or download) and verify the sha256 of every declared source."""
    from pubmedlm.infra.sources import Catalog, resolve
    from pubmedlm.project import project_root

    cfg = load_config(params) if params.is_file() else None
    cache = project_root() / (cfg.runtime.cache_dir if cfg else ".pubmedlm-cache")
    catalog = Catalog(cfg.corpus.catalogs if cfg else [])
    for src in sorted(catalog.sources.values(), key=lambda s: s.path):
        if src.path.startswith(prefix):
            path = resolve(src, cache)
            console.print(f"[green]ok[/green] {src.path} ({path})")


@sources_app.command("pin")
def sources_pin(
    urls: Annotated[list[str], typer.Argument(help="URLs to download and pin, e.g. NCBI baseline files.")],
    prefix: Annotated[str, typer.Option(help="Mirror-relative folder, e.g. corpus/pubmed_xml/baseline.")],
    catalog: Annotated[Path, typer.Option(help="Catalog TSV to create or extend.")],
    cache_dir: Annotated[Path, typer.Option(help="Download cache.")] = Path(".pubmedlm-cache"),
) -> None:
    """Download files and record their sha256 in a catalog, so later runs verify them."""
    from pubmedlm.infra.sources import pin

    for src in pin(urls, prefix, catalog, cache_dir):
        console.print(f"pinned {src.path} sha256={src.sha256}")


@app.command("remote")
def remote_cmd(params: ParamsOpt = Path("params.yaml")) -> None:
    """Point DVC's default remote at runtime.dvc_remote (a local folder or s3://bucket/prefix)."""
    import subprocess

    from pubmedlm.project import project_root

    cfg = load_config(params)
    root = project_root()
    url = cfg.runtime.dvc_remote
    if "://" not in url:
        Path(root / url).mkdir(parents=True, exist_ok=True)
        url = str((root / url).resolve())
    subprocess.run(["dvc", "remote", "add", "--local", "-d", "-f", "default", url], cwd=root, check=True)
    if cfg.runtime.dvc_remote_endpoint and url.startswith("s3://"):
        subprocess.run(["dvc", "remote", "modify", "--local", "default", "endpointurl",
                        cfg.runtime.dvc_remote_endpoint], cwd=root, check=True)
    console.print(f"DVC default remote: {url}"
                  + (f" at {cfg.runtime.dvc_remote_endpoint}"
                     if cfg.runtime.dvc_remote_endpoint and url.startswith("s3://") else ""))


def main() -> None:
    """The one error boundary: a user error (`pubmedlm.errors.UserError`) or an environment fault
    (permissions, disk full, read-only volume) is one line and exit status 2; a signal is exit
    128+signal; anything else is a bug and keeps its traceback."""
    from pubmedlm.errors import USER_EXIT, UserError, environment_fault
    from pubmedlm.project import interrupted_by

    try:
        app()
    except BaseException as e:
        stop = interrupted_by(e)
        if stop is not None:
            console.print(f"[red]stopped:[/red] {stop}; the previous outputs and metrics are unchanged",
                          highlight=False)
            sys.exit(128 + stop.signum)
        if not isinstance(e, Exception):
            raise
        message = str(e) if isinstance(e, UserError) else environment_fault(e)
        if message is None:
            raise
        if os.environ.get("PUBMEDLM_DEBUG", "") not in ("", "0"):
            console.print_exception()
        console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(USER_EXIT)


if __name__ == "__main__":
    main()
