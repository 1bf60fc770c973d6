"""Config sections of the BLURB side: blurb-data, users' own tasks (`tasks`), fine-tuning (shared by
tune, finetune and `pubmedlm blurb`), the search (`tune`) and the model registry (`register`). Dataset
lists are checked against the task table (`blurb.tasks`), the one home of dataset ids."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator

from pubmedlm.config.base import StrictModel


def blurb_dataset_ids() -> list[str]:
    """Every BLURB dataset id, in the paper's order: the task table (`pubmedlm.blurb.tasks`) names them."""
    from pubmedlm.blurb.tasks import all_tasks

    return list(all_tasks())


def known_datasets(value: list[str], user_tasks: bool = False) -> list[str]:
    """A list of dataset ids: each known, none twice. With task files declared (`user_tasks`), other
    ids are let through here and checked against those files' tasks by the stages that read them
    (`usertasks.declared.activate`), so the config does not read task files."""
    from pubmedlm.blurb.tasks import user_tasks as declared

    known = blurb_dataset_ids()
    unknown = [d for d in value if d not in known and d not in declared()]  # declared: already checked
    if unknown and not user_tasks:
        raise ValueError(f"unknown BLURB dataset(s) {', '.join(unknown)}; known: {', '.join(known)} "
                         "(your own tasks: declare them in task files, tasks.files)")
    if len(set(value)) != len(value):
        raise ValueError("a dataset is listed twice")
    return value


def _user_tasks(info: ValidationInfo) -> bool:
    """Whether the params declare task files (`load_config` says so in the validation context)."""
    return bool((info.context or {}).get("user_tasks"))


class BlurbDataConfig(StrictModel):
    """Preparation of the BLURB datasets from their sources."""

    datasets: list[str] = Field(default_factory=blurb_dataset_ids)
    """Registry ids of the datasets to prepare; one whose sources are missing is reported by name.
    params.yaml lists them once (a YAML anchor) and `finetune.datasets` reuses the list."""
    catalogs: list[str] = Field(default_factory=list)
    """Extra source catalogs (TSV: path, url, sha256, bytes), e.g. for BC2GM or BioASQ files you hold."""
    pico_train: str | None = None
    """A BLURB-format EBM PICO train file you supply (catalog path or local path); the mirror lacks it."""
    pico_proxy_from_dev: bool = False
    """Without `pico_train`, carve a proxy train split out of dev (whole abstracts); every score
    built on it is marked "proxy, not comparable". Off: the stage fails with a clear message."""
    pico_proxy_train_share: float = Field(0.8, gt=0, lt=1)
    """Share of dev abstracts moved to the proxy train split (the rest stay dev)."""
    seed: int = 12345
    """Seed of the proxy split's abstract shuffle."""

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("no dataset listed: the stage would prepare nothing; list at least one of "
                             f"{', '.join(blurb_dataset_ids())}")
        return known_datasets(value)


