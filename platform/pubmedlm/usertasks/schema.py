"""The task file: users' own biomedical tasks declared in YAML, validated strictly.

A task file holds `tasks:`, a list of rows with the task table's fields (`blurb/tasks.py`), plus
what reading a user's files needs (see `pipelines/tasks/example.yaml`):

| field | meaning |
|---|---|
| `id` | task id: the prepared folder's name; must not name a BLURB dataset |
| `task_type` | `ner`, `re`, `similarity`, `doc_classification`, `qa` (the registry's, but `pico`: IO \
tags are not read) |
| `head` | optional; must be the task type's head (`HEADS`) |
| `format` | `conll`, `jsonl`, `csv`, `tsv`, `hf_disk` (a `datasets` folder saved with `save_to_disk`) |
| `files` | split -> file (`devel` is read as `dev`), or for `hf_disk` one saved `DatasetDict` folder. \
A file is a path relative to the task file, a pinned path `{path: ..., sha256: ...}` (verified before \
it is read), or a declared source `{url: ..., sha256: ...}` fetched like the catalogs' (the data \
mirror at `path`, default the URL's host/path; else the download cache or a download), verified |
| `labels` | `infer` (from train) or the list: entity types for NER (`[Chemical, Disease]`), else \
classes |
| `metric`, `metric_args` | a key of `blurb.metrics.METRICS` that fits the head (`METRICS_BY_HEAD`) |
| `max_length` | max input length in sub-word tokens (default 512) |
| `input` | `layout` (tokens/single/pair), `fields` (the normalized row's text keys), `entity_tokens` |
| `columns` | normalized key -> the file's column name (`id`, `doc_id`, the input fields, the target) |
| `token_column`, `tag_column` | NER: the token's and the tag's column (CoNLL: index from 0, negative \
from the end; `hf_disk`: column names) |
| `scheme` | NER tagging scheme of the files: `IOB1`, `IOB2` (default), `BIOES`; read into IOB2 |
| `separator` | CoNLL columns: `tab` (default) or `whitespace` |
| `label_separator` | CSV/TSV multi-label cells: the separator between labels (default `,`) |

Every error is a `TaskFileError` naming the task file, the task's line and id, and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, PrivateAttr, ValidationError, ValidationInfo, field_validator, model_validator

from pubmedlm.config.base import StrictModel, format_errors, read_yaml
from pubmedlm.errors import UserError

TASK_TYPES = ("ner", "re", "similarity", "doc_classification", "qa")
HEADS = {"ner": "token_classification", "re": "sequence_classification", "similarity": "regression",
         "doc_classification": "multi_label", "qa": "sequence_classification"}
METRICS_BY_HEAD = {
    "token_classification": ("typed_entity_f1", "entity_f1"),
    "sequence_classification": ("accuracy", "micro_f1_excluding", "positive_f1"),
    "regression": ("pearson",),
    "multi_label": ("hoc_abstract_micro_f1",),
}
# Default input per task type: the registry's layouts and row keys.
INPUTS = {"ner": ("tokens", ["tokens"]), "re": ("single", ["text"]),
          "similarity": ("pair", ["text_a", "text_b"]), "doc_classification": ("single", ["text"]),
          "qa": ("pair", ["question", "context"])}
TARGETS = {"token_classification": "tags", "sequence_classification": "label", "regression": "score",
           "multi_label": "labels"}
SPLIT_NAMES = {"train": "train", "dev": "dev", "devel": "dev", "test": "test"}
ROW_FORMATS = ("jsonl", "csv", "tsv", "hf_disk")


class TaskFileError(UserError, ValueError):
    """A task file, or a data file it declares, is invalid; the message names the file, the task
    and the field or line."""


class FileRef(StrictModel):
    """One declared file: a local path, optionally pinned by sha256, or a source (URL + sha256)."""

    path: str | None = None
    """Local file (relative to the task file); with `url`: its path in the data mirror and the cache."""
    url: str | None = Field(None, pattern=r"^(https?|file)://")
    """Where the file is downloaded from when no mirror holds it."""
    sha256: str | None = Field(None, pattern=r"^[0-9a-f]{64}$")
    """The file's sha256 (lowercase hex): checked on every read; required with `url`."""

    @model_validator(mode="after")
    def _one_kind(self) -> FileRef:
        if self.url is None and self.path is None:
            raise ValueError("a file needs a path, or a url with its sha256")
        if self.url is not None and self.sha256 is None:
            raise ValueError(f"{self.url}: a declared source needs its sha256 (pin it: `sha256sum FILE`)")
        return self

    @property
    def is_source(self) -> bool:
        return self.url is not None

    def mirror_path(self) -> str:
        """A URL file's path in the data mirror and the download cache: `path`, else the URL's host/path."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url or "")
        return self.path or f"{parts.hostname or 'file'}{parts.path}".strip("/")

    def label(self) -> str:
        """How messages and records name the file."""
        return self.url or self.path or ""


class InputSpec(StrictModel):
    """How the model reads a row: the registry's `input`."""

    layout: Literal["tokens", "single", "pair"]
    """`tokens` (NER), `single` (one text), `pair` (two texts)."""
    fields: list[str] = Field(min_length=1, max_length=2)
    """The normalized row's text keys, in order (`tokens`; `text`; `text_a`, `text_b`; ...)."""
    entity_tokens: list[str] = Field(default_factory=list)
    """Relation extraction: dummy tokens standing for the entities (`@GENE$`), kept whole."""


