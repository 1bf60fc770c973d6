"""The base of every config model: unknown keys are errors, field docstrings are descriptions."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ConfigError(ValueError):
    """A params file or an override is invalid; the message names the key and the file."""


class StrictModel(BaseModel):
    """Base: unknown keys are errors, attribute docstrings become field descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)
