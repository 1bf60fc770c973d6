"""Benchmark: the pretrain stage's loop against Hugging Face `Trainer` + whole-word-masking collator.

Both sides train the same BERT config (`BertForMaskedLM`, SDPA attention, dropout 0.1, fp32
weights, bf16 autocast) on the same packed sequences (OHSUMED abstracts packed by our pack stage,
no NSP, 128 tokens, MiniLM's uncased vocab of 30,522), with the same global batch (no
accumulation), AdamW (lr 6e-4, betas 0.9/0.999, eps 1e-6, weight decay 0.01 off biases and
LayerNorm), linear warm-up/decay, clipping at 1.0, 2 torch threads on CPU, no dataloader workers.

- ours: `train_steps` called directly (no Ray) on `MaskedLMLoss(BertForMaskedLM)` with the stage's
  prediction budget (20 target slots a row at 128 tokens); each micro-batch is built by `make_batch`
  (memmap rows + our vectorized whole-word masking) inside the timing, and reseeded per micro-batch
  as the stage does;
- HF: `Trainer` (`bf16=True`, `use_cpu=True` on CPU) with `DataCollatorForLanguageModeling(
  whole_word_mask=True)` over a `datasets.Dataset` holding the same rows as `input_ids`,
  `token_type_ids`, `attention_mask`, `special_tokens_mask` and `offset_mapping` (the offsets the
  tokenizer reports for the text with one space before each word start, so HF's offset rule finds
  the same words as our `##` rule); `BertForMaskedLM` computes vocabulary logits at every position.

Timing: the interval between consecutive step-end callbacks (data, masking, forward, backward,
clipping, optimizer, schedule), first `--warmup` steps of each run dropped, median over the rest.
Runs alternate A-B-B-A over `--rounds` rounds so load from other processes hits both sides alike.
MFU = useful training FLOPs per sequence (`train_flops_per_sequence`: 3 × forward matmul FLOPs of
the encoder incl. attention scores, plus the MLM head on the 15% masked positions only; the same
count for both sides, so HF's full-vocabulary projection is counted as waste) × sequences/s ÷
the bf16 matmul peak measured in this run (`measure_peak_flops`, best of several measurements:
one call is easily halved by other processes, which would inflate MFU). `CPU s` is the process
CPU time per step (all threads): less sensitive than wall time to other processes' load.
On CPU, OpenMP threads wait passively (`--omp-wait-policy`): with the default spinning, one other
busy process on a 2-core machine makes every step 2-5x slower, on both sides.
Both sides use fused AdamW (`optimizer_and_schedule` sets `fused=True`; it is also the Trainer's
default in transformers 5).

    .venv/bin/python pipelines/bench/pretrain_throughput.py                # CPU, small + bert-base, ~5-7 min
    .venv/bin/python pipelines/bench/pretrain_throughput.py --models small --rounds 1
    python pipelines/bench/pretrain_throughput.py --device cuda --models bert-base --rounds 1   # GPU
    python pipelines/bench/pretrain_throughput.py --device cuda --models bert-base --seq-len 512 \
        --batch bert-base=32
    python pipelines/bench/pretrain_throughput.py --device cuda --models bert-base --rounds 1 \
        --batch bert-base=512 --warmup 4 --compile                           # both sides torch.compile'd

Prints a table and ends with one line:
`SUMMARY pretrain_throughput: small x<ratio> (ours A tok/s, HF B tok/s); bert-base x<ratio>; \
MFU bert-base ours P% (HF Q%); peak <T> TFLOP/s`
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pack_throughput import MIRROR, REPO, ohsumed_texts, write_corpus

SEQ_LEN = 128
MLM_PROB = 0.15
SEED = 42
SHAPES = {
    "small": {"hidden_size": 256, "num_layers": 4, "num_heads": 4, "intermediate_size": 1024},
    "bert-base": {"hidden_size": 768, "num_layers": 12, "num_heads": 12, "intermediate_size": 3072},
}
OPT = {"lr": 6e-4, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01, "warmup_ratio": 0.1}
HF_OPTIM: set[str] = set()  # what Trainer chose (transformers 5 with torch >= 2.8: fused AdamW)
CPU_DEFAULTS = {"batch": {"small": 32, "bert-base": 16}, "steps": {"small": 16, "bert-base": 6}}
CUDA_DEFAULTS = {"batch": {"small": 256, "bert-base": 128}, "steps": {"small": 60, "bert-base": 40}}


def pack_rows(tmp: Path, rows: int):
    """Our pack stage (no NSP, 128 tokens, MiniLM tokenizer) on the OHSUMED abstracts, capped at `rows`."""
    from rich.progress import Progress

    from pubmedlm.config import load_config
    from pubmedlm.stages.pack import _pack_split
    from pubmedlm.text.models import load_tokenizer
    from pubmedlm.train.packing import PackedSet

    tok = load_tokenizer("minilm")
    corpus = write_corpus(tmp / "corpus", ohsumed_texts(), 1)
    cfg = load_config(REPO / "params.yaml", [f"pack.seq_lengths=[{SEQ_LEN}]", "pack.nsp=false",
                                             "pack.tokenizer=minilm", f"pack.max_sequences={rows}"])
    with Progress(disable=True) as bar:
        _pack_split(cfg, tok, corpus, "train", tmp / "pack", bar)
    return tok, PackedSet(tmp / "pack" / f"len{SEQ_LEN}" / "train")


def hf_dataset(tok, packed):
    """The packed rows as the columns HF's whole-word-masking collator needs."""
    from datasets import Dataset

    vocab = tok.get_vocab()
    size = max(len(tok), max(vocab.values()) + 1)
    piece_len, cont, special = np.zeros(size, np.int64), np.zeros(size, bool), np.zeros(size, bool)
    for piece, idx in vocab.items():
        piece_len[idx] = len(piece.removeprefix("##"))
        cont[idx] = piece.startswith("##")
    special[tok.all_special_ids] = True
    ids = np.asarray(packed.input_ids, dtype=np.int64)
    sp = special[ids]
    lens = np.where(sp, 0, piece_len[ids])
    gaps = (~sp & ~cont[ids]).astype(np.int64)  # one space before each word start
    ends = np.cumsum(gaps + lens, axis=1)
    starts = ends - lens
    starts[sp], ends[sp] = 0, 0  # special tokens: (0, 0), as the fast tokenizer reports them
    return Dataset.from_dict({
        "input_ids": ids, "token_type_ids": np.zeros_like(ids),
        "attention_mask": (ids != tok.pad_token_id).astype(np.int64),
        "special_tokens_mask": sp.astype(np.int64), "offset_mapping": np.stack([starts, ends], axis=-1),
    })


