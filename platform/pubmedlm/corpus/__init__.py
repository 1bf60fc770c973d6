"""Corpus readers (PubMed/MEDLINE XML, PMC JATS, plain text, JSONL, tar of text files), cleaning,
deduplication and BLURB test-set exclusion, used by the `corpus` stage (`pubmedlm.stages.corpus`).

- `stream`: byte streams with transparent gzip and positions for error messages;
- `pubmed`, `pmc`, `text`: readers yielding `records.Record` / `Deletion` / `BadRecord`;
- `inputs`: `corpus.inputs` entries -> verified local files -> the right reader;
- `clean`: NFC + whitespace normalization, word counts, dedup key, n-gram word runs;
- `exclusion`: the BLURB test-set index (by PMID and by shared word n-grams);
- `staging`: disk-backed MEDLINE semantics (latest version wins, deletions);
- `build`: filtering, sharding and the metrics.
"""
