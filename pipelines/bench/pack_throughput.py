"""Benchmark: the pack stage's tokenize+pack against `datasets.map(batched=True)` + concatenate-and-chunk.

Input: the OHSUMED abstracts of the data mirror (7,400 documents, title + one sentence per line,
joined into one single-spaced text per document as the corpus stage writes it), repeated
`--copies` times into one `train-000.jsonl` shard. Tokenizer: MiniLM's uncased BERT WordPiece
(`pubmedlm.text.models.load_tokenizer`, truncation off), seq_len 128 for every method.

Methods, each timed in a fresh Python process (imports and tokenizer loading untimed), from the
same JSONL file on disk to the finished packed sequences:
- `ours`: the stage's `_pack_split` with `pack.nsp=false` (concatenate + chunk, `[CLS] ... [SEP]`
  rows written to the memory-mapped `.bin`), the like-for-like comparison;
- `ours-nsp`: the same with `pack.nsp=true` (punkt sentence split + BERT's NSP pairing), reported
  separately: it does more work than chunking;
- `hf-np1`, `hf-np2`: Hugging Face's `run_mlm.py` recipe, `Dataset.from_dict({"text": ...})`
  `.map(tokenize, batched=True, remove_columns=["text"])` (with `return_special_tokens_mask=True`,
  as `run_mlm.py` does) then `.map(group_texts, batched=True)`, with `num_proc` 1 and 2.

tokens/s counts the corpus's word pieces (the same numerator for every method) over seconds.
Sanity: ours must hold every corpus piece exactly once; datasets.map drops each map batch's
remainder (< 128 pieces per 1,000 documents), so its count is checked against that bound. The NSP
layout truncates segments and re-uses random ones, so its content count is reported, not checked.

    .venv/bin/python pipelines/bench/pack_throughput.py                 # ~4.2M tokens, 3 repeats, ~3-4 min
    .venv/bin/python pipelines/bench/pack_throughput.py --copies 1 --repeats 1

Prints a table (median of the repeats, min-max) and ends with one line:
`SUMMARY pack_throughput: ours X tok/s, datasets.map Y tok/s, ratio Z`
(Y: the faster of num_proc 1 and 2; Z = X / Y).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MIRROR = REPO.parent / "shared" / "data"
OHSUMED = MIRROR / "corpus" / "pubmed_abstracts" / "ohsumed_single_23.tar.gz"
METHODS = ("ours", "ours-nsp", "hf-np1", "hf-np2")
SEQ_LEN = 128


def ohsumed_texts() -> list[str]:
    """One single-spaced text per OHSUMED member (title line + sentence lines)."""
    texts = []
    with tarfile.open(OHSUMED) as tf:
        for member in tf:
            if member.isfile():
                lines = tf.extractfile(member).read().decode("utf-8").splitlines()
                text = " ".join(line.strip() for line in lines if line.strip())
                if text:
                    texts.append(text)
    return texts


def write_corpus(folder: Path, texts: list[str], copies: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "train-000.jsonl", "w", encoding="utf-8") as f:
        for c in range(copies):
            for i, text in enumerate(texts):
                f.write(json.dumps({"id": f"{c}-{i}", "source": "ohsumed", "text": text}) + "\n")
    return folder


def _cpu() -> float:
    """CPU seconds of this process and its finished children (datasets' worker processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def _tokenizer():
    from transformers.utils import logging

    from pubmedlm.text.models import load_tokenizer

    logging.set_verbosity_error()  # the "longer than 512" warning: expected, documents are packed later
    return load_tokenizer("minilm")


def _read_texts(corpus: Path) -> list[str]:
    from pubmedlm.stages.pack import corpus_documents

    return list(corpus_documents(corpus, "train"))


def run_ours(corpus: Path, out: Path, nsp: bool) -> dict:
    import numpy as np
    from rich.progress import Progress

    from pubmedlm.config import load_config
    from pubmedlm.stages.pack import _pack_split

    overrides = [f"pack.seq_lengths=[{SEQ_LEN}]", f"pack.nsp={str(nsp).lower()}", "pack.tokenizer=minilm",
                 "pack.max_sequences=null", "runtime.progress=false"]
    cfg = load_config(REPO / "params.yaml", overrides)
    tok = _tokenizer()
    if nsp:  # resolve and load punkt untimed (the stage does it once per split)
        from pubmedlm.project import project_root
        from pubmedlm.text.sentences import punkt

        punkt(project_root() / cfg.runtime.cache_dir, False)
    start, cpu = time.perf_counter(), _cpu()
    with Progress(disable=True) as bar:
        meta = _pack_split(cfg, tok, corpus, "train", out, bar)[f"len{SEQ_LEN}"]
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    ids = np.fromfile(out / f"len{SEQ_LEN}" / "train" / "input_ids.bin", dtype=meta["dtype"])
    special = np.isin(ids, np.array(tok.all_special_ids))
    return {"seconds": seconds, "cpu": cpu, "sequences": meta["sequences"],
            "content_tokens": int((~special).sum()), "padding_share": meta["padding_share"]}


def run_hf(corpus: Path, num_proc: int) -> dict:
    from itertools import chain

    from datasets import Dataset, disable_progress_bars

    disable_progress_bars()
    tok = _tokenizer()

    def tokenize(examples):
        return tok(examples["text"], return_special_tokens_mask=True)

    def group_texts(examples):  # run_mlm.py's grouping: concatenate, drop the remainder, chunk
        concatenated = {k: list(chain(*examples[k])) for k in examples}
        total = len(concatenated[next(iter(examples))])
        total = (total // SEQ_LEN) * SEQ_LEN
        return {k: [t[i : i + SEQ_LEN] for i in range(0, total, SEQ_LEN)] for k, t in concatenated.items()}

    np_arg = num_proc if num_proc > 1 else None
    start, cpu = time.perf_counter(), _cpu()
    raw = Dataset.from_dict({"text": _read_texts(corpus)})
    tokenized = raw.map(tokenize, batched=True, num_proc=np_arg, remove_columns=["text"])
    grouped = tokenized.map(group_texts, batched=True, num_proc=np_arg)
    seconds, cpu = time.perf_counter() - start, _cpu() - cpu
    import pyarrow.compute as pc

    specials = pc.list_flatten(grouped.data.column("special_tokens_mask"))
    content = len(specials) - pc.sum(specials).as_py()
    return {"seconds": seconds, "cpu": cpu, "sequences": len(grouped), "content_tokens": int(content),
            "padding_share": 0.0}


def worker(method: str, corpus: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="pack-bench-out-") as out:
        if method.startswith("ours"):
            result = run_ours(corpus, Path(out), nsp=method == "ours-nsp")
        else:
            result = run_hf(corpus, int(method.removeprefix("hf-np")))
    print(json.dumps(result))


def measure(method: str, corpus: Path) -> dict:
    env = {**os.environ, "PUBMEDLM_DATA_MIRROR": str(MIRROR), "PUBMEDLM_PROJECT_ROOT": str(REPO),
           "HF_DATASETS_CACHE": str(corpus.parent / "hf-cache")}
    cmd = [sys.executable, __file__, "--worker", method, str(corpus)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode:
        raise SystemExit(f"{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def corpus_pieces(texts: list[str], copies: int) -> int:
    tok = _tokenizer()
    ids = tok(texts, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)
    return copies * sum(len(x) for x in ids["input_ids"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--copies", type=int, default=2, help="times the 7,400 OHSUMED abstracts are repeated")
    ap.add_argument("--repeats", type=int, default=3, help="runs per method (median reported)")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    ap.add_argument("--worker", nargs=2, metavar=("METHOD", "CORPUS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    texts = ohsumed_texts()
    pieces = corpus_pieces(texts, args.copies)
    docs = len(texts) * args.copies
    print(f"{docs} documents ({args.copies} x {len(texts)} OHSUMED abstracts), {pieces} word pieces; "
          f"seq_len {SEQ_LEN}; {args.repeats} repeat(s), methods interleaved; cores {os.cpu_count()}")
    runs: dict[str, list[dict]] = {m: [] for m in args.methods}
    with tempfile.TemporaryDirectory(prefix="pack-bench-") as tmp:
        corpus = write_corpus(Path(tmp) / "corpus", texts, args.copies)
        for _ in range(args.repeats):
            for method in args.methods:  # interleaved, so load from other processes hits all alike
                runs[method].append(measure(method, corpus))
    print(f"{'method':>9} {'seconds':>8} {'(min-max)':>13} {'tok/s':>9} {'CPU s':>6} {'tok/CPU-s':>9} "
          f"{'sequences':>10} {'content tok':>12} {'pad %':>6} {'check':>6}")
    speed = {}
    for method, rs in runs.items():
        secs = sorted(r["seconds"] for r in rs)
        med = statistics.median(secs)
        speed[method] = pieces / med
        content = rs[0]["content_tokens"]
        if method == "ours":
            ok = content == pieces
        elif method.startswith("hf"):
            batches = -(-docs // 1000)  # default map batch_size: each drops < SEQ_LEN pieces (+ its specials)
            ok = pieces - batches * SEQ_LEN < content <= pieces
        else:
            ok = content > 0  # NSP truncates segments and re-uses random ones: no exact count
        cpu = statistics.median(r["cpu"] for r in rs)
        print(f"{method:>9} {med:>8.2f} {secs[0]:>6.2f}-{secs[-1]:<6.2f} {speed[method]:>9.0f} {cpu:>6.2f} "
              f"{pieces / cpu:>9.0f} {rs[0]['sequences']:>10} {content:>12} "
              f"{100 * rs[0]['padding_share']:>6.1f} {'ok' if ok else 'FAIL':>6}")
        if not ok:
            raise SystemExit(f"{method}: {content} content tokens for {pieces} corpus pieces")
    hf = [m for m in speed if m.startswith("hf")]
    if "ours" in speed and hf:
        best = max(hf, key=speed.get)
        print(f"datasets.map figure: its faster setting, {best.replace('hf-np', 'num_proc ')}")
        print(f"SUMMARY pack_throughput: ours {speed['ours']:.0f} tok/s, "
              f"datasets.map {speed[best]:.0f} tok/s, ratio {speed['ours'] / speed[best]:.2f}")


if __name__ == "__main__":
    main()
