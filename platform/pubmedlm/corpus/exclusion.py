"""BLURB test-set exclusion: pretraining must never see a test document.

The BLURB test documents come from the blurb-data stage (`data/blurb_data/exports/`, read by the
corpus stage), which derives them from the datasets it prepared. A corpus document is excluded when
- its PMID is the id of a BLURB test document (HoC, PubMedQA, EBM PICO, ChemProt and DDI
  MedLine test documents carry PMIDs), or
- it shares at least `min_hits` distinct word n-grams (`n` words) with the BLURB test text.
  N-grams are taken over the word runs of `clean.word_runs` (folded, lowercase alphanumeric
  runs), which are the same whether a text comes tokenized (NER `token<TAB>tag` files,
  "IL - 2 ( p < 0.05 )") or as prose ("IL-2 (p<0.05)"); this is what finds test abstracts
  in sources without PMIDs, such as OHSUMED.

Why n = 12 and 2 hits (the defaults), measured on the OHSUMED sample (7,400 abstracts) against
every BLURB test set in the mirror: 12-grams flag exactly the two documents the mirror's README
lists as test overlaps, with 1 or 2 required hits; 10-grams with 1 hit flag 14 documents and
8-grams 284, mostly shared boilerplate ("the aim of this study was to ..."). Two distinct hits
keep a single shared phrase from excluding a document, while a copied test sentence of 13 or
more words already gives two.

N-grams are stored as Python hashes of word tuples (64-bit, in memory: about 0.6 M n-grams for
all BLURB test sets in the mirror, ~50 MB). Hashes are only compared within one process, and a
false match needs `min_hits` independent 64-bit collisions in one document, so the outcome is
deterministic in practice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pubmedlm.corpus.clean import word_runs
from pubmedlm.corpus.errors import CorpusError


class TestDocLike(Protocol):
    """One BLURB test document, as `pubmedlm.blurb.exports.read_test_documents` returns them."""

    dataset: str
    doc_id: str | None
    text: str


@dataclass(frozen=True)
class Match:
    """Why a document is excluded: the BLURB dataset it was found in, and how."""

    dataset: str
    method: str  # "id" or "text"


def ngrams(words: list[str], n: int) -> Iterable[int]:
    return (hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1))


class BlurbExclusion:
    """Index of BLURB test documents; `match()` says whether a corpus document is one of them."""

    def __init__(self, docs: Iterable[TestDocLike], n: int = 12, min_hits: int = 2) -> None:
        self.n, self.min_hits = n, min_hits
        self.datasets: list[str] = []
        index: dict[str, int] = {}
        self.ids: dict[str, int] = {}
        self.grams: dict[int, int] = {}
        self.documents: Counter[str] = Counter()
        for doc in docs:
            k = index.get(doc.dataset)
            if k is None:
                k = index[doc.dataset] = len(self.datasets)
                self.datasets.append(doc.dataset)
            self.documents[doc.dataset] += 1
            if doc.doc_id:
                self.ids.setdefault(doc.doc_id.strip(), k)
            for g in ngrams(word_runs(doc.text), n):
                self.grams.setdefault(g, k)

    def match(self, pmid: str | None, text: str) -> Match | None:
        """The first dataset holding this PMID, else the dataset most of the shared n-grams
        come from (once `min_hits` distinct ones are found), else None."""
        if pmid is not None and pmid in self.ids:
            return Match(self.datasets[self.ids[pmid]], "id")
        hits: dict[int, int] = {}
        grams = self.grams
        for g in ngrams(word_runs(text), self.n):
            k = grams.get(g)
            if k is not None and g not in hits:
                hits[g] = k
                if len(hits) >= self.min_hits:
                    best = Counter(hits.values()).most_common(1)[0][0]
                    return Match(self.datasets[best], "text")
        return None

    def summary(self) -> dict[str, object]:
        """What was indexed (for metrics): documents per dataset, ids, n-grams."""
        return {
            "blurb_test_documents": dict(sorted(self.documents.items())),
            "test_ids": len(self.ids),
            "test_ngrams": len(self.grams),
            "ngram": self.n,
            "min_hits": self.min_hits,
        }


def load_exclusion(docs: Iterable[TestDocLike], n: int, min_hits: int, origin: str) -> BlurbExclusion:
    """Index the BLURB test documents read from `origin` (named in the error); at least one test
    set must be there, or pretraining could silently see test text."""
    index = BlurbExclusion(docs, n, min_hits)
    if not index.documents:
        raise CorpusError(
            f"corpus.exclude_blurb_test is on but {origin} holds no BLURB test document; run "
            "`pubmedlm blurb-data` with the data mirror (PUBMEDLM_DATA_MIRROR) or a source catalog, "
            "or set corpus.exclude_blurb_test=false"
        )
    return index
