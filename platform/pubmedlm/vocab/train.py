"""Training the in-domain WordPiece vocabulary: corpus text in, a saved BERT tokenizer out.

Owns: streaming the corpus shards' text, the deterministic WordPiece training with `tokenizers`
(BERT normalizer and pre-tokenizer, BERT special tokens) and saving the result as a Hugging Face
tokenizer folder (`vocab.txt`, `tokenizer.json`, `tokenizer_config.json`) that
`transformers.AutoTokenizer.from_pretrained(folder)` loads.

Determinism. `tokenizers`' WordPiece trainer (its BPE trainer underneath: merges chosen by pair
count, ties broken by token id) is not deterministic as released (huggingface/tokenizers#1794,
fix proposed in #2066): it gives the `##c` continuation tokens their ids in hash-map order while
walking the word counts, and those ids break ties between merges of equal count, so two runs
on the same text can keep different tokens. We pin both things the trainer would otherwise
decide in hash order:

* the alphabet is computed here (the `limit_alphabet` most frequent normalized characters, ties
  by code point) and handed over as `initial_alphabet`, so a tie at the cut-off cannot flip;
* every `##c` of that alphabet is registered up front, in code-point order, through the
  trainer's `special_tokens` (the one list it assigns ids from, in order, before any counting).

The trained vocabulary is then rebuilt into a plain BERT tokenizer with only the five real
special tokens, so the `##c` entries are ordinary vocabulary (as in BERT's own vocab.txt).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from pubmedlm.config import VocabConfig
from pubmedlm.corpus.errors import CorpusError
from pubmedlm.corpus.shards import count_documents, iter_texts, shard_paths

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PREFIX = "##"
MODEL_MAX_LENGTH = 512  # BERT's position table; the tokenizer warns beyond it


def bert_normalizer(lowercase: bool) -> normalizers.Normalizer:
    # strip_accents=None follows `lowercase`, exactly as BERT's uncased/cased vocabularies do.
    return normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase
    )


def count_characters(texts: Iterable[str], lowercase: bool) -> Counter[str]:
    """Character frequencies of the normalized text, whitespace excluded: what the trainer sees
    inside words (the pre-tokenizer only removes whitespace; punctuation stays as words)."""
    raw: Counter[str] = Counter()
    for text in texts:
        raw.update(text)  # C-speed; normalizing whole texts first would be ~3x slower
    # BERT normalization works character by character (clean, pad CJK, lowercase, NFD and drop
    # accents), so normalizing each distinct character and carrying its count is equivalent.
    norm = bert_normalizer(lowercase)
    counts: Counter[str] = Counter()
    for ch, n in raw.items():
        for out in norm.normalize_str(ch):
            if not out.isspace():
                counts[out] += n
    return counts


def choose_alphabet(char_counts: Counter[str], limit: int) -> list[str]:
    """The `limit` most frequent characters (ties broken by code point), in code-point order."""
    ranked = sorted(char_counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return sorted(ch for ch, _ in ranked[:limit])


def train_wordpiece(texts: Iterable[str], alphabet: list[str], cfg: VocabConfig,
                    progress: bool = False, length: int | None = None) -> dict[str, int]:
    """Train on `texts` (an iterator is consumed once); returns the vocabulary {token: id} with
    [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4, then the `##c` tokens, the alphabet, the merges."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix=PREFIX))
    tok.normalizer = bert_normalizer(cfg.lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        show_progress=progress,
        # Why the `##c` tokens ride along as "special" tokens: see the module docstring.
        special_tokens=SPECIAL_TOKENS + [PREFIX + c for c in alphabet],
        initial_alphabet=alphabet,
        # Exactly our alphabet: the trainer gives initial characters an infinite count, so it
        # drops precisely the characters we left out.
        limit_alphabet=len(alphabet),
        continuing_subword_prefix=PREFIX,
    )
    tok.train_from_iterator(texts, trainer=trainer, length=length)
    return tok.get_vocab(with_added_tokens=False)


def bert_tokenizer(vocab: dict[str, int], lowercase: bool):
    """Wrap a vocabulary in transformers' BERT tokenizer (fast, `tokenizers`-backed): BERT
    normalizer and pre-tokenizer, WordPiece model and decoder, [CLS] A [SEP] (B [SEP]) template."""
    from transformers import BertTokenizerFast

    return BertTokenizerFast(
        vocab=dict(vocab), do_lower_case=lowercase, strip_accents=None,
        tokenize_chinese_chars=True, model_max_length=MODEL_MAX_LENGTH,
    )


def train_vocab(corpus_dir: Path, cfg: VocabConfig, progress: bool = False):
    """Two streaming passes over the train shards (characters, then WordPiece); returns the
    wrapped tokenizer and training facts (documents, alphabet size, vocabulary size)."""
    paths = shard_paths(corpus_dir, "train")
    n_docs = count_documents(paths)
    if not n_docs:
        raise CorpusError(f"{corpus_dir}: no documents in train-*.jsonl shards (run `pubmedlm corpus` first)")
    chars = count_characters(_progress(iter_texts(paths), progress, n_docs, "alphabet"),
                             cfg.lowercase)
    alphabet = choose_alphabet(chars, cfg.limit_alphabet)
    vocab = train_wordpiece(iter_texts(paths), alphabet, cfg, progress=progress, length=n_docs)
    facts = {
        "train_documents": n_docs,
        "train_shards": len(paths),
        "distinct_characters": len(chars),
        "alphabet_size": len(alphabet),
        "vocab_size": len(vocab),
    }
    return bert_tokenizer(vocab, cfg.lowercase), facts


def save_tokenizer(tokenizer, folder: Path) -> list[str]:
    """Save as a Hugging Face tokenizer folder; returns the file names written."""
    tokenizer.save_pretrained(str(folder))
    vocab_txt = folder / "vocab.txt"
    if not vocab_txt.exists():
        # transformers 5 saves only tokenizer.json; vocab.txt (one token per line, in id order) is
        # what BERT tooling and older transformers read, and what a reviewer diffs.
        ordered = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
        vocab_txt.write_text("".join(f"{t}\n" for t, _ in ordered), encoding="utf-8")
    return sorted(p.name for p in folder.iterdir())


def _progress(items: Iterator[str], progress: bool, total: int, desc: str) -> Iterable[str]:
    from rich.progress import track

    return track(items, total=total, description=desc, disable=not progress, transient=True)