def new_model(shape: dict, tok, device: torch.device):
    from pubmedlm.train.pretraining import build_model

    full = {**shape, "max_position_embeddings": 512, "dropout": 0.1}
    return build_model("scratch", full, len(tok), False, tok.pad_token_id, SEED).to(device)


def run_ours(shape, tok, packed, batch: int, steps: int, device, compiled: bool) -> list[float]:
    """Step-end times of `steps` optimizer steps of the stage's loop."""
    from pubmedlm.train.loop import Hooks, compile_encoder, train_steps
    from pubmedlm.train.mlm import MaskedLMLoss, PredictionBudget, vocab_info
    from pubmedlm.train.optim import optimizer_and_schedule
    from pubmedlm.train.pretraining import (
        PhaseData,
        make_batch,
        micro_batch_rows,
        seeded,
    )

    budget = PredictionBudget(MLM_PROB)  # the stage's default: ceil(0.15 x 128) = 20 targets a row
    net = MaskedLMLoss(new_model(shape, tok, device), budget)
    if compiled:  # as the stage does with runtime.compile
        compile_encoder(net.bert)
    opt, sched = optimizer_and_schedule(net, **OPT, total_steps=steps)
    info = vocab_info(tok)
    data = PhaseData(packed, packed, batch, batch, 1)

    def next_batch(step: int, micro: int) -> dict:
        rows = micro_batch_rows(data, SEED, 0, step, micro, 0)
        return make_batch(packed, rows, info, MLM_PROB, True, seeded(SEED, step, micro), budget(SEQ_LEN))

    def before_micro(step: int, micro: int) -> None:
        torch.manual_seed(seeded(SEED, -2, step, micro).initial_seed())

    times = [_now()]

    def on_step(step: int, stats: dict) -> None:
        assert torch.get_num_threads() == threads
        times.append(_now())

    threads = torch.get_num_threads()
    hooks = Hooks([on_step])
    train_steps(net, next_batch, opt, sched, start_step=0, end_step=steps, accum=1, max_grad_norm=1.0,
                device=device, precision="bf16", hooks=hooks, before_micro=before_micro)
    return times


