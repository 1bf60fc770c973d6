"""Ray Train glue for pretraining: the job every worker receives, the per-worker function and the
TorchTrainer around it.

The job carries the `pretrain` and `runtime` config sections themselves (pydantic models pickle),
so a worker reads the same typed fields, with the same defaults, as the stage that built it.

Each worker builds the model, restores the latest checkpoint if Ray hands one over (a restart
after a failure, or a rerun of the stage under the same run name), wraps the model in DDP, and
runs the shared training loop over its micro-batches. Rank 0 logs to MLflow (Ray Train V2 keeps
no metrics reported without a checkpoint) and writes checkpoints; every rank calls
`ray.train.report` at the same steps, as Ray requires.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from pubmedlm.config import PretrainConfig, RuntimeConfig
from pubmedlm.infra.tracking import RunRef
from pubmedlm.train.loop import Hooks, compile_encoder, evaluate, train_steps
from pubmedlm.train.mlm import MaskedLMLoss, vocab_info
from pubmedlm.train.optim import optimizer_and_schedule
from pubmedlm.train.packing import PackedSet
from pubmedlm.train.pretraining import (
    PhaseData,
    build_model,
    heldout_batches,
    load_state,
    make_batch,
    measure_peak_flops,
    micro_batch_rows,
    prediction_budget,
    save_state,
    seeded,
    train_flops_per_sequence,
)

HF_DIR = "hf"


@dataclass(frozen=True)
class PretrainJob:
    """What every pretraining worker needs: the recipe and runtime sections, resolved paths, the run."""

    recipe: PretrainConfig
    runtime: RuntimeConfig
    init: str
    """`scratch`, or the resolved path / hub id of the checkpoint to continue from."""
    tokenizer: str
    pack_dir: str
    run: RunRef | None = None
    """The stage's MLflow run, which rank 0 logs to (None: no tracking)."""

    @property
    def total_steps(self) -> int:
        return sum(p.steps for p in self.recipe.phases)


def make_trainer(job: PretrainJob, name: str, storage: str):
    """The TorchTrainer of a job: workers and resources from `runtime`, restarts from the recipe."""
    import ray.train
    from ray.train.torch import TorchTrainer

    rt = job.runtime
    use_gpu = rt.gpus_per_worker > 0
    resources = {"CPU": rt.cpus_per_worker, **({"GPU": rt.gpus_per_worker} if use_gpu else {})}
    return TorchTrainer(
        pretrain_worker,
        train_loop_config={"job": job},
        scaling_config=ray.train.ScalingConfig(num_workers=rt.num_workers, use_gpu=use_gpu,
                                               resources_per_worker=resources,
                                               placement_strategy=rt.placement_strategy),
        run_config=ray.train.RunConfig(
            name=name, storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=job.recipe.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
        ),
    )


class _Reporter:
    """Rank-0 logging, evaluation and checkpoint hooks."""

    def __init__(self, job: PretrainJob, net, unwrapped, opt, sched, rank: int, device, heldout, tokenizer,
                 peak: float) -> None:
        import ray.train

        self.ray_train = ray.train
        self.job, self.net, self.unwrapped, self.opt, self.sched = job, net, unwrapped, opt, sched
        self.rank, self.device, self.heldout, self.tokenizer = rank, device, heldout, tokenizer
        self.logger = None
        if rank == 0 and job.run is not None:
            from pubmedlm.infra.tracking import RunLogger

            self.logger = RunLogger(job.run.run_id, job.run.uri)
        self.tokens = 0
        self.flops_per_seq = 0.0
        self.global_batch = 1
        self.seq_len = 1
        self.peak = peak
        self.last_eval: dict[str, float] = {}

    def phase(self, seq_len: int, global_batch: int, masked_per_seq: float, nsp: bool) -> None:
        self.seq_len, self.global_batch = seq_len, global_batch
        self.flops_per_seq = train_flops_per_sequence(self.unwrapped.model.config, seq_len,
                                                      masked_per_seq, nsp)

    def on_step(self, step: int, stats: dict[str, float]) -> None:
        p, total = self.job.recipe, self.job.total_steps
        self.tokens += self.global_batch * self.seq_len
        if self.rank == 0 and self.logger and (step % p.log_every == 0 or step == total):
            rate = self.global_batch / stats["step_time"]
            row = {
                "train/loss": stats["loss"], "train/mlm_loss": stats["mlm_loss"],
                "train/mlm_accuracy": stats["mlm_correct"] / max(1.0, stats["mlm_count"]),
                "train/lr": stats["lr"], "train/grad_norm": stats["grad_norm"],
                "train/tokens_per_s": rate * self.seq_len, "train/sequences_per_s": rate,
                "train/tokens_seen": self.tokens,
            }
            if self.peak:
                row["train/mfu"] = rate * self.flops_per_seq / (self.peak * self.job.runtime.num_workers)
            self.logger.log_metrics(row, step)
        if step % p.eval_every == 0 or step == total:
            self.evaluate(step)
        if step % p.checkpoint_every == 0 or step == total:
            self.checkpoint(step, final=step == total)

    def evaluate(self, step: int) -> None:
        if self.rank != 0:
            return
        # The unwrapped module: DDP's forward would start collectives the other ranks never join.
        out = evaluate(self.unwrapped, self.heldout, self.device, self.job.recipe.precision)
        self.last_eval = {"heldout/mlm_loss": out["mlm_loss"],
                          "heldout/mlm_accuracy": out["mlm_correct"] / out["mlm_count"]}
        if "nsp_correct" in out:
            self.last_eval["heldout/nsp_accuracy"] = (out["nsp_correct"]
                                                      / sum(len(b["input_ids"]) for b in self.heldout))
        if self.logger:
            self.logger.log_metrics(self.last_eval, step)

    def checkpoint(self, step: int, final: bool) -> None:
        metrics = {"step": step, "tokens_seen": self.tokens, **self.last_eval}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = None
            if self.rank == 0:
                save_state(Path(tmp), self.unwrapped, self.opt, self.sched, step)
                if final:
                    self.unwrapped.model.save_pretrained(Path(tmp) / HF_DIR)
                    self.tokenizer.save_pretrained(Path(tmp) / HF_DIR)
                checkpoint = self.ray_train.Checkpoint.from_directory(tmp)
            self.ray_train.report(metrics, checkpoint=checkpoint)


