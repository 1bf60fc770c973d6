"""The bad-input table: one row per probe of the CLI with a broken input or environment.

Each row is the command (after `pubmedlm`), how it breaks its input (built from the committed cuts
of the real mirror, tests/fixtures/, or from real mirror files), the expected exit status and a
fragment of the expected message. Every probe goes through the CLI's one error boundary
(`pubmedlm.cli.main`), in process, in a fresh project folder: it must end in `error: ...` naming
what to fix, exit 2, and show no traceback. Add a row when a new failure is found.

Faults this machine cannot produce for real (it runs as root, so `chmod 000` does not stop a read;
a full disk or a read-only volume) are raised by the file operation itself through a patched
`Path.read_text`/`open`, which still exercises the boundary's handling of the OS error.
"""

from __future__ import annotations

import builtins
import errno
import gzip
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, REPO

Build = Callable[[Path, pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Probe:
    name: str
    argv: list[str]  # after `pubmedlm`; "{root}" is the project folder
    fragment: str  # in the message; "{root}" as above
    build: Build | None = None
    env: dict[str, str] = field(default_factory=dict)
    code: int = 2


def _params(root: Path, **sections: dict) -> None:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["runtime"]["progress"] = False
    for name, values in sections.items():
        data[name].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _text(rel: str, text: str | bytes) -> Build:
    def build(root: Path, _mp: pytest.MonkeyPatch) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    return build


def _gold(root: Path, _mp: pytest.MonkeyPatch) -> None:
    shutil.copytree(FIXTURES / "blurb_data", root / "data" / "blurb_data")


def _gold_rows(task: str, split: str = "test") -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / "blurb_data" / task / f"{split}.jsonl").open()]


def _predictions(task: str, edit: Callable[[list[dict]], list[dict] | str | bytes]) -> Build:
    """A prediction folder with `task`'s gold test answers as predictions, then `edit`ed."""
    def build(root: Path, mp: pytest.MonkeyPatch) -> None:
        _gold(root, mp)
        rows = [{"id": r["id"], "prediction": r.get("tags", r.get("label"))} for r in _gold_rows(task)]
        out = edit(rows)
        folder = root / "preds"
        folder.mkdir()
        body = out if isinstance(out, (str, bytes)) else "".join(json.dumps(r) + "\n" for r in out)
        path = folder / f"{task}.jsonl"
        (path.write_bytes if isinstance(body, bytes) else path.write_text)(body)
    return build


def _with(*builds: Build) -> Build:
    def build(root: Path, mp: pytest.MonkeyPatch) -> None:
        for b in builds:
            b(root, mp)
    return build


def _os_fault(code: int, name: str, method: str = "read_text") -> Build:
    """Make reading (or writing) a file called `name` fail with the OS error `code`: through
    `Path.<method>`, or the built-in `open` when `method` is "open"."""
    def build(root: Path, mp: pytest.MonkeyPatch) -> None:
        owner = builtins if method == "open" else Path
        real = getattr(owner, method)

        def faulty(target: object, *a: object, **k: object) -> object:
            if Path(str(target)).name == name:
                raise OSError(code, errno.errorcode[code], str(target))
            return real(target, *a, **k)

        mp.setattr(owner, method, faulty)
    return build


def _limit(max_bytes: int) -> Build:
    """A smaller longest-line/document limit (the real one is 16 MiB), so the probe file stays small."""
    def build(_root: Path, mp: pytest.MonkeyPatch) -> None:
        from pubmedlm.corpus import stream

        mp.setattr(stream, "MAX_LINE_BYTES", max_bytes)
    return build


def _corpus_file(name: str, data: bytes) -> Build:
    return _text(f"inputs/{name}", data)


def _set(*pairs: str) -> list[str]:
    return [arg for pair in pairs for arg in ("--set", pair)]


def _corpus(name: str) -> list[str]:
    """`pubmedlm corpus` on one local input file (no BLURB test documents to exclude)."""
    return ["corpus", *_set(f'corpus.inputs=["{{root}}/inputs/{name}"]', "corpus.exclude_blurb_test=false")]


EVAL = ["evaluate", "--gold", "{root}/data/blurb_data", "--predictions", "{root}/preds"]

