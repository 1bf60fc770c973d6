"""Corpus readers (PubMed/MEDLINE XML, PMC JATS, plain text, JSONL, tar of text files), cleaning,
deduplication and BLURB test-set exclusion."""