class TasksConfig(StrictModel):
    """Users' own tasks, declared in task files (`pubmedlm.usertasks`; example:
    `pipelines/tasks/example.yaml`) and read into the prepared form of a BLURB dataset."""

    files: list[str] = Field(default_factory=list)
    """Task files (YAML), relative to the project root; read by `usertasks.load_task_files`. Empty:
    the BLURB datasets only."""

    @field_validator("files")
    @classmethod
    def _task_files(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("an empty path is listed")
        if len(set(value)) != len(value):
            raise ValueError("a task file is listed twice")
        return value


class FloatRange(StrictModel):
    """A closed range [low, high] searched on a linear or log scale; low == high fixes the value."""

    low: float
    """Smallest value searched."""
    high: float
    """Largest value searched."""
    log: bool = False
    """Sample on a log scale (learning rates)."""

    @field_validator("high")
    @classmethod
    def _ordered(cls, high: float, info) -> float:
        low = info.data.get("low")
        if low is not None and high < low:
            raise ValueError(f"empty range: high {high} < low {low}")
        return high


class HParams(StrictModel, frozen=True):
    """One fine-tuning configuration: a point of the search space (`tune.search`, one per trial), the
    configuration `tune.fixed` holds, the one `finetune` trains its seeds with, and a study's `fixed`.
    The one definition of these fields: `finetune.fit` trains with it, `finetune.search` builds it from
    a trial's config."""

    learning_rate: float = Field(gt=0)
    """Peak learning rate (paper grid: 1e-5, 3e-5, 5e-5)."""
    batch_size: int = Field(ge=1)
    """Global batch size (paper grid: 16, 32)."""
    epochs: int = Field(ge=1)
    """Training epochs (the LR schedule spans them)."""
    warmup_ratio: float = Field(ge=0, lt=1)
    """Share of steps in linear warm-up (paper: 0.1), then linear decay to 0."""
    weight_decay: float = Field(ge=0)
    """AdamW weight decay (not on biases and LayerNorm)."""
    dropout: float = Field(ge=0, lt=1)
    """Hidden and attention dropout of the encoder and the head's input (paper: 0.1)."""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> HParams:
        """From a trial's config or a best.json's `hparams`: each field cast to its type (Ray Tune may
        hand numpy numbers), other keys ignored."""
        return cls(**{k: info.annotation(d[k]) for k, info in cls.model_fields.items()})

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


class SearchSpace(StrictModel):
    """The fine-tuning hyperparameters Ray Tune + Optuna search per task (paper: a grid of
    LR {1e-5, 3e-5, 5e-5} x batch {16, 32} x epochs, chosen on dev)."""

    learning_rate: FloatRange = FloatRange(low=8e-6, high=8e-5, log=True)
    """Peak learning rate, log scale around the paper's {1e-5, 3e-5, 5e-5}."""
    batch_size: list[int] = Field([16, 32], min_length=1)
    """Global batch sizes to choose from (paper: 16, 32)."""
    epochs: tuple[int, int] = (2, 10)
    """Inclusive range of training epochs (paper: 2-60; the LR schedule spans a trial's epochs)."""
    warmup_ratio: FloatRange = FloatRange(low=0.0, high=0.2)
    """Share of steps in linear warm-up (paper: 0.1), then linear decay to 0."""
    weight_decay: FloatRange = FloatRange(low=0.0, high=0.1)
    """AdamW weight decay (not on biases and LayerNorm)."""
    dropout: FloatRange = FloatRange(low=0.0, high=0.2)
    """Hidden and attention dropout of the encoder and the head's input (paper: 0.1)."""

    @field_validator("batch_size")
    @classmethod
    def _positive_batches(cls, value: list[int]) -> list[int]:
        if any(b < 1 for b in value):
            raise ValueError("batch sizes must be >= 1")
        return value

    @field_validator("epochs")
    @classmethod
    def _epoch_range(cls, value: tuple[int, int]) -> tuple[int, int]:
        if value[0] < 1 or value[1] < value[0]:
            raise ValueError(f"empty epoch range {list(value)}: need 1 <= low <= high")
        return value

    @field_validator("learning_rate")
    @classmethod
    def _log_scale_positive(cls, r: FloatRange) -> FloatRange:
        if r.log and r.low <= 0:
            raise ValueError(f"a log range needs low > 0 (got {r.low})")
        return r

    @field_validator("dropout", "warmup_ratio")
    @classmethod
    def _probability(cls, r: FloatRange) -> FloatRange:
        if r.low < 0 or r.high >= 1:
            raise ValueError(f"range [{r.low}, {r.high}] must lie in [0, 1)")
        return r


class TuneConfig(StrictModel):
    """The `tune` stage: a hyperparameter search on dev per task (Ray Tune, Optuna TPE, ASHA)."""

    num_samples: int = Field(12, ge=1)
    """Trials per task."""
    max_concurrent: int = Field(1, ge=1)
    """Trials running at once (each takes runtime.cpus_per_worker CPUs and gpus_per_worker GPUs)."""
    search: SearchSpace = SearchSpace()
    """The search space."""
    scheduler: Literal["asha", "fifo"] = "asha"
    """`asha` stops weak trials early on the per-epoch dev metric; `fifo` runs every trial to the end."""
    grace_period: int = Field(1, ge=1)
    """ASHA: epochs every trial runs before it can be stopped."""
    reduction_factor: int = Field(3, ge=2)
    """ASHA: keep the top 1/reduction_factor of trials at each rung."""
    budget_epochs: int | None = Field(None, ge=1)
    """Compute budget of the whole search in trial-epochs (all trials' epochs together): when it
    is spent, the running trials stop and no new one starts. None: `num_samples` trials, no
    budget. Counted from the start of this process (a resumed search gets the budget afresh)."""
    startup_trials: int = Field(10, ge=0)
    """Random trials before TPE models the results (Optuna's default: 10); with no more samples
    than this, the search is a random search."""
    seed: int = 0
    """Seed of the TPE sampler and of every trial's initialisation and data order."""
    fixed: HParams | None = None
    """A fixed configuration instead of the search: `{learning_rate, batch_size, epochs, warmup_ratio,
    weight_decay, dropout}`, all required. Set, the stage runs no trial: best.json holds these values,
    marked `"fixed": true`, and finetune trains with them (controlled comparisons, e.g. the studies).
    null: search as above."""
    fixed_per_dataset: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per dataset id, changes to `tune.fixed` (some of its fields), e.g. `{BIOSSES: {epochs: 30}}`:
    the paper's recipe chooses epochs per dataset (2-60), and 64 training pairs need more of them than
    thousands of sentences. Needs `tune.fixed`."""

    @field_validator("fixed_per_dataset")
    @classmethod
    def _fixed_changes(cls, value: dict[str, dict[str, Any]], info: ValidationInfo) -> dict[str, dict]:
        from pubmedlm.blurb.tasks import user_tasks

        fixed = info.data.get("fixed")
        if value and fixed is None:
            raise ValueError("needs tune.fixed (it changes some of its fields per dataset)")
        known = [*blurb_dataset_ids(), *user_tasks()]
        for name, changes in value.items():
            unknown = sorted(set(changes) - set(HParams.model_fields))
            if name not in known and not _user_tasks(info):
                raise ValueError(f"{name}: not a dataset id (known: {', '.join(known)})")
            if unknown:
                raise ValueError(f"{name}.{unknown[0]}: not a field of tune.fixed "
                                 f"({', '.join(HParams.model_fields)})")
            try:
                HParams(**{**fixed.as_dict(), **changes})
            except ValidationError as e:
                error = e.errors()[0]
                raise ValueError(f"{name}.{error['loc'][0]}: {error['msg']}") from None
        return value

    def fixed_for(self, dataset: str) -> HParams | None:
        """`fixed` with the dataset's changes (`fixed_per_dataset`); None when searching."""
        if self.fixed is None:
            return None
        return HParams(**{**self.fixed.as_dict(), **self.fixed_per_dataset.get(dataset, {})})


class FinetuneConfig(StrictModel):
    """Fine-tuning on BLURB (shared by `tune` and `finetune`): the model, the heads' modelling
    choices, seeds and caps. Caps make scores "not comparable" with the paper's."""

    model: str = "pretrain"
    """The encoder: `pretrain` (this pipeline's pretrained model), `minilm`, a local HF folder or a hub id."""
    datasets: list[str] = Field(default_factory=blurb_dataset_ids)
    """Registry ids to fine-tune; ones blurb-data could not prepare are reported as unavailable."""
    tagging: Literal["IO", "BIO", "BIOUL"] = "BIO"
    """NER/PICO tagging scheme the model learns (the paper's ablation: same entity F1)."""
    re_entity: Literal["dummy", "markers", "original"] = "dummy"
    """Relation extraction input: entity dummy tokens (paper default), entity markers around the
    original mentions, or the original text (needs rows with entity spans: ChemProt, DDI)."""
    re_pooling: Literal["cls", "entity_start"] = "cls"
    """RE representation: [CLS], or the two entities' first tokens concatenated."""
    seeds: dict[str, int] = Field(default_factory=lambda: {"default": 5, "BIOSSES": 10, "BioASQ": 10,
                                                           "PubMedQA": 10})
    """Seeds per dataset for the test score (paper: 10 for BIOSSES, BioASQ, PubMedQA, else 5)."""
    seed: int = 1000
    """First fine-tuning seed; seed k is seed + k."""
    attention_dropout: float | None = Field(None, ge=0, lt=1)
    """Dropout on attention probabilities; null: the searched `dropout` (BERT: both 0.1). On CPU,
    attention dropout makes a 512-token step about 3x slower (MiniLM, measured)."""
    precision: Literal["bf16", "fp32"] = "bf16"
    """Autocast dtype."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping threshold."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    adam_eps: float = Field(1e-8, gt=0)
    """AdamW epsilon."""
    max_train_examples: int | None = Field(None, ge=1)
    """Cap on training rows (tiny profile); set -> "not comparable"."""
    max_eval_examples: int | None = Field(None, ge=1)
    """Cap on dev/test rows scored (tiny profile); set -> "not comparable"."""
    max_length: int | None = Field(None, ge=8)
    """Cap below the task table's max input length (tiny profile); set -> "not comparable"."""
    freeze_layers: int = Field(0, ge=0)
    """Stabilizer (Tinn et al. 2023): N > 0 freezes the embeddings and the lowest N encoder layers
    (left out of the optimizer); 0: off. At most the model's layer count (checked at load)."""
    layer_lr_decay: float = Field(1.0, gt=0, le=1)
    """Stabilizer: layer-wise learning-rate decay d. Head and pooler at the peak LR, encoder layer i
    (0-based, of L) at LR x d^(L-i), so the top layer at LR x d; embeddings at LR x d^(L+1). 1.0: off."""
    reinit_layers: int = Field(0, ge=0)
    """Stabilizer: the top N encoder layers (and the pooler) re-initialised with the model's own
    initializer before fine-tuning; 0: off. freeze_layers + reinit_layers must not exceed the layer count."""
    random_init: bool = False
    """Every encoder weight (embeddings, layers, pooler) re-initialised before fine-tuning: the model's
    architecture and vocabulary without its pretraining (the `init` study's control); not with
    freeze_layers."""
    length_group_batches: int = Field(50, ge=0)
    """Batches grouped by length: each epoch's shuffled rows are cut into groups of this many batches,
    sorted by length within a group and cut into batches, whose order is shuffled again (seeded; HF's
    `group_by_length` uses 50). Less padding, so fewer wasted FLOPs; 0: plain shuffled batches."""

    @field_validator("datasets")
    @classmethod
    def _known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        return known_datasets(value, _user_tasks(info))

    @field_validator("seeds")
    @classmethod
    def _seed_keys(cls, value: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        from pubmedlm.blurb.tasks import user_tasks

        known = [*blurb_dataset_ids(), *user_tasks()]
        unknown = [k for k in value if k != "default" and k not in known and not _user_tasks(info)]
        if unknown or "default" not in value or any(n < 1 for n in value.values()):
            raise ValueError("seeds: a `default` count and optional dataset ids, each >= 1 "
                             f"(unknown: {', '.join(unknown) or 'none'})")
        return value

    def seeds_for(self, dataset: str) -> int:
        return self.seeds.get(dataset, self.seeds["default"])

    @property
    def capped(self) -> bool:
        return any(v is not None for v in (self.max_train_examples, self.max_eval_examples, self.max_length))


class RegisterConfig(StrictModel):
    """The `register` stage: models into the MLflow Model Registry, promoted by a gate."""

    prefix: str = Field("pubmedlm", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Registered model names: `<prefix>-encoder` and `<prefix>-<dataset>`."""
    encoder: bool = True
    """Register the encoder that was fine-tuned (transformers flavour, fill-mask)."""
    tasks: bool = True
    """Register each dataset's best-dev fine-tuned model (pyfunc: raw text or rows in, predictions out)."""
