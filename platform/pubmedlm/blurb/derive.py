"""What the corpus and vocab stages take from BLURB, derived by blurb-data from the prepared datasets.

Owns the rules below; the files they land in are `exports.py`'s. Everything comes from the rows
each split had as read from its published BLURB file (`Prepared.published`), except where the
rows lack the text: a dataset blurb-data did not prepare exports nothing.

* **Test documents** (the corpus stage drops pretraining documents found among them), per dataset
  in the task table's order:
  - with the raw test corpus of a converter at hand (ChemProt, DDI), every raw test document, whole:
    ChemProt abstracts (title and abstract) with their PMID, DDI XML documents (MedLine ones with
    their PMID). The BLURB rows hold only the sentences with a candidate pair;
  - otherwise the published test rows, each row's model input texts joined by spaces: one
    document per abstract where rows carry its PMID in `doc_id` (task table `pmid: doc_id`: EBM
    PICO, HoC), else one per row, with the row id (`pmid: id`, PubMedQA) or its part before the
    first `.` (`pmid: id_prefix`, ChemProt pair ids) as PMID, or none;
  - and an id-only document for each PMID of BLURB's test PMID list (`checks.pmid_list.test`);
  - a dataset whose test documents equal an earlier one's adds none (BC5CDR-chem and -disease
    share their sentences and differ only in labels).
* **NER mentions** (fragmentation of entity mentions): each mention of each NER train split, as
  seqeval finds them (`get_entities`: `B` then `I`s; an `I` after `O` opens one), words joined by spaces.
* **Model inputs** (input lengths): each row's model input texts, for every published split only:
  the table describes BLURB's files, not the splits rebuilt by a converter or carved as a proxy.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from seqeval.metrics.sequence_labeling import get_entities

from pubmedlm.blurb import chemprot, ddi, exports
from pubmedlm.blurb.assemble import Prepared
from pubmedlm.blurb.exports import BlurbTestDocument
from pubmedlm.blurb.normalized import Row


def model_texts(task_type: str, row: Row) -> list[str]:
    """The texts the model reads from one normalized row: NER/PICO the words joined by spaces,
    sentence pairs and QA two texts, otherwise the one text."""
    if task_type in ("ner", "pico"):
        return [" ".join(row["tokens"])]
    if task_type == "similarity":
        return [row["text_a"], row["text_b"]]
    if task_type == "qa":
        return [row["question"], row["context"]]
    return [row["text"]]


def ner_mentions(rows: list[Row]) -> list[str]:
    """Every entity mention of NER rows (occurrences, in order), its words joined by spaces."""
    return [" ".join(row["tokens"][start:end + 1])
            for row in rows for _kind, start, end in get_entities(row["tags"])]


def _raw_documents(p: Prepared) -> list[BlurbTestDocument] | None:
    """A converter's raw test documents, when blurb-data had its raw test files; else None."""
    task = p.task
    paths = [path for path in task.raw.get("test", ()) if not path.endswith("/")]  # a folder: NLTK data
    if not paths or any(path not in p.sources for path in paths):
        return None
    local = [p.sources[path].local for path in paths]
    if task.converter == "chemprot":  # the abstracts file first: title<TAB>abstract, joined by a space here
        return [BlurbTestDocument(task.folder, pmid, text.replace("\t", " "))
                for pmid, text in chemprot.read_abstracts(local[0])]
    listed = ddi.read_split_list(local[1])  # ddi: the corpus tarball, then BLURB's list of test documents
    documents = ddi.read_documents(local[0], listed)
    return [BlurbTestDocument(task.folder, ddi.medline_pmid(path), ddi.document_text(documents[path]))
            for path in listed]


def _row_documents(p: Prepared, rows: list[Row]) -> list[BlurbTestDocument]:
    task = p.task
    if task.pmid == "doc_id":
        by_doc: dict[str, list[str]] = {}
        for row in rows:
            by_doc.setdefault(row["doc_id"], []).append(" ".join(model_texts(task.task_type, row)))
        return [BlurbTestDocument(task.folder, doc, " ".join(texts)) for doc, texts in by_doc.items()]
    pmid = {"id": lambda i: i, "id_prefix": lambda i: i.split(".")[0]}.get(task.pmid or "", lambda _i: None)
    return [BlurbTestDocument(task.folder, pmid(row["id"]), " ".join(model_texts(task.task_type, row)))
            for row in rows]


def _listed_pmids(p: Prepared) -> list[BlurbTestDocument]:
    path = p.task.checks.get("pmid_list", {}).get("test")
    if path not in p.sources:
        return []
    text = p.sources[path].local.read_text(encoding="utf-8")
    pmids = [pmid.strip() for pmid in text.replace("\n", ",").split(",")]
    return [BlurbTestDocument(p.task.folder, pmid, "") for pmid in pmids if pmid]


def test_documents(p: Prepared) -> list[BlurbTestDocument]:
    """One prepared dataset's test documents (the rules in the module docstring)."""
    docs = _raw_documents(p)
    if docs is None:
        docs = _row_documents(p, p.published["test"]) if "test" in p.published else []
    return docs + _listed_pmids(p)


class Exporter:
    """Derives each prepared dataset's exports (`add`, in the task table's order), then writes the
    files that hold all datasets (`close`); model inputs are written as each dataset comes."""

    def __init__(self, blurb_dir: Path) -> None:
        self.blurb_dir = blurb_dir
        self.test_documents: list[BlurbTestDocument] = []
        self.mentions: dict[str, list[str]] = {}
        self._seen: set[str] = set()  # digests of each dataset's test documents

    def add(self, p: Prepared) -> None:
        task = p.task
        for split, rows in p.published.items():
            inputs = ((row["id"], model_texts(task.task_type, row)) for row in rows)
            exports.write_model_inputs(self.blurb_dir, task.folder, split, inputs)
        if task.task_type == "ner" and "train" in p.published:
            self.mentions[task.folder] = ner_mentions(p.published["train"])
        docs = test_documents(p)
        digest = hashlib.sha256("\x1e".join(f"{d.doc_id}\x1f{d.text}" for d in docs).encode()).hexdigest()
        if docs and digest not in self._seen:
            self._seen.add(digest)
            self.test_documents.extend(docs)

    def close(self) -> None:
        exports.write_test_documents(self.blurb_dir, self.test_documents)
        exports.write_ner_mentions(self.blurb_dir, self.mentions)


__all__ = ["Exporter", "model_texts", "ner_mentions", "test_documents"]