def run_hf(shape, tok, dataset, batch: int, steps: int, device, out: Path, compiled: bool) -> list[float]:
    from transformers import DataCollatorForLanguageModeling, Trainer, TrainerCallback, TrainingArguments

    times = [_now()]
    threads = torch.get_num_threads()

    class StepTimes(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            times[0] = _now()

        def on_step_end(self, args, state, control, **kw):
            assert torch.get_num_threads() == threads
            times.append(_now())

    args = TrainingArguments(
        output_dir=str(out), per_device_train_batch_size=batch, gradient_accumulation_steps=1,
        max_steps=steps, learning_rate=OPT["lr"], adam_beta1=OPT["betas"][0], adam_beta2=OPT["betas"][1],
        adam_epsilon=OPT["eps"], weight_decay=OPT["weight_decay"], warmup_steps=OPT["warmup_ratio"],
        lr_scheduler_type="linear", max_grad_norm=1.0, bf16=True, use_cpu=device.type == "cpu",
        dataloader_num_workers=0, report_to=[], logging_steps=10**6, save_strategy="no", eval_strategy="no",
        remove_unused_columns=False, disable_tqdm=True, seed=SEED, torch_compile=compiled,
    )
    collator = DataCollatorForLanguageModeling(tok, mlm=True, whole_word_mask=True, mlm_probability=MLM_PROB)
    trainer = Trainer(model=new_model(shape, tok, device), args=args, train_dataset=dataset,
                      data_collator=collator, callbacks=[StepTimes()])
    trainer.train()
    HF_OPTIM.add(str(getattr(args.optim, "value", args.optim)))
    return times


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def step_seconds(times: list[tuple[float, float]], warmup: int) -> list[tuple[float, float]]:
    """(wall, process CPU) seconds of each step after the warm-up; times[i]: end of step i,
    times[0]: start."""
    return [tuple(d) for d in np.diff(np.array(times[warmup:]), axis=0)]


def peak(device: torch.device, size: int, tries: int = 3) -> list[float]:
    from pubmedlm.train.pretraining import measure_peak_flops

    return [measure_peak_flops(device, size, reps=10) for _ in range(tries)]


def bench_model(name, args, tok, packed, dataset, device, tmp, peaks) -> dict:
    from pubmedlm.train.pretraining import train_flops_per_sequence

    shape, batch, steps = SHAPES[name], args.batch[name], args.steps[name] + args.warmup
    per: dict[str, list[tuple[float, float]]] = {"ours": [], "hf": []}
    order = list(per)
    for r in range(args.rounds):
        for side in (order if r % 2 == 0 else order[::-1]):
            if side == "hf":
                times = run_hf(shape, tok, dataset, batch, steps, device, tmp / f"hf-{name}-{r}",
                               args.compile)
            else:
                times = run_ours(shape, tok, packed, batch, steps, device, args.compile)
            run = step_seconds(times, args.warmup)
            per[side] += run
            print(f"  {name} round {r} {side}: median step {statistics.median(w for w, _ in run):.3f} s "
                  f"wall, {statistics.median(c for _, c in run):.3f} s CPU, load {os.getloadavg()[0]:.1f}",
                  flush=True)
        peaks += peak(device, args.peak_size, 2)
    from transformers import BertConfig

    config = BertConfig(vocab_size=len(tok), hidden_size=shape["hidden_size"],
                        num_hidden_layers=shape["num_layers"], intermediate_size=shape["intermediate_size"])
    flops = train_flops_per_sequence(config, SEQ_LEN, MLM_PROB * SEQ_LEN, False)
    result = {}
    for side, pairs in per.items():
        secs = [w for w, _ in pairs]
        med = statistics.median(secs)
        q = np.percentile(secs, [25, 75])
        result[side] = {"step_s": med, "iqr": (float(q[0]), float(q[1])), "n": len(secs),
                        "seq_s": batch / med, "tok_s": batch * SEQ_LEN / med, "flops_s": flops * batch / med,
                        "cpu_s": statistics.median(c for _, c in pairs)}
    result["batch"], result["flops_per_seq"] = batch, flops
    return result


def parse_pairs(items: list[str], cast) -> dict:
    return {k: cast(v) for k, v in (item.split("=", 1) for item in items)}


def main() -> None:
    global SEQ_LEN
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--models", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    ap.add_argument("--batch", nargs="*", default=[], help="global batch per model, e.g. bert-base=32")
    ap.add_argument("--steps", nargs="*", default=[], help="measured steps per run per model, e.g. small=40")
    ap.add_argument("--warmup", type=int, default=2, help="steps dropped at the start of every run")
    ap.add_argument("--rounds", type=int, default=2, help="A-B(-B-A) rounds per model")
    ap.add_argument("--seq-len", type=int, default=SEQ_LEN, help="packed sequence length (128 or 512)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile both sides (ours: runtime.compile's encoder; HF: "
                         "torch_compile=True); raise --warmup past the compiling steps")
    ap.add_argument("--peak-size", type=int, default=None,
                    help="matmul size for the peak (2048 CPU, 8192 GPU)")
    ap.add_argument("--omp-wait-policy", default="PASSIVE", choices=["PASSIVE", "ACTIVE", "inherit"],
                    help="OpenMP threads wait passively by default: with spinning threads, one other busy "
                         "process on a 2-core machine slows every step 2-5x (both sides alike)")
    args = ap.parse_args()
    SEQ_LEN = args.seq_len  # packing, the prediction budget and the FLOP count read it
    if args.omp_wait_policy != "inherit" and os.environ.get("OMP_WAIT_POLICY") != args.omp_wait_policy:
        # read once, when OpenMP starts: re-exec
        env = {**os.environ, "OMP_WAIT_POLICY": args.omp_wait_policy}
        os.execve(sys.executable, [sys.executable, __file__, *sys.argv[1:]], env)
    device = torch.device(args.device)
    defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    args.batch = {**defaults["batch"], **parse_pairs(args.batch, int)}
    args.steps = {**defaults["steps"], **parse_pairs(args.steps, int)}
    args.peak_size = args.peak_size or (8192 if device.type == "cuda" else 2048)
    os.environ.setdefault("PUBMEDLM_DATA_MIRROR", str(MIRROR))
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    from pubmedlm.train.pretraining import measure_peak_flops

    start, load_before = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="pretrain-bench-") as tmp_name:
        tmp = Path(tmp_name)
        need = max(args.batch[m] * (args.steps[m] + args.warmup) for m in args.models) * args.rounds
        tok, packed = pack_rows(tmp, need)
        dataset = hf_dataset(tok, packed)
        stage_peak = measure_peak_flops(device)  # exactly what the stage measures (2048³, 5 reps)
        peaks = peak(device, args.peak_size)
        results = {m: bench_model(m, args, tok, packed, dataset, device, tmp, peaks) for m in args.models}
    top = max(peaks)
    print(f"device {args.device}, torch threads {torch.get_num_threads()}, seq_len {SEQ_LEN}, "
          f"{len(packed)} packed rows; peak bf16 matmul {args.peak_size}³: best {top / 1e12:.2f} TFLOP/s, "
          f"median {statistics.median(peaks) / 1e12:.2f} ({len(peaks)} measurements); stage's "
          f"measure_peak_flops() once: {stage_peak / 1e12:.2f}; total {time.perf_counter() - start:.0f} s; "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}, load average {load_before:.1f} "
          f"-> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; HF optimizer {', '.join(sorted(HF_OPTIM))}"
          f"; ours torch.optim.AdamW(fused=True) (optimizer_and_schedule); compiled: {args.compile}")
    print(f"{'model':>9} {'side':>10} {'batch':>5} {'steps':>5} {'step s':>7} {'(IQR)':>15} {'seq/s':>7} "
          f"{'tok/s':>8} {'GFLOP/seq':>9} {'MFU %':>6} {'ratio':>6} {'CPU s':>6} {'CPU ratio':>9}")
    for m, r in results.items():
        for side in (s for s in r if isinstance(r[s], dict)):
            x = r[side]
            ratio = x["tok_s"] / r["hf"]["tok_s"]
            print(f"{m:>9} {side:>10} {r['batch']:>5} {x['n']:>5} {x['step_s']:>7.3f} "
                  f"{x['iqr'][0]:>7.3f}-{x['iqr'][1]:<7.3f} {x['seq_s']:>7.2f} {x['tok_s']:>8.0f} "
                  f"{r['flops_per_seq'] / 1e9:>9.2f} {100 * x['flops_s'] / top:>6.1f} {ratio:>6.2f} "
                  f"{x['cpu_s']:>6.2f} {r['hf']['cpu_s'] / x['cpu_s']:>9.2f}")
    parts = []
    for m, r in results.items():
        ratio = r["ours"]["tok_s"] / r["hf"]["tok_s"]
        parts.append(f"{m} x{ratio:.2f}"
                     + (f" (ours {r['ours']['tok_s']:.0f} tok/s, HF {r['hf']['tok_s']:.0f} tok/s)"
                        if m == "small" else ""))
    mfu = ""
    if "bert-base" in results:
        b = results["bert-base"]
        mfu = (f"; MFU bert-base ours {100 * b['ours']['flops_s'] / top:.1f}% "
               f"(HF {100 * b['hf']['flops_s'] / top:.1f}%)")
    print(f"SUMMARY pretrain_throughput: {'; '.join(parts)}{mfu}; peak {top / 1e12:.2f} TFLOP/s")


if __name__ == "__main__":
    main()