PROBES = [
    # params files and overrides
    Probe("params-missing", ["corpus", "-p", "nope.yaml"], "params file not found: nope.yaml"),
    Probe("params-not-yaml", ["corpus"], "params.yaml:2:1: not valid YAML: expected ',' or ']'",
          _text("params.yaml", "corpus: [unclosed\n")),
    Probe("params-a-list", ["corpus"], "top level must be a mapping", _text("params.yaml", "- a\n- b\n")),
    Probe("params-not-utf8", ["corpus"], "params.yaml: not UTF-8 text (byte 0xe9",
          _text("params.yaml", b"corpus:\n  inputs: [caf\xe9]\n")),
    Probe("params-key-twice", ["corpus"], "line 4: key 'vocab' written twice (first at line 3)",
          _text("params.yaml", "corpus: {inputs: [a]}\nruntime: {}\nvocab: {vocab_size: 10}\nvocab: {}\n")),
    Probe("params-unknown-section", ["corpus"], "unknown key 'vocabulary'",
          _text("params.yaml", "corpus: {inputs: [a]}\nvocabulary: {}\n")),
    Probe("params-missing-section", ["corpus"], "missing key 'corpus'", _text("params.yaml", "vocab: {}\n")),
    Probe("params-number-for-text", ["corpus"], "YAML read it as a number or boolean: quote it",
          _text("params.yaml", "corpus: {inputs: [a]}\nregister: {prefix: 0123}\n")),
    Probe("set-unknown-key", ["corpus", *_set("vocab.vocab_sizes=8000")], "unknown key 'vocab.vocab_sizes'"),
    Probe("set-bad-number", ["corpus", *_set("vocab.vocab_size=lots")], "bad value for 'vocab.vocab_size'"),
    Probe("set-no-equals", ["corpus", "--set", "vocab.vocab_size"], "expected KEY=VALUE"),
    Probe("set-into-a-value", ["corpus", *_set("vocab.vocab_size.x=1")],
          "'vocab.vocab_size' is not a section"),
    Probe("set-bad-prefix", ["corpus", *_set("register.prefix=-x")], "bad value for 'register.prefix'"),
    Probe("set-empty-epoch-range", ["corpus", *_set("tune.search.epochs=[3, 1]")],
          "empty epoch range [3, 1]"),
    Probe("set-short-epoch-range", ["corpus", *_set("tune.search.epochs=[1]")],
          "'tune.search.epochs': item 2 is missing"),
    Probe("set-unknown-dataset", ["corpus", *_set("finetune.datasets=[NCBI-disease, NCBI]")],
          "unknown BLURB dataset(s) NCBI"),
    Probe("set-no-datasets", ["corpus", *_set("blurb_data.datasets=[]")], "no dataset listed"),
    Probe("set-bad-tagging", ["corpus", *_set("finetune.tagging=IOB3")], "bad value for 'finetune.tagging'"),
    Probe("set-bad-device", ["corpus", *_set("runtime.device=tpu")], "bad value for 'runtime.device'"),
    Probe("params-permission", ["corpus"], "permission denied: params.yaml",
          _os_fault(errno.EACCES, "params.yaml")),
    # tracking
    Probe("tracking-unknown-scheme", ["corpus"], "bogus://x: unsupported scheme 'bogus'",
          env={"MLFLOW_TRACKING_URI": "bogus://x"}),
    Probe("tracking-ftp", ["corpus"], "ftp://host/path: unsupported scheme 'ftp'",
          env={"MLFLOW_TRACKING_URI": "ftp://host/path"}),
    Probe("tracking-sqlite-no-folder", ["corpus"], "its folder does not exist; nothing was run",
          env={"MLFLOW_TRACKING_URI": "sqlite:////nonexistent-pubmedlm-folder/mlflow.db"}),
    # the data mirror
    Probe("mirror-not-a-folder", ["blurb-data"], "PUBMEDLM_DATA_MIRROR=/no/such/dir: no such folder",
          env={"PUBMEDLM_DATA_MIRROR": "/no/such/dir"}),
    Probe("mirror-wrong-sha256", ["sources", "verify", "blurb/NCBI-disease/train.tsv"],
          "checksum mismatch",
          _text("mirror/blurb/NCBI-disease/train.tsv", "not the file\n"),
          env={"PUBMEDLM_DATA_MIRROR": "{root}/mirror"}),
    # corpus inputs (local files)
    Probe("corpus-input-missing", _corpus("none.txt"), "none.txt' is neither declared in a source catalog"),
    Probe("corpus-input-empty", _corpus("empty.txt"), "no documents in the inputs (0 records read from",
          _corpus_file("empty.txt", b"")),
    Probe("corpus-input-not-utf8", _corpus("latin1.txt"), "latin1.txt: not valid UTF-8 at byte 3 (line 1",
          _corpus_file("latin1.txt", b"Caf\xe9 au lait is a drink.\n")),
    Probe("corpus-input-cut-gzip", _corpus("cut.xml.gz"), "cut.xml.gz: truncated or corrupt gzip stream",
          _corpus_file("cut.xml.gz", gzip.compress(b"<PubmedArticleSet>" + b"<x>y</x>" * 500)[:60])),
    Probe("corpus-input-bad-xml", _corpus("bad.xml"), "bad.xml: malformed XML at line 2, column 9",
          _corpus_file("bad.xml", b"<PubmedArticleSet><PubmedArticle><MedlineCitation>\n</Pubmed")),
    Probe("corpus-input-no-line-breaks", _corpus("one-line.txt"),
          "one-line.txt: line 1 (from byte 0) runs over 1 MiB",
          _with(_limit(1 << 20), _corpus_file("one-line.txt", b"word " * 300_000))),
    Probe("corpus-input-no-blank-lines", _corpus("no-blanks.txt"), "the document from line 1 runs over 1 MiB",
          _with(_limit(1 << 20), _corpus_file("no-blanks.txt", b"a sentence of words.\n" * 60_000))),
    Probe("vocab-without-corpus", ["vocab"], "data/corpus: no train-*.jsonl shards (run the corpus stage"),
    Probe("pack-without-vocab", ["pack"], "data/vocab: no such tokenizer folder"),
    Probe("vocab-shard-cut", ["vocab"], "train-00000.jsonl:2: not a complete JSON record",
          _text("data/corpus/train-00000.jsonl", '{"id": "1", "source": "pubmed", "text": "one"}\n{"id"')),
    # prediction files for `pubmedlm evaluate --predictions`
    Probe("predictions-folder-missing", [*EVAL], "predictions folder not found", _gold),
    Probe("predictions-none", [*EVAL], "no prediction files", _with(_gold, _text("preds/readme.txt", "x"))),
    Probe("predictions-unknown-dataset", [*EVAL], "not a BLURB dataset name",
          _with(_gold, _text("preds/NCBI.jsonl", "{}\n"))),
    Probe("predictions-missing-ids", [*EVAL], "gold ids have no prediction",
          _predictions("GAD", lambda r: r[1:])),
    Probe("predictions-duplicate-id", [*EVAL], "predicted twice (first on line 1)",
          _predictions("GAD", lambda r: [r[0], *r])),
    Probe("predictions-extra-id", [*EVAL], "is not in the gold split (extra id)",
          _predictions("GAD", lambda r: [*r, {"id": "no-such-id", "prediction": "1"}])),
    Probe("predictions-id-not-text", [*EVAL], "is not a string",
          _predictions("GAD", lambda r: [{"id": 7, "prediction": "1"}, *r[1:]])),
    Probe("predictions-unknown-label", [*EVAL], "unknown label 'CPR:99'",
          _predictions("ChemProt", lambda r: [{**r[0], "prediction": "CPR:99"}, *r[1:]])),
    Probe("predictions-ner-wrong-length", [*EVAL], "tags for",
          _predictions("NCBI-disease", lambda r: [{**r[0], "prediction": ["O"]}, *r[1:]])),
    Probe("predictions-score-not-number", [*EVAL], "is not a finite number",
          _predictions("BIOSSES", lambda r: [{**r[0], "prediction": "high"}, *r[1:]])),
    Probe("predictions-not-object", [*EVAL], "expected an object with 'id' and 'prediction'",
          _predictions("GAD", lambda r: "[1, 2]\n")),
    Probe("predictions-bad-json", [*EVAL], "GAD.jsonl:1: not valid JSON",
          _predictions("GAD", lambda r: '{"id": "x",\n')),
    Probe("predictions-empty-file", [*EVAL], "GAD.jsonl: empty file (no predictions)",
          _predictions("GAD", lambda r: "")),
    Probe("predictions-not-utf8", [*EVAL], "not UTF-8 text",
          _predictions("GAD", lambda r: b'{"id": "caf\xe9", "prediction": "1"}\n')),
    Probe("predictions-unknown-split", [*EVAL, "--split", "validation"], "unknown split 'validation'",
          _predictions("GAD", lambda r: r)),
    # models, runs, registry-facing names
    Probe("model-folder-missing", ["blurb", "--model", "{root}/no-model"],
          "model {root}/no-model: no such folder"),
    Probe("model-folder-empty", ["blurb", "--model", "{root}/empty-model"],
          "holds no model (config.json missing)",
          _text("empty-model/README", "nothing here\n")),
    Probe("pretrain-model-absent", ["blurb", "--model", "pretrain"], "run `pubmedlm pretrain`"),
    Probe("compare-unknown-runs", ["compare", "{root}/run-a", "{root}/run-b"],
          "no fine-tuning results found"),
    Probe("finetune-without-tune", ["finetune", "--task", "BIOSSES", *_set("finetune.model=minilm")],
          "no tuned configuration", _gold),
    Probe("task-unknown", ["tune", "--task", "BIOSSE"], "unknown BLURB dataset 'BIOSSE'", _gold),
    Probe("freeze-more-layers-than-the-model", ["tune", "--task", "BIOSSES", *_set(
        "finetune.model=minilm", "finetune.freeze_layers=7")],
        "finetune.freeze_layers: 7 layers, but model ", _gold),
    Probe("freeze-and-reinit-overlap", ["finetune", "--task", "BIOSSES", *_set(
        "finetune.model=minilm", "finetune.freeze_layers=4", "finetune.reinit_layers=3")],
        "exceed model ", _with(_gold, _text("data/tune/BIOSSES/best.json", json.dumps(
            {"task": "BIOSSES", "status": "ok", "model": "minilm", "fixed": True, "hparams": {
                "learning_rate": 5e-5, "batch_size": 16, "epochs": 1, "warmup_ratio": 0.1,
                "weight_decay": 0.0, "dropout": 0.1}})))),
    Probe("set-layer-lr-decay-zero", ["corpus", *_set("finetune.layer_lr_decay=0")],
          "bad value for 'finetune.layer_lr_decay'"),
    Probe("set-fixed-hparams-incomplete", ["corpus", *_set("tune.fixed={learning_rate: 5.0e-05}")],
          "missing key 'tune.fixed.batch_size'"),
    # the environment
    Probe("disk-full", [*EVAL, "--name", "full"], "no space left on the device",
          _with(_predictions("GAD", lambda r: r), _os_fault(errno.ENOSPC, "full.md", "write_text"))),
    Probe("read-only-volume", [*EVAL, "--name", "ro"], "read-only file system",
          _with(_predictions("GAD", lambda r: r), _os_fault(errno.EROFS, "ro.md", "write_text"))),
]


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for all probes (each creating its own would cost seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('tracking') / 'mlflow.db'}"


