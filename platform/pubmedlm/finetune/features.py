"""From normalized BLURB rows to model inputs and back to predictions, for every task of the task table.

`TaskCodec(task, tokenizer, options)` owns, per head:

| head | input | target | prediction |
|---|---|---|---|
| token_classification (NER, PICO) | the words, `is_split_into_words` | \
scheme tag on each word's first piece, -100 elsewhere | \
argmax at first pieces, converted back to the file's scheme |
| sequence_classification (RE) | `[CLS] text [SEP]` (see below) | class index | argmax -> label |
| sequence_classification (QA) | `[CLS] question [SEP] context [SEP]` | class index | argmax -> label |
| regression (BIOSSES) | `[CLS] text_a [SEP] text_b [SEP]` | the score (float) | the output |
| multi_label (HoC) | `[CLS] sentence [SEP]` | multi-hot over the hallmarks | \
sigmoid > 0.5 -> hallmark indices, OR-ed per abstract by the metric |

**RE input** (`finetune.re_entity`, the paper's Table 14): `dummy` feeds BLURB's masked sentence,
its dummy tokens (`@GENE$`, ...) added to the vocabulary as special tokens; `markers` feeds the
unmasked sentence with `[E1]`..`[/E1]` and `[E2]`..`[/E2]` (special tokens) around the two
mentions; `original` feeds the unmasked sentence as is. The last two need the rows' `entities`
(blurb-data adds them to ChemProt and DDI from the raw corpora; GAD has only the masked text).
`re_pooling: entity_start` takes the first dummy token / start marker / first piece of each mention.

**Truncation** (to the task table's `max_length`, or `finetune.max_length` when lower): single texts
lose their end; QA pairs lose the end of the context, never the question (`only_second`);
BIOSSES pairs trim the longer sentence first (`longest_first`). NER/PICO words past the limit,
and words the tokenizer maps to no piece at all (e.g. a lone zero-width space), get no model
output and are predicted `O`; `truncated_words` counts them.

Predictions are in the form `blurb.predictions` reads and scores (and writes to the prediction
files): tag lists, label strings, floats, sets of hallmark indices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from pubmedlm.blurb.normalized import Row
from pubmedlm.blurb.tasks import Task
from pubmedlm.config import FinetuneConfig
from pubmedlm.errors import UserError
from pubmedlm.finetune import tagging

IGNORE = -100
# entity markers (Baldini Soares et al. 2019), re_entity: markers
MARKERS = ("[E1]", "[/E1]", "[E2]", "[/E2]")


class FinetuneError(UserError, ValueError):
    """Fine-tuning input or settings are unusable; the message names the dataset, file or param."""


_DEFAULTS = FinetuneConfig.model_fields


@dataclass(frozen=True)
class CodecOptions:
    """The modelling choices that change how a task is encoded: the `finetune` params of the same
    names (their defaults too), kept with a fine-tuned model so that serving encodes as training did."""

    tagging: str = _DEFAULTS["tagging"].default
    re_entity: str = _DEFAULTS["re_entity"].default
    re_pooling: str = _DEFAULTS["re_pooling"].default
    max_length: int | None = _DEFAULTS["max_length"].default


def codec_options(f: FinetuneConfig) -> CodecOptions:
    return CodecOptions(tagging=f.tagging, re_entity=f.re_entity, re_pooling=f.re_pooling,
                        max_length=f.max_length)


@dataclass
class Encoded:
    """One split, encoded: model inputs per row and what decoding needs."""

    rows: list[Row]
    inputs: list[dict[str, Any]]
    # token classification: piece index per word, -1 none
    first_pieces: list[list[int]] = field(default_factory=list)
    truncated_words: int = 0

    def __len__(self) -> int:
        return len(self.rows)


class TaskCodec:
    """Encodes rows of one task for its head and decodes model outputs into predictions."""

    def __init__(self, task: Task, tokenizer: Any, options: CodecOptions) -> None:
        self.task, self.tokenizer, self.options = task, tokenizer, options
        self.max_length = min(task.max_length, options.max_length or task.max_length)
        self.entity_ids: list[int] = []
        if task.head == "token_classification":
            self.file_scheme = task.input["tags"]
            self.labels = tagging.scheme_labels(options.tagging, tagging.mention_types(task.labels))
        elif task.head == "regression":
            self.labels = []
        else:
            self.labels = list(task.labels)
        if task.task_type == "re":
            self._prepare_re()
        self.label_index = {label: i for i, label in enumerate(self.labels)}

    @property
    def num_labels(self) -> int:
        return max(1, len(self.labels))

    @property
    def problem_type(self) -> str:
        return {"regression": "regression", "multi_label": "multi_label_classification"}.get(
            self.task.head, "single_label_classification")

    def _prepare_re(self) -> None:
        mode = self.options.re_entity
        # Special tokens: matched before lower-casing and never split (`@GENE$` stays one piece).
        tokens = (list(self.task.input.get("entity_tokens", [])) if mode == "dummy"
                  else list(MARKERS) if mode == "markers" else [])
        if tokens:
            self.tokenizer.add_tokens(tokens, special_tokens=True)
        self.entity_ids = self.tokenizer.convert_tokens_to_ids(tokens) if mode == "dummy" else \
            self.tokenizer.convert_tokens_to_ids([MARKERS[0], MARKERS[2]]) if mode == "markers" else []

    def _re_text(self, row: Row) -> tuple[str, list[tuple[int, int]]]:
        """The RE input text and, for `original`, the character spans of the two mentions in it."""
        mode = self.options.re_entity
        if mode == "dummy":
            return row["text"], []
        if "entities" not in row:
            # BLURB's published RE files hold only the masked sentence; the unmasked one comes from
            # the raw corpus (blurb-data adds it for ChemProt and DDI).
            raise FinetuneError(f"finetune.re_entity={mode!r}: {self.task.id} row {row['id']} has no "
                                "unmasked sentence and mention spans (only ChemProt and DDI, rebuilt "
                                "from their raw corpora, have them); use re_entity: dummy")
        text, spans = row["entities"]["text"], [(s, e) for s, e, _k in row["entities"]["spans"]]
        if mode == "original":
            return text, spans
        # markers: [E1] first mention [/E1] ... [E2] second mention [/E2]; inserted from the end
        # so earlier offsets stay valid (overlapping mentions nest or interleave as they lie).
        inserts = sorted([(spans[0][0], 1, MARKERS[0]), (spans[0][1], 0, MARKERS[1]),
                          (spans[1][0], 1, MARKERS[2]), (spans[1][1], 0, MARKERS[3])], reverse=True)
        for pos, _order, marker in inserts:
            text = f"{text[:pos]} {marker} {text[pos:]}"
        return text, []

    # -- encoding -------------------------------------------------------------------------------
    def encode(self, rows: list[Row]) -> Encoded:
        if self.task.head == "token_classification":
            return self._encode_tokens(rows)
        fields = self.task.input["fields"]
        spans: list[list[tuple[int, int]]] = []
        if self.task.task_type == "re":
            texts, spans = zip(*(self._re_text(r) for r in rows), strict=True) if rows else ((), ())
            enc = self.tokenizer(list(texts), truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=self.options.re_entity == "original")
        elif len(fields) == 1:
            enc = self.tokenizer([r[fields[0]] for r in rows], truncation=True, max_length=self.max_length)
        else:
            strategy = "only_second" if self.task.task_type == "qa" else "longest_first"
            enc = self.tokenizer([r[fields[0]] for r in rows], [r[fields[1]] for r in rows],
                                 truncation=strategy, max_length=self.max_length)
        inputs = []
        for i, row in enumerate(rows):
            item = {k: enc[k][i] for k in ("input_ids", "token_type_ids") if k in enc}
            item["label"] = self._target(row)
            if self.options.re_pooling == "entity_start" and self.task.task_type == "re":
                item["entity_pos"] = (self._span_starts(enc["offset_mapping"][i], spans[i])
                                      if self.options.re_entity == "original"
                                      else self._entity_positions(item["input_ids"]))
            inputs.append(item)
        return Encoded(rows, inputs)

    def _target(self, row: Row) -> Any:
        head = self.task.head
        if head == "regression":
            return float(row["score"])
        if head == "multi_label":
            hot = [0.0] * len(self.labels)
            for label in row["labels"]:
                hot[self.label_index[str(label)]] = 1.0
            return hot
        return self.label_index[row["label"]]

    def _entity_positions(self, ids: Sequence[int]) -> list[int]:
        """The first two entity-token positions (one overlapping `@CHEM-GENE$` serves both; none: [CLS])."""
        found = [i for i, t in enumerate(ids) if t in self.entity_ids][:2]
        return (found + found + [0, 0])[:2] if found else [0, 0]

    @staticmethod
    def _span_starts(offsets: Sequence[tuple[int, int]], spans: Sequence[tuple[int, int]]) -> list[int]:
        """The first piece of each mention (original text); [CLS] for a mention truncated away."""
        out = []
        for start, end in spans:
            hits = [p for p, (a, b) in enumerate(offsets) if b > a and a < end and b > start]
            out.append(hits[0] if hits else 0)
        return out

    def _encode_tokens(self, rows: list[Row]) -> Encoded:
        enc = self.tokenizer([r["tokens"] for r in rows], is_split_into_words=True, truncation=True,
                             max_length=self.max_length)
        inputs, firsts, truncated = [], [], 0
        for i, row in enumerate(rows):
            gold = tagging.convert(row["tags"], self.options.tagging)
            first = [-1] * len(row["tokens"])
            labels = [IGNORE] * len(enc["input_ids"][i])
            for piece, word in enumerate(enc.word_ids(i)):
                if word is not None and first[word] < 0:
                    first[word] = piece
                    labels[piece] = self.label_index[gold[word]]
            truncated += first.count(-1)
            item = {k: enc[k][i] for k in ("input_ids", "token_type_ids") if k in enc}
            item["label"] = labels
            inputs.append(item)
            firsts.append(first)
        return Encoded(rows, inputs, firsts, truncated)

    # -- decoding -------------------------------------------------------------------------------
    def decode(self, encoded: Encoded, outputs: list[np.ndarray]) -> list[Any]:
        """Predictions (metric form) from per-row model outputs (logits, float32 numpy)."""
        head = self.task.head
        if head == "token_classification":
            preds = []
            for first, logits in zip(encoded.first_pieces, outputs, strict=True):
                best = logits.argmax(-1)
                tags = [self.labels[best[p]] if p >= 0 else "O" for p in first]
                preds.append(tagging.convert(tags, self.file_scheme))
            return preds
        if head == "regression":
            return [float(o.reshape(-1)[0]) for o in outputs]
        if head == "multi_label":
            return [frozenset(self.task.label_value(self.labels[j]) for j in np.flatnonzero(o > 0))
                    for o in outputs]
        return [self.labels[int(o.argmax())] for o in outputs]


def collate(items: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Pad a list of encoded rows to the longest one (dynamic padding)."""
    width = max(len(it["input_ids"]) for it in items)
    n = len(items)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    batch: dict[str, torch.Tensor] = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in items[0]:
        batch["token_type_ids"] = torch.zeros((n, width), dtype=torch.long)
    for i, it in enumerate(items):
        k = len(it["input_ids"])
        ids[i, :k] = torch.tensor(it["input_ids"])
        mask[i, :k] = 1
        if "token_type_ids" in batch:
            batch["token_type_ids"][i, :k] = torch.tensor(it["token_type_ids"])
    if "entity_pos" in items[0]:
        batch["entity_pos"] = torch.tensor([it["entity_pos"] for it in items], dtype=torch.long)
    if "label" in items[0]:
        first = items[0]["label"]
        if isinstance(first, list) and isinstance(first[0], int):  # token labels: pad with IGNORE
            labels = torch.full((n, width), IGNORE, dtype=torch.long)
            for i, it in enumerate(items):
                labels[i, : len(it["label"])] = torch.tensor(it["label"])
        elif isinstance(first, (list, float)):
            labels = torch.tensor([it["label"] for it in items], dtype=torch.float32)
        else:
            labels = torch.tensor([it["label"] for it in items], dtype=torch.long)
        batch["labels"] = labels
    return batch


__all__ = ["IGNORE", "CodecOptions", "Encoded", "FinetuneError", "TaskCodec", "collate"]
