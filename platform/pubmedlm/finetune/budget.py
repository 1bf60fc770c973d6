"""A compute budget for the hyperparameter search, in trial-epochs (`tune.budget_epochs`)."""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper


class EpochBudget(Stopper):
    """Ends the whole search once its trials have reported `budget` epochs together: the running
    trials stop and no new one starts. With several trials running at once, the others finish the
    epoch they are in, so the spend can pass the budget by up to `max_concurrent - 1` epochs."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.epochs: dict[str, int] = {}

    @property
    def spent(self) -> int:
        return sum(self.epochs.values())

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        # Counted from each trial's epoch (Tune repeats a trial's last result when it ends).
        epoch = int(result.get("epoch", result.get("training_iteration", 0)) or 0)
        self.epochs[trial_id] = max(self.epochs.get(trial_id, 0), epoch)
        return False

    def stop_all(self) -> bool:
        return self.spent >= self.budget


__all__ = ["EpochBudget"]