class UserTaskSpec(StrictModel):
    """One declared task (a row of the task file)."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Task id (the prepared folder's name)."""
    task_type: Literal[TASK_TYPES]  # type: ignore[valid-type]
    """Registry task type."""
    head: Literal[tuple(METRICS_BY_HEAD)] | None = None  # type: ignore[valid-type]
    """Model head; default the task type's."""
    format: Literal["conll", "jsonl", "csv", "tsv", "hf_disk"]
    """The files' format."""
    files: dict[str, FileRef] | FileRef
    """Split -> file (train, dev or devel, test), or one saved `DatasetDict` folder (`hf_disk`); a file
    is written as a path, `{path, sha256}` or `{url, sha256}` (`FileRef`)."""
    labels: list[str] | Literal["infer"] = "infer"
    """Entity types (NER) or class names; `infer`: those of the train split, sorted."""
    metric: str
    """Metric name (`blurb.metrics.METRICS`)."""
    metric_args: dict[str, Any] = Field(default_factory=dict)
    """Extra keyword arguments of the metric (`negative`, `positive`)."""
    max_length: int = Field(512, ge=8, le=512)
    """Max input length in sub-word tokens."""
    input: InputSpec | None = None
    """Input layout; default the task type's."""
    columns: dict[str, str] = Field(default_factory=dict)
    """Row formats: normalized key -> column name in the file (default: the same name)."""
    token_column: int | str | None = None
    """NER: the token's column (CoNLL index, default 0; `hf_disk` name, default `tokens`)."""
    tag_column: int | str | None = None
    """NER: the tag's column (CoNLL index, required; `hf_disk` name, default `ner_tags`)."""
    scheme: Literal["IOB1", "IOB2", "BIOES"] = "IOB2"
    """NER: the files' tagging scheme (read into IOB2)."""
    separator: Literal["tab", "whitespace"] = "tab"
    """CoNLL: what separates the columns of a token line."""
    label_separator: str = Field(",", min_length=1)
    """CSV/TSV multi-label: the separator between the labels of one cell."""
    notes: str = ""
    """Free text kept in the prepared task's meta.json."""
    _file: Path = PrivateAttr(Path("."))
    _line: int | None = PrivateAttr(None)

    @property
    def task_file(self) -> Path:
        """The task file that declares this task (paths in it are relative to its folder)."""
        return self._file

    @property
    def origin(self) -> str:
        """`<task file>:<line>` of this task's row, for messages."""
        return f"{self._file}:{self._line}" if self._line else str(self._file)

    @field_validator("id")
    @classmethod
    def _not_blurb(cls, value: str) -> str:
        from pubmedlm.blurb.tasks import get, is_blurb

        if not is_blurb(value):  # (`get` also knows the user tasks declared earlier)
            return value
        raise ValueError(f"{value!r} names the BLURB dataset {get(value).id}; choose another id")

    @field_validator("files", mode="before")
    @classmethod
    def _splits(cls, value: Any, info: ValidationInfo) -> Any:
        base = (info.context or {}).get("base", Path("."))
        if isinstance(value, str) or (isinstance(value, dict) and value
                                      and value.keys() <= set(FileRef.model_fields)):
            return _existing(value, base)
        if not isinstance(value, dict):
            return value  # the type check says what is wrong
        unknown = [k for k in value if k not in SPLIT_NAMES]
        if unknown:
            raise ValueError(f"unknown split {unknown[0]!r}; splits are train, dev (or devel), test")
        if {"dev", "devel"} <= value.keys():
            raise ValueError("both dev and devel given; devel is read as dev: keep one")
        out = {SPLIT_NAMES[k]: _existing(v, base, k) for k, v in value.items()}
        missing = [s for s in ("train", "dev", "test") if s not in out]
        if missing:
            raise ValueError(f"no {'/'.join(missing)} file; every task needs train, dev (or devel) and test")
        return out

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        """The task type's head and input, and the NER columns' defaults, where the row leaves them out."""
        if not isinstance(data, dict) or data.get("task_type") not in HEADS:
            return data
        data = {"head": HEADS[data["task_type"]], **data}
        if "input" not in data:
            layout, fields = INPUTS[data["task_type"]]
            data["input"] = {"layout": layout, "fields": fields}
        if data["task_type"] == "ner":
            token, tag = (0, None) if data.get("format") == "conll" else ("tokens", "ner_tags")
            data = {"token_column": token, "tag_column": tag, **data}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> UserTaskSpec:
        expected = HEADS[self.task_type]
        if self.head != expected:
            raise ValueError(f"field 'head': task type {self.task_type} takes head {expected}, "
                             f"not {self.head}")
        if self.metric not in METRICS_BY_HEAD[expected]:
            raise ValueError(f"field 'metric': {self.metric!r} does not fit head {expected}; "
                             f"use one of {', '.join(METRICS_BY_HEAD[expected])}")
        _check_metric_args(self.metric, self.metric_args)
        refs = [self.files] if isinstance(self.files, FileRef) else list(self.files.values())
        if self.format == "hf_disk" and any(r.is_source or r.sha256 for r in refs):
            raise ValueError("field 'files': a saved dataset is a folder: give its path (no url or sha256; "
                             "the prepared record holds a digest of its files)")
        if isinstance(self.files, FileRef) and self.format != "hf_disk":
            raise ValueError(f"field 'files': format {self.format} needs one file per split "
                             "(train, dev, test)")
        self._labels(expected)
        if expected == "token_classification":
            self._token_fields()
        else:
            self._row_fields()
        return self

    def _labels(self, head: str) -> None:
        if self.labels == "infer":
            return
        if head == "regression" and self.labels:
            raise ValueError("field 'labels': a regression task has no labels; leave it out")
        if head != "regression" and not self.labels:
            raise ValueError("field 'labels': empty; list them, or write infer (those of train)")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("field 'labels': a label is listed twice")
        tags = [x for x in self.labels if x == "O" or x[:2] in ("B-", "I-", "E-", "S-")]
        if head == "token_classification" and tags:
            raise ValueError(f"field 'labels': NER labels are entity types (Chemical), not tags ({tags[0]})")

    def _token_fields(self) -> None:
        if self.format not in ("conll", "hf_disk"):
            raise ValueError(f"field 'format': NER reads conll or hf_disk, not {self.format}")
        if self.input.layout != "tokens" or self.input.fields != ["tokens"]:
            raise ValueError("field 'input': NER reads layout tokens, fields [tokens]")
        if self.tag_column is None:
            raise ValueError("field 'tag_column': required for format conll "
                             "(the tag's column, counted from 0)")
        kind = int if self.format == "conll" else str
        for name in ("token_column", "tag_column"):
            value = getattr(self, name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"field '{name}': format {self.format} takes a column "
                                 f"{'index' if kind is int else 'name'}, not {value!r}")
        if self.columns:
            raise ValueError("field 'columns': NER names its columns with token_column and tag_column")

    def _row_fields(self) -> None:
        if self.format not in ROW_FORMATS:
            raise ValueError(f"field 'format': {self.format} holds tagged tokens; "
                             f"a {self.head} task reads one of {', '.join(ROW_FORMATS)}")
        for name in ("token_column", "tag_column"):
            if getattr(self, name) is not None:
                raise ValueError(f"field '{name}': only NER tasks have one; name row columns in 'columns'")
        wanted = 1 if self.input.layout == "single" else 2
        if self.input.layout == "tokens" or len(self.input.fields) != wanted:
            raise ValueError(f"field 'input': layout {self.input.layout} with {len(self.input.fields)} "
                             f"field(s); a {self.head} task reads single (1 field) or pair (2 fields)")
        unknown = [k for k in self.columns if k not in self.row_keys]
        if unknown:
            raise ValueError(f"field 'columns': unknown key {unknown[0]!r}; "
                             f"the keys are {', '.join(self.row_keys)}")

    @property
    def target(self) -> str:
        """The normalized row's target key (`tags`, `label`, `score`, `labels`)."""
        return TARGETS[self.head or HEADS[self.task_type]]

    @property
    def row_keys(self) -> tuple[str, ...]:
        """Keys a row format maps from its columns: id, doc_id, the input fields, the target."""
        return ("id", "doc_id", *(self.input.fields if self.input else ()), self.target)

    def column(self, key: str) -> str:
        return self.columns.get(key, key)