def pretrain_worker(config: dict) -> None:
    """Runs in every Ray Train worker; `config["job"]` is the `PretrainJob` the stage built."""
    import ray.train
    import ray.train.torch

    from pubmedlm.text.models import load_tokenizer

    job: PretrainJob = config["job"]
    p, micro = job.recipe, job.runtime.micro_batch_size
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(job.runtime.cpus_per_worker)
    tokenizer = load_tokenizer(Path(job.tokenizer))
    info = vocab_info(tokenizer)
    pack = Path(job.pack_dir)
    phases = [PhaseData(PackedSet(pack / f"len{ph.seq_len}" / "train"),
                        PackedSet(pack / f"len{ph.seq_len}" / "heldout"), ph.global_batch, micro, world)
              for ph in p.phases]
    nsp = phases[0].train.token_type_ids is not None
    budget = prediction_budget(p)
    net = _network(job, len(tokenizer), nsp, info.pad_id)
    opt, sched = optimizer_and_schedule(net, lr=p.peak_lr, weight_decay=p.weight_decay,
                                        betas=p.adam_betas, eps=p.adam_eps, warmup_ratio=p.warmup_ratio,
                                        total_steps=job.total_steps)
    start = _restore(net, opt, sched)
    peak = job.runtime.peak_flops or (measure_peak_flops(device) if rank == 0 else 0.0)
    ddp = ray.train.torch.prepare_model(net)
    heldout = heldout_batches(phases[-1].heldout, info, p.mlm_probability, p.whole_word_mask,
                              p.eval_batches, micro, p.seed, budget(p.phases[-1].seq_len))
    reporter = _Reporter(job, ddp, net, opt, sched, rank, device, heldout, tokenizer, peak)
    reporter.tokens = _tokens_before(p.phases, start)
    offset = 0
    for index, (phase, spec) in enumerate(zip(phases, p.phases, strict=True)):
        end = offset + spec.steps
        if start < end:
            reporter.phase(spec.seq_len, spec.global_batch, p.mlm_probability * spec.seq_len, nsp)

            def next_batch(step: int, micro: int, phase=phase, index=index, offset=offset, spec=spec) -> dict:
                rows = micro_batch_rows(phase, p.seed, index, step - offset, micro, rank)
                return make_batch(phase.train, rows, info, p.mlm_probability, p.whole_word_mask,
                                  seeded(p.seed, step, micro * world + rank), budget(spec.seq_len))

            def before_micro(step: int, micro: int) -> None:
                torch.manual_seed(seeded(p.seed, -2, step, micro * world + rank).initial_seed())

            train_steps(ddp, next_batch, opt, sched, start_step=max(start, offset), end_step=end,
                        accum=phase.accum, max_grad_norm=p.max_grad_norm, device=device,
                        precision=p.precision, hooks=Hooks([reporter.on_step]), before_micro=before_micro,
                        loader_workers=job.runtime.dataloader_workers)
        offset = end
    if start >= job.total_steps:  # nothing left (a finished run rerun): still hand back a final checkpoint
        reporter.evaluate(start)
        reporter.checkpoint(start, final=True)
    if reporter.logger is not None and not reporter.logger.flush(job.runtime.tracking_flush_seconds):
        print(f"MLflow unreachable: {reporter.logger.pending} metric batches not delivered (checkpoints "
              f"are intact; the stage logs its final metrics when the server answers)", flush=True)


def _restore(net, opt, sched) -> int:
    """The step of the checkpoint Ray hands over (restored into net, opt, sched), else 0."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if not checkpoint:
        return 0
    with checkpoint.as_directory() as folder:
        return load_state(Path(folder), net, opt, sched)


def _network(job: PretrainJob, vocab_size: int, nsp: bool, pad_id: int) -> MaskedLMLoss:
    """The model with its loss at the recipe's prediction budget; the encoder compiled if asked."""
    p = job.recipe
    net = MaskedLMLoss(build_model(job.init, p.model.model_dump(), vocab_size, nsp, pad_id, p.seed),
                       prediction_budget(p))
    if job.runtime.compile:
        compile_encoder(net.bert)
    return net


def _tokens_before(phases: list, step: int) -> int:
    """Tokens consumed by the first `step` optimizer steps of the schedule (`phases`: PhaseConfig)."""
    tokens, offset = 0, 0
    for spec in phases:
        tokens += spec.global_batch * spec.seq_len * min(spec.steps, max(0, step - offset))
        offset += spec.steps
    return tokens
