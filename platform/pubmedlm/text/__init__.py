"""Text utilities shared by the corpus, vocab, pack and BLURB code: Hugging Face model and
tokenizer loading by name (`models`) and Punkt sentence splitting (`sentences`)."""