def _check_metric_args(metric: str, args: dict[str, Any]) -> None:
    """The metric's extra keyword arguments: each one it takes, every one it needs."""
    import inspect

    from pubmedlm.blurb.metrics import METRICS

    params = list(inspect.signature(METRICS[metric]).parameters.values())[2:]
    extra = [p for p in params if p.name != "sentence_ids"]
    unknown = [k for k in args if k not in {p.name for p in extra}]
    missing = [p.name for p in extra if p.default is inspect.Parameter.empty and p.name not in args]
    if unknown or missing:
        takes = ", ".join(p.name for p in extra) or "nothing"
        problem = f"unknown: {', '.join(unknown)}" if unknown else f"missing: {', '.join(missing)}"
        raise ValueError(f"field 'metric_args': {metric} takes {takes} ({problem})")


def _existing(value: Any, base: Path, split: str = "") -> FileRef:
    """A file entry as a `FileRef`; a local path made absolute (against the task file's folder) and
    checked to exist (a source's `path` names its place in the mirror: it is fetched when read)."""
    try:
        ref = FileRef.model_validate({"path": value} if isinstance(value, str) else value)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in (split, *first["loc"]) if x)
        message = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where + ': ' if where else ''}{message}") from None
    if ref.is_source:
        return ref
    path = Path(ref.path or "").expanduser()
    path = path if path.is_absolute() else base / path
    if not path.exists():
        raise ValueError(f"{path} does not exist")
    return ref.model_copy(update={"path": str(path)})


