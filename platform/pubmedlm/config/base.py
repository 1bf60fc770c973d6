"""The base of every config model: unknown keys are errors, field docstrings are descriptions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from pubmedlm.errors import UserError


class ConfigError(UserError, ValueError):
    """A params file or an override is invalid; the message names the key and the file."""


class StrictModel(BaseModel):
    """Base: unknown keys are errors, attribute docstrings become field descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, line: int, first: int) -> None:
        super().__init__(f"line {line}: key {key!r} written twice (first at line {first}); keep one")


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error (plain YAML
    keeps the last value silently). Merge keys (`<<`) may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if isinstance(key, (str, int, float, bool)) and key in seen:
                raise _DuplicateKey(key, line, seen[key])
            seen.setdefault(key, line)
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: Path, error: type[Exception] = ConfigError) -> Any:
    """A YAML file the user writes (params, studies, task files): text, valid YAML, no key written
    twice; anything else is `error` naming the file (and the line where YAML knows it)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})") from None
    try:
        return yaml.load(text, Loader=_StrictLoader)
    except _DuplicateKey as e:
        raise error(f"{path}: {e}") from None
    except yaml.MarkedYAMLError as e:  # one line: where, and what YAML expected there
        mark = e.problem_mark or e.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise error(f"{where}: not valid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise error(f"{path}: not valid YAML: {e}") from None


def format_errors(err: ValidationError, source: str | Path) -> str:
    """One line per problem of a strict model (params, study files), each naming `source` and the key."""
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'")
        elif e["type"] == "missing" and e["loc"] and isinstance(e["loc"][-1], int):  # a short tuple
            parent = ".".join(str(p) for p in e["loc"][:-1])
            lines.append(f"{source}: bad value for '{parent}': item {e['loc'][-1] + 1} is missing")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing key '{loc}'")
        elif e["type"] == "value_error":  # the platform's validators: the message says what is wrong
            msg = str(e["msg"]).removeprefix("Value error, ")
            lines.append(f"{source}: bad value for '{loc}': {msg}" if loc else f"{source}: {msg}")
        else:
            hint = ("; YAML read it as a number or boolean: quote it"
                    if e["type"] == "string_type" and isinstance(e.get("input"), (int, float, bool)) else "")
            lines.append(f"{source}: bad value for '{loc}': {e['msg']} (got {e.get('input')!r}{hint})")
    return "\n".join(lines)
