"""The MLflow Model Registry side of the platform: versions, aliases and the promotion gate.

Every registered version gets the alias `candidate`. The alias `champion` moves to it only when
the gate passes (`gate`):

1. its score is complete: no "partial" BLURB score (a dataset missing) and no "proxy" dataset;
2. its dev score beats its task's sanity baseline on dev (`blurb.baselines`: all O, majority
   class, all-positive, train mean; for the encoder, the BLURB score of those): a model no better
   than a constant is never champion, and one that beats it replaces a champion that does not;
3. it was scored on the same task set as the current champion (BLURB scores over different
   dataset sets are not comparable);
4. a capped run (tiny profile, "not comparable" with the paper) never replaces a full-budget
   champion, while a full-budget run always replaces a capped one;
5. its score is higher than the champion's.

Otherwise the version keeps `candidate` only, and its tags `gate.promoted` / `gate.reason` (and
the register run's tags) say why. Aliases only: the deprecated registry stages are never used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CANDIDATE = "candidate"
CHAMPION = "champion"


@dataclass(frozen=True)
class Standing:
    """What the gate compares, stored on each version as `gate.*` tags."""

    score: float
    tasks: tuple[str, ...]
    partial: bool = False
    proxy: bool = False
    capped: bool = False
    dev: float | None = None
    """Its dev score (task model: mean over seeds; encoder: BLURB score of the dev means)."""
    sanity: float | None = None
    """Its task's sanity baseline on the same dev rows (None: unknown, so never champion)."""

    def as_tags(self) -> dict[str, str]:
        known = {k: f"{v:.6f}" for k, v in (("gate.dev", self.dev), ("gate.sanity", self.sanity))
                 if v is not None}
        return {"gate.score": f"{self.score:.6f}", "gate.tasks": ",".join(sorted(self.tasks)),
                "gate.partial": str(self.partial).lower(), "gate.proxy": str(self.proxy).lower(),
                "gate.capped": str(self.capped).lower(), **known}

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Standing | None:
        if "gate.score" not in tags:
            return None
        number = {k: float(tags[f"gate.{k}"]) for k in ("dev", "sanity") if f"gate.{k}" in tags}
        return cls(float(tags["gate.score"]), tuple(t for t in tags.get("gate.tasks", "").split(",") if t),
                   tags.get("gate.partial") == "true", tags.get("gate.proxy") == "true",
                   tags.get("gate.capped") == "true", **number)

    @property
    def beats_sanity(self) -> bool:
        return self.dev is not None and self.sanity is not None and self.dev > self.sanity


def gate(candidate: Standing, champion: Standing | None,
         champion_version: str | None = None) -> tuple[bool, str]:
    """(promote?, why) for a new version against the current champion."""
    if candidate.partial:
        return False, "partial score (datasets missing): never champion"
    if candidate.proxy:
        return False, "scored on a proxy split: never champion"
    if candidate.sanity is None or candidate.dev is None:
        return False, "no dev score against a sanity baseline: never champion"
    if not candidate.beats_sanity:
        return False, (f"dev {candidate.dev:.2f} not above the sanity baseline's {candidate.sanity:.2f}: "
                       "never champion")
    if champion is None:
        return True, "no champion yet"
    who = f"champion v{champion_version}" if champion_version else "champion"
    if champion.sanity is not None and not champion.beats_sanity:
        return True, f"beats the sanity baseline, which the {who} does not"
    if set(candidate.tasks) != set(champion.tasks):
        return False, (f"scored on another task set than the {who} "
                       f"({len(candidate.tasks)} vs {len(champion.tasks)} datasets): not comparable")
    if candidate.capped and not champion.capped:
        return False, f"capped run (not comparable) cannot replace the full-budget {who}"
    if champion.capped and not candidate.capped:
        return True, f"full-budget run replaces the capped {who}"
    if candidate.score > champion.score:
        return True, f"score {candidate.score:.2f} > {who}'s {champion.score:.2f}"
    return False, f"score {candidate.score:.2f} not above the {who}'s {champion.score:.2f}"


def champion_of(client: Any, name: str) -> Any | None:
    """The version holding `champion`, or None (no model, or no alias yet)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def register_version(model_uri: str, name: str, standing: Standing, *, tags: dict[str, Any],
                     description: str) -> dict[str, Any]:
    """Register `model_uri` as a new version of `name`, alias it `candidate`, and `champion` when
    the gate passes. Returns the decision: version, promoted, reason, the champion before."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    before = champion_of(client, name)
    current = Standing.from_tags(before.tags) if before is not None else None
    promoted, reason = gate(standing, current, before.version if before is not None else None)
    version = mlflow.register_model(model_uri, name,
                                    tags={k: str(v) for k, v in tags.items()} | standing.as_tags())
    client.update_model_version(name, version.version, description=description)
    client.set_model_version_tag(name, version.version, "gate.promoted", str(promoted).lower())
    client.set_model_version_tag(name, version.version, "gate.reason", reason)
    client.set_registered_model_alias(name, CANDIDATE, version.version)
    if promoted:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return {"name": name, "version": version.version, "promoted": promoted, "reason": reason,
            "previous_champion": before.version if before is not None else None, "score": standing.score,
            "dev": standing.dev, "sanity": standing.sanity}


__all__ = ["CANDIDATE", "CHAMPION", "Standing", "champion_of", "gate", "register_version"]