class _TaskFile(StrictModel):
    tasks: list[dict[str, Any]] = Field(min_length=1)
    """The declared tasks."""


def _row_lines(path: Path) -> list[int]:
    """Line of each row of `tasks:` (1-based), for error messages."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    if isinstance(node, yaml.SequenceNode):
        return [item.start_mark.line + 1 for item in node.value]
    for key, value in node.value if isinstance(node, yaml.MappingNode) else []:
        if key.value == "tasks" and isinstance(value, yaml.SequenceNode):
            return [item.start_mark.line + 1 for item in value.value]
    return []


def read_task_file(path: str | Path) -> list[UserTaskSpec]:
    """Every task of one task file, validated; paths resolved against the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise TaskFileError(f"task file not found: {path}")
    data = read_yaml(path, TaskFileError)
    data = {"tasks": data} if isinstance(data, list) else data  # a bare list of tasks is the list
    if not isinstance(data, dict):
        raise TaskFileError(f"{path}: expected a mapping with a 'tasks' list, got {type(data).__name__}")
    try:
        rows = _TaskFile.model_validate(data).tasks
    except ValidationError as e:
        raise TaskFileError(format_errors(e, path)) from None
    lines = _row_lines(path)
    specs: list[UserTaskSpec] = []
    for i, row in enumerate(rows):
        where = f"{path}:{lines[i]}" if i < len(lines) else str(path)
        source = f"{where}: task {i + 1} ({row.get('id', '?')!s})"
        try:
            spec = UserTaskSpec.model_validate(row, context={"base": path.parent})
        except ValidationError as e:
            raise TaskFileError(format_errors(e, source)) from None
        spec._file, spec._line = path, (lines[i] if i < len(lines) else None)
        if any(s.id == spec.id for s in specs):
            raise TaskFileError(f"{source}: bad value for 'id': {spec.id!r} is declared twice")
        specs.append(spec)
    return specs


def load_task_files(files: list[str], root: str | Path = ".") -> list[UserTaskSpec]:
    """The tasks of `tasks.files` (paths relative to `root`, the project), ids unique across files."""
    specs: list[UserTaskSpec] = []
    for name in files:
        path = Path(name) if Path(name).is_absolute() else Path(root) / name
        for spec in read_task_file(path):
            if any(s.id == spec.id for s in specs):
                raise TaskFileError(f"{path}: task {spec.id!r} is also declared in an earlier task file")
            specs.append(spec)
    return specs


__all__ = ["HEADS", "METRICS_BY_HEAD", "TASK_TYPES", "FileRef", "InputSpec", "TaskFileError", "UserTaskSpec",
           "load_task_files", "read_task_file"]
