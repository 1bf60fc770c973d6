"""A study file (`pipelines/studies/<name>.yaml`): one controlled comparison of the paper, as data.

A study names a base params file, the datasets, the variants (name -> `--set` overrides, applied on
top of the study's common `overrides`), the baseline variant, seeds per variant, whether
hyperparameters are searched per variant or held fixed, the claim being tested (in words and as
rules from a small closed set, `Rule`), and the paper's numbers for the same cells.

`load_study(path)` reads it with the strict YAML reader (a key written twice is an error),
validates it, checks every dataset against the task table and every variant's overrides by loading
the params they make (`config.load_config`): anything wrong is a `StudyError` naming the file and
the key, before any compute.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from pubmedlm.config.base import StrictModel, format_errors, read_yaml
from pubmedlm.config.blurb import HParams, TuneConfig
from pubmedlm.errors import UserError

BLURB = "BLURB"
"""The paper-cell key of the BLURB score (vocab × WWM is reported as BLURB only)."""


class StudyError(UserError, ValueError):
    """A study file is invalid; the message names the file and the key."""


class _RuleBase(StrictModel):
    margin: float = Field(default=0.0, ge=0)
    """Points (the metric's scale, 0-100) the rule allows or requires."""
    scope: Literal["each_dataset", "blurb"] = "each_dataset"
    """Where the rule is checked: on every dataset, or on the BLURB-weighted average of them."""


class AllWithin(_RuleBase):
    """Every variant within ±margin of the baseline ("complex tagging schemes are unnecessary")."""

    kind: Literal["all_within"]


class AllBelow(_RuleBase):
    """Every variant below the baseline by more than margin (the baseline is best)."""

    kind: Literal["all_below"]


class Within(_RuleBase):
    """`variant` within ±margin of the baseline."""

    kind: Literal["within"]
    variant: str


class Below(_RuleBase):
    """`variant` below the baseline by more than margin ("original text with [CLS] collapses")."""

    kind: Literal["below"]
    variant: str


class Above(_RuleBase):
    """`variant` above the baseline by more than margin."""

    kind: Literal["above"]
    variant: str


class StdBelow(StrictModel):
    """`variant`'s seed standard deviation below the baseline's (a claim about stability; an F
    interval on the variance ratio over seeds decides it)."""

    kind: Literal["std_below"]
    variant: str
    scope: Literal["each_dataset"] = "each_dataset"
    """Checked on every dataset (a BLURB average has no seed std of its own here)."""


Rule = Annotated[AllWithin | AllBelow | Within | Below | Above | StdBelow, Field(discriminator="kind")]
RULE_KINDS = ("all_within", "all_below", "within", "below", "above", "std_below")


class Claim(StrictModel):
    """What the paper concludes, in words, and the rules that must all hold on our runs."""

    text: str = Field(min_length=1)
    """The claim in words (quote the paper where it can be)."""
    rules: list[Rule] = Field(min_length=1)
    """All must hold for the claim to hold."""


class Study(StrictModel):
    """One study file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """The study's name: the file's stem (`pubmedlm study run NAME`)."""
    description: str = ""
    """What is compared and why (shown at the top of the report)."""
    params: str = "params.yaml"
    """The base params file, relative to the project root."""
    overrides: list[str] = Field(default_factory=list)
    """`--set` overrides every variant gets first (model, caps): what the study holds constant."""
    datasets: list[str] = Field(min_length=1)
    """BLURB dataset ids (task table names are accepted and stored as ids)."""
    variants: dict[str, list[str]] = Field(min_length=2)
    """Variant name -> its `--set` overrides (`section.key=value`)."""
    baseline: str
    """The variant every other one is compared with."""
    seeds: int = Field(default=3, ge=1)
    """Fine-tuning seeds per variant and dataset (Welch intervals need >= 2)."""
    hparams: Literal["search", "fixed"] = "fixed"
    """`fixed`: every variant fine-tunes with `fixed` (only the studied variable moves); `search`:
    each variant searches its own hyperparameters (the paper's protocol)."""
    fixed: HParams | None = None
    """The fixed configuration (required with `hparams: fixed`, refused with `search`): the fields of
    `tune.fixed` (`config.HParams`), which a variant's run sets."""
    fixed_per_dataset: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per dataset of the study, changes to `fixed` (`tune.fixed_per_dataset`), e.g. more epochs for
    a tiny training set; the same for every variant."""
    claim: Claim
    """The claim being tested."""
    paper: dict[str, dict[str, float]] = Field(default_factory=dict)
    """The paper's reported test scores: variant -> dataset id (or `BLURB`) -> score. Cells the
    paper does not report are left out."""
    paper_source: str = ""
    """Where the paper's numbers come from (its table)."""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        from pubmedlm.blurb import tasks

        ids = []
        for name in value:
            try:
                ids.append(tasks.get(name).id)
            except KeyError:
                raise ValueError(f"unknown dataset {name!r}; known: {', '.join(tasks.all_tasks())}") from None
        if len(set(ids)) != len(ids):
            raise ValueError(f"a dataset is listed twice: {value}")
        return ids

    @model_validator(mode="after")
    def _consistent(self) -> Study:
        if self.baseline not in self.variants:
            raise ValueError(f"baseline: {self.baseline!r} is not a variant ({', '.join(self.variants)})")
        if (self.hparams == "fixed") != (self.fixed is not None):
            raise ValueError("fixed: required with `hparams: fixed`, not allowed with `hparams: search`")
        extra = sorted(set(self.fixed_per_dataset) - set(self.datasets))
        if extra:
            raise ValueError(f"fixed_per_dataset.{extra[0]}: not one of the study's datasets")
        try:
            TuneConfig(fixed=self.fixed, fixed_per_dataset=self.fixed_per_dataset)
        except ValidationError as e:
            reason = e.errors()[0]["msg"].removeprefix("Value error, ")
            raise ValueError(f"fixed_per_dataset.{reason}") from None
        for i, rule in enumerate(self.claim.rules):
            variant = getattr(rule, "variant", self.baseline)
            if variant not in self.variants or (variant == self.baseline and hasattr(rule, "variant")):
                raise ValueError(f"claim.rules.{i}.variant: {variant!r} is not a variant other than the "
                                 f"baseline ({', '.join(v for v in self.variants if v != self.baseline)})")
        for variant, cells in self.paper.items():
            if variant not in self.variants:
                raise ValueError(f"paper.{variant}: not a variant ({', '.join(self.variants)})")
            extra = sorted(set(cells) - set(self.datasets) - {BLURB})
            if extra:
                raise ValueError(f"paper.{variant}.{extra[0]}: not one of the study's datasets or {BLURB}")
        return self

    def overrides_of(self, variant: str) -> list[str]:
        """The `--set` overrides that make `variant`'s params: the common ones, then its own."""
        return [*self.overrides, *self.variants[variant]]

    def others(self) -> list[str]:
        """The variants compared with the baseline, in file order."""
        return [v for v in self.variants if v != self.baseline]


def check_variants(study: Study, path: Path, root: Path) -> None:
    """Every variant's params load: the base file exists and every override names a real param."""
    from pubmedlm.config import ConfigError, load_config

    base = root / study.params
    if not base.is_file():
        raise StudyError(f"{path}: params: base params file not found: {base}")
    for variant in study.variants:
        try:
            load_config(base, study.overrides_of(variant))
        except ConfigError as e:
            raise StudyError(f"{path}: variants.{variant}: {e}") from None


def load_study(path: Path, root: Path | None = None) -> Study:
    """Read and validate a study file; `root` (default: the project above the file) holds its
    base params file. Errors are `StudyError`s naming the file and the key."""
    from pubmedlm.project import project_root

    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file not found: {path}")
    data = read_yaml(path, StudyError)
    if not isinstance(data, dict):
        raise StudyError(f"{path}: top level must be a mapping (name, datasets, variants, ...)")
    try:
        study = Study.model_validate(data)
    except ValidationError as e:
        raise StudyError(format_errors(e, path)) from None
    if study.name != path.stem:
        raise StudyError(f"{path}: name: {study.name!r} differs from the file's name {path.stem!r}")
    check_variants(study, path, root if root is not None else project_root(path.parent))
    return study


__all__ = ["BLURB", "RULE_KINDS", "Above", "AllBelow", "AllWithin", "Below", "Claim", "Rule", "StdBelow",
           "Study", "StudyError", "Within", "check_variants", "load_study"]
