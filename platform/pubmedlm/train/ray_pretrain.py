"""Ray Train glue for pretraining: the per-worker function and the TorchTrainer around it.

Each worker builds the model, restores the latest checkpoint if Ray hands one over (a restart
after a failure, or a rerun of the stage under the same run name), wraps the model in DDP, and
runs the shared training loop over its micro-batches. Rank 0 logs to MLflow (Ray Train V2 keeps
no metrics reported without a checkpoint) and writes checkpoints; every rank calls
`ray.train.report` at the same steps, as Ray requires.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch

from pubmedlm.train.loop import Hooks, evaluate, train_steps
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
    save_state,
    seeded,
    train_flops_per_sequence,
)

HF_DIR = "hf"


class _Reporter:
    """Rank-0 logging, evaluation and checkpoint hooks."""

    def __init__(self, cfg: dict, net, unwrapped, opt, sched, rank: int, device, heldout, tokenizer) -> None:
        import ray.train

        self.ray_train = ray.train
        self.cfg, self.net, self.unwrapped, self.opt, self.sched = cfg, net, unwrapped, opt, sched
        self.rank, self.device, self.heldout, self.tokenizer = rank, device, heldout, tokenizer
        self.logger = None
        if rank == 0 and cfg.get("run_id"):
            from pubmedlm.infra.tracking import RunLogger

            self.logger = RunLogger(cfg["run_id"], cfg["tracking_uri"])
        self.tokens = 0
        self.flops_per_seq = 0.0
        self.global_batch = 1
        self.seq_len = 1
        self.peak = cfg.get("peak_flops") or 0.0
        self.last_eval: dict[str, float] = {}

    def phase(self, seq_len: int, global_batch: int, masked_per_seq: float, nsp: bool) -> None:
        self.seq_len, self.global_batch = seq_len, global_batch
        self.flops_per_seq = train_flops_per_sequence(self.unwrapped.model.config, seq_len, masked_per_seq, nsp)

    def on_step(self, step: int, stats: dict[str, float]) -> None:
        p = self.cfg["pretrain"]
        self.tokens += self.global_batch * self.seq_len
        if self.rank == 0 and self.logger and (step % p["log_every"] == 0 or step == self.cfg["total_steps"]):
            rate = self.global_batch / stats["step_time"]
            row = {
                "train/loss": stats["loss"], "train/mlm_loss": stats["mlm_loss"],
                "train/mlm_accuracy": stats["mlm_correct"] / max(1.0, stats["mlm_count"]),
                "train/lr": stats["lr"], "train/grad_norm": stats["grad_norm"],
                "train/tokens_per_s": rate * self.seq_len, "train/sequences_per_s": rate,
                "train/tokens_seen": self.tokens,
            }
            if self.peak:
                row["train/mfu"] = rate * self.flops_per_seq / (self.peak * self.cfg["world"])
            self.logger.log_metrics(row, step)
        if step % p["eval_every"] == 0 or step == self.cfg["total_steps"]:
            self.evaluate(step)
        if step % p["checkpoint_every"] == 0 or step == self.cfg["total_steps"]:
            self.checkpoint(step, final=step == self.cfg["total_steps"])

    def evaluate(self, step: int) -> None:
        if self.rank != 0:
            return
        # The unwrapped module: DDP's forward would start collectives the other ranks never join.
        out = evaluate(self.unwrapped, self.heldout, self.device, self.cfg["pretrain"]["precision"])
        self.last_eval = {"heldout/mlm_loss": out["mlm_loss"], "heldout/mlm_accuracy": out["mlm_correct"] / out["mlm_count"]}
        if "nsp_correct" in out:
            self.last_eval["heldout/nsp_accuracy"] = out["nsp_correct"] / sum(len(b["input_ids"]) for b in self.heldout)
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


def pretrain_worker(cfg: dict[str, Any]) -> None:
    """Runs in every Ray Train worker; `cfg` is plain data built by the stage."""
    import ray.train
    import ray.train.torch

    from pubmedlm.text.models import load_tokenizer

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    p = cfg["pretrain"]
    tokenizer = load_tokenizer(Path(cfg["tokenizer"]))
    info = vocab_info(tokenizer)
    pack = Path(cfg["pack_dir"])
    phases = [PhaseData(PackedSet(pack / f"len{ph['seq_len']}" / "train"), PackedSet(pack / f"len{ph['seq_len']}" / "heldout"),
                        ph["global_batch"], cfg["micro_batch"], world) for ph in p["phases"]]
    nsp = phases[0].train.token_type_ids is not None
    net = MaskedLMLoss(build_model(cfg["init"], p["model"], len(tokenizer), nsp, info.pad_id, p["seed"]))
    opt, sched = optimizer_and_schedule(net, lr=p["peak_lr"], weight_decay=p["weight_decay"], betas=p["adam_betas"],
                                        eps=p["adam_eps"], warmup_ratio=p["warmup_ratio"],
                                        total_steps=cfg["total_steps"])
    start = 0
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            start = load_state(Path(folder), net, opt, sched)
    if not cfg.get("peak_flops") and rank == 0:
        cfg["peak_flops"] = measure_peak_flops(device)
    ddp = ray.train.torch.prepare_model(net)
    unwrapped = net
    last = phases[-1]
    heldout = heldout_batches(last.heldout, info, p["mlm_probability"], p["whole_word_mask"], p["eval_batches"],
                              cfg["micro_batch"], p["seed"])
    reporter = _Reporter(cfg, ddp, unwrapped, opt, sched, rank, device, heldout, tokenizer)
    reporter.tokens = _tokens_before(p["phases"], start)
    offset = 0
    for index, (phase, spec) in enumerate(zip(phases, p["phases"], strict=True)):
        end = offset + spec["steps"]
        if start < end:
            reporter.phase(spec["seq_len"], spec["global_batch"], p["mlm_probability"] * spec["seq_len"], nsp)

            def next_batch(step: int, micro: int, phase=phase, index=index, offset=offset) -> dict:
                rows = micro_batch_rows(phase, p["seed"], index, step - offset, micro, rank)
                chunk = micro * world + rank
                return make_batch(phase.train, rows, info, p["mlm_probability"], p["whole_word_mask"],
                                  seeded(p["seed"], step, chunk))

            def before_micro(step: int, micro: int) -> None:
                torch.manual_seed(seeded(p["seed"], -2, step, micro * world + rank).initial_seed())

            train_steps(ddp, next_batch, opt, sched, start_step=max(start, offset), end_step=end, accum=phase.accum,
                        max_grad_norm=p["max_grad_norm"], device=device, precision=p["precision"],
                        hooks=Hooks([reporter.on_step]), before_micro=before_micro)
        offset = end
    if start >= cfg["total_steps"]:  # nothing left (a finished run rerun): still hand back a final checkpoint
        reporter.evaluate(start)
        reporter.checkpoint(start, final=True)
    if reporter.logger is not None and not reporter.logger.flush(cfg.get("tracking_flush_seconds", 600)):
        print(f"MLflow unreachable: {reporter.logger.pending} metric batches not delivered "
              f"(checkpoints are intact; the stage logs its final metrics when the server answers)", flush=True)


def _tokens_before(phases: list[dict], step: int) -> int:
    """Tokens consumed by the first `step` optimizer steps of the schedule."""
    tokens, offset = 0, 0
    for spec in phases:
        tokens += spec["global_batch"] * spec["seq_len"] * min(spec["steps"], max(0, step - offset))
        offset += spec["steps"]
    return tokens
