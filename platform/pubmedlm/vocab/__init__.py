"""WordPiece vocabulary training and fragmentation analysis against a reference tokenizer."""
