"""WordPiece vocabulary training and fragmentation analysis against a reference tokenizer.

`train`: deterministic WordPiece training from the corpus shards, saved as a HF tokenizer folder;
`fragmentation`: pieces per word, NER mention and BLURB input-length comparisons;
`report`: the Markdown report and chart. The stage itself is `pubmedlm.stages.vocab`.
"""
