"""Benchmark: the corpus stage's MEDLINE reader against `pubmed_parser.parse_medline_xml`.

Both read the same gzipped `<PubmedArticleSet>` built from the real baseline and update samples
(their `<PubmedArticle>` records repeated to about `--base-mb` MB of XML at 1x, and N times that
at Nx), each run in a fresh Python process so peak RSS (`ru_maxrss`) belongs to that reader
alone. Ours is timed up to the final cleaned text of each document (title + abstract, NFC,
single-spaced), so it does at least the work the stage needs; pubmed_parser extracts its usual
fields (title, abstract, authors, MeSH, dates...), which is what a pipeline built on it pays.

    .venv/bin/python pipelines/bench/corpus_ingest.py              # 1x and 10x, ~1-2 min
    .venv/bin/python pipelines/bench/corpus_ingest.py --repeat 1 3 --base-mb 2

Prints a table (docs/s, MB/s of uncompressed XML, peak RSS MB) and ends with one line:
`SUMMARY corpus_ingest: throughput xA (1x) xB (10x); peak RSS ours 1x->10x: C; pubmed_parser 1x->10x: D`
(A, B: our docs/s over pubmed_parser's; C, D: peak RSS at the largest input over the smallest).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SAMPLES = ("corpus/pubmed_xml/baseline/pubmed26n1334.xml.gz",
           "corpus/pubmed_xml/updatefiles/pubmed26n1335.xml.gz")
HEADER = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2019//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_190101.dtd">\n<PubmedArticleSet>\n'
)
READERS = ("ours", "pubmed_parser")


def _sample_records() -> list[bytes]:
    """Raw `<PubmedArticle>` elements of the real samples (resolved and verified via the catalog)."""
    from pubmedlm.infra.sources import MIRROR_ENV, Catalog, resolve

    repo = Path(__file__).resolve().parents[2]
    os.environ.setdefault(MIRROR_ENV, str(repo.parent / "shared" / "data"))
    catalog = Catalog()
    records: list[bytes] = []
    for name in SAMPLES:
        data = gzip.decompress(resolve(catalog.get(name), repo / ".pubmedlm-cache",
                                       progress=False).read_bytes())
        records += re.findall(rb"<PubmedArticle>.*?</PubmedArticle>", data, re.S)
    return records


def build_input(folder: Path, records: list[bytes], copies: int) -> tuple[Path, int, int]:
    """A gzipped PubmedArticleSet of `copies` x the records: (path, documents, XML bytes)."""
    path = folder / f"medline-x{copies}.xml.gz"
    size = len(HEADER)
    with gzip.open(path, "wb", compresslevel=6) as f:
        f.write(HEADER)
        for _ in range(copies):
            for rec in records:
                f.write(rec + b"\n")
                size += len(rec) + 1
        f.write(b"</PubmedArticleSet>\n")
        size += 20
    return path, copies * len(records), size


def worker(reader: str, path: Path) -> None:
    """Run one reader over `path` in this process; print {docs, seconds, peak_rss_mb} as JSON."""
    docs = 0
    if reader == "ours":
        from pubmedlm.corpus.clean import clean
        from pubmedlm.corpus.pubmed import read_medline
        from pubmedlm.corpus.records import Record

        start = time.perf_counter()
        for item in read_medline(path, path.name):
            if isinstance(item, Record):
                clean(*item.segments)
                docs += 1
    else:
        import pubmed_parser

        start = time.perf_counter()
        for _article in pubmed_parser.parse_medline_xml(str(path)):
            docs += 1
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"docs": docs, "seconds": seconds, "peak_rss_mb": peak_mb}))


def measure(reader: str, path: Path) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--worker", reader, str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, nargs="+", default=[1, 10],
                    help="input multiples to run (default: 1 10)")
    ap.add_argument("--base-mb", type=float, default=10.0, help="uncompressed XML size at 1x, in MB")
    ap.add_argument("--worker", nargs=2, metavar=("READER", "FILE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker[0], Path(args.worker[1]))
        return
    records = _sample_records()
    per_copy = sum(len(r) + 1 for r in records)
    base_copies = max(1, round(args.base_mb * 1e6 / per_copy))
    results: dict[tuple[str, int], dict[str, float]] = {}
    print(f"{len(records)} sample records, {per_copy / 1e6:.2f} MB per copy; 1x = {base_copies} copies")
    print(f"{'input':>6} {'reader':>14} {'docs':>8} {'XML MB':>8} {'docs/s':>9} {'MB/s':>7} "
          f"{'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory(prefix="corpus-ingest-bench-") as tmp:
        for n in args.repeat:
            path, docs, size = build_input(Path(tmp), records, base_copies * n)
            for reader in READERS:
                r = measure(reader, path)
                if r["docs"] != docs:
                    raise SystemExit(f"{reader} read {r['docs']} documents of {docs} at {n}x")
                r["docs_s"], r["mb_s"] = docs / r["seconds"], size / 1e6 / r["seconds"]
                results[(reader, n)] = r
                print(f"{n:>5}x {reader:>14} {docs:>8} {size / 1e6:>8.1f} {r['docs_s']:>9.0f} "
                      f"{r['mb_s']:>7.1f} {r['peak_rss_mb']:>12.1f}")
            path.unlink()
    lo, hi = min(args.repeat), max(args.repeat)
    speed = " ".join(
        f"x{results[('ours', n)]['docs_s'] / results[('pubmed_parser', n)]['docs_s']:.1f} ({n}x)"
        for n in args.repeat
    )
    rss = {rd: results[(rd, hi)]["peak_rss_mb"] / results[(rd, lo)]["peak_rss_mb"] for rd in READERS}
    print(f"SUMMARY corpus_ingest: throughput {speed}; peak RSS ours {lo}x->{hi}x: {rss['ours']:.2f}; "
          f"pubmed_parser {lo}x->{hi}x: {rss['pubmed_parser']:.2f}")


if __name__ == "__main__":
    main()