def _pico_train(lines: str) -> Build:
    return _text("pico_train.tsv", "-DOCSTART- (1)\n\n" + lines)


PICO = ["blurb-data", *_set("blurb_data.datasets=[EBM-PICO]", "blurb_data.pico_train={root}/pico_train.tsv")]
# Probes that need the real mirror (its files verify; the broken input is the user's own file or link).
MIRROR_PROBES = [
    Probe("pico-train-columns", PICO, "pico_train.tsv:3: expected 2 tab-separated columns, got 3",
          _pico_train("Xylitol\tI-INT\textra\n")),
    Probe("pico-train-unknown-label", PICO, "pico_train.tsv:3: unknown label 'I-DRUG'",
          _pico_train("Xylitol\tI-DRUG\n")),
    Probe("pico-train-empty", PICO, "empty split 'train'", _pico_train("")),
    Probe("mirror-unreadable-file", ["blurb-data", *_set("blurb_data.datasets=[BIOSSES]")],
          "permission denied: ", _os_fault(errno.EACCES, "train.tsv", "open")),
]


def _fill(text: str, root: Path) -> str:
    return text.replace("{root}", str(root))


@pytest.mark.parametrize("probe", PROBES, ids=[p.name for p in PROBES])
def test_bad_input_ends_in_one_clear_line(probe: Probe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str], tracking: str) -> None:
    from pubmedlm.cli import main

    root = tmp_path / "project"
    root.mkdir()
    _params(root)
    monkeypatch.chdir(root)
    monkeypatch.setenv("PUBMEDLM_PROJECT_ROOT", str(root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    monkeypatch.setenv("PUBMEDLM_DEBUG", "0")  # restored after the test, also when --debug sets it
    for key, value in probe.env.items():
        monkeypatch.setenv(key, _fill(value, root))
    if probe.build is not None:
        probe.build(root, monkeypatch)
    monkeypatch.setattr(sys, "argv", ["pubmedlm", *(_fill(a, root) for a in probe.argv)])
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == probe.code, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and _fill(probe.fragment, root) in err[err.index("error: "):], err


def test_the_table_has_at_least_40_probes() -> None:
    probes = PROBES + MIRROR_PROBES
    assert len({p.name for p in probes}) == len(probes) >= 40


def test_debug_shows_the_traceback_of_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from pubmedlm.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["pubmedlm", "--debug", "corpus", "-p", "nope.yaml"])
    monkeypatch.setenv("PUBMEDLM_DEBUG", "0")  # restored after the test, also when --debug sets it
    with pytest.raises(SystemExit) as stopped:
        main()
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    assert "Traceback" in err and "ConfigError" in err and "error: params file not found" in err


def test_a_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is not dressed up as bad input: it propagates with its traceback."""
    from pubmedlm import cli

    def broken(*_a: object, **_k: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "load_config", broken)
    monkeypatch.setattr(sys, "argv", ["pubmedlm", "corpus"])
    with pytest.raises(KeyError, match="a bug"):
        cli.main()


@pytest.mark.parametrize("probe", MIRROR_PROBES, ids=[p.name for p in MIRROR_PROBES])
def test_bad_input_on_the_real_mirror(probe: Probe, mirror: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      tracking: str) -> None:
    monkeypatch.setenv("PUBMEDLM_DATA_MIRROR", str(mirror))
    test_bad_input_ends_in_one_clear_line(probe, tmp_path, monkeypatch, capsys, tracking)
