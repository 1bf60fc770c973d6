"""The four heads, as `transformers` classes, and the checks on a model before any compute.

| task table head | class | loss |
|---|---|---|
| token_classification | `AutoModelForTokenClassification` (linear layer on every piece) | \
cross-entropy on first pieces |
| sequence_classification | `AutoModelForSequenceClassification` on [CLS] | cross-entropy |
| regression | `AutoModelForSequenceClassification`, 1 output, `problem_type=regression` | MSE |
| multi_label | `AutoModelForSequenceClassification`, `problem_type=multi_label_classification` | \
BCE with logits |

RE with `re_pooling: entity_start` (the paper's Table 14 alternative) is the one head no HF class
has: `AutoModel` plus a linear layer on the two entities' first tokens, concatenated (Baldini
Soares et al. 2019). It saves as the HF encoder plus `entity_head.pt`.

`TaskModel` adapts either to the training loop's contract: `forward(**batch)` returns
`{"loss": ...}`; `logits(**batch)` returns the head's outputs.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pubmedlm.blurb import tasks
from pubmedlm.blurb.tasks import Task
from pubmedlm.finetune.features import CodecOptions, FinetuneError, TaskCodec
from pubmedlm.text.models import load_tokenizer, resolve_model
from pubmedlm.train.loop import sdpa_mask

ENTITY_HEAD = "entity_head.pt"
_HEAD_SUFFIXES = ("ForTokenClassification", "ForSequenceClassification")


# A fine-tuned model folder holds, beside its weights, how it encodes inputs: the serving contract.
TASK_FILE = "pubmedlm_task.json"


def write_task_file(folder: Path, task: Task, options: CodecOptions, precision: str) -> None:
    """The task, encoding options and precision a model was trained with. A user task's row is kept
    whole (`task_row`): served elsewhere, the model needs no task file or prepared data to decode."""
    meta = {"task": task.id, "codec": asdict(options), "precision": precision}
    if not tasks.is_blurb(task.id):
        meta["task_row"] = task.as_dict()
    (folder / TASK_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def read_task_file(folder: Path) -> tuple[Task, CodecOptions, str]:
    """The task (BLURB's by id, a user task from its kept row), encoding options and precision."""
    path = Path(folder) / TASK_FILE
    if not path.is_file():
        raise FinetuneError(f"{folder}: not a fine-tuned task model ({TASK_FILE} missing); "
                            "use data/finetune/<task>/model from the finetune stage")
    meta = json.loads(path.read_text())
    task = Task.from_dict(meta["task_row"]) if "task_row" in meta else tasks.get(meta["task"])
    return task, CodecOptions(**meta["codec"]), meta.get("precision", "fp32")


def load_checked_tokenizer(model: str) -> Any:
    """The model's tokenizer, or a clear error when the path holds none."""
    path = resolve_model(model)
    if Path(path).is_dir():
        if not (Path(path) / "config.json").is_file():
            raise FinetuneError(f"model {model}: {path} holds no model (config.json missing)")
        if not any((Path(path) / f).is_file()
                   for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
            raise FinetuneError(f"model {model}: no tokenizer in {path} (tokenizer.json or vocab.txt); "
                                "save the tokenizer beside the model (tokenizer.save_pretrained)")
    elif not Path(path).exists() and (path.startswith((".", "/")) or path.count("/") > 1):
        raise FinetuneError(f"model {model}: no such folder")
    try:
        return load_tokenizer(path)
    except (OSError, ValueError) as e:
        raise FinetuneError(f"model {model}: cannot load its tokenizer: {e}") from None


def check_model(model: str, codec: TaskCodec) -> None:
    """Refuse a fine-tuned checkpoint whose head has another label count than the task's."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(resolve_model(model))
    except (OSError, ValueError) as e:
        raise FinetuneError(f"model {model}: cannot read its config: {e}") from None
    heads = [a for a in (config.architectures or []) if a.endswith(_HEAD_SUFFIXES)]
    if heads and config.num_labels != codec.num_labels:
        raise FinetuneError(
            f"model {model}: its {heads[0]} head has {config.num_labels} labels, {codec.task.id} needs "
            f"{codec.num_labels} ({', '.join(codec.labels) or 'one regression output'}); "
            "start from the encoder instead")


class TaskModel(nn.Module):
    """An HF head model, or an encoder with the entity-start RE head."""

    def __init__(self, hf: nn.Module, codec: TaskCodec, dropout: float, entity_start: bool) -> None:
        super().__init__()
        self.hf = hf
        self.entity_start = entity_start
        if entity_start:
            hidden = hf.config.hidden_size
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(2 * hidden, codec.num_labels)
            nn.init.normal_(self.classifier.weight, std=hf.config.initializer_range)
            nn.init.zeros_(self.classifier.bias)

    def _entity_logits(self, entity_pos: torch.Tensor, **inputs: torch.Tensor) -> torch.Tensor:
        hidden = self.hf(**inputs).last_hidden_state  # [batch, seq, hidden]
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        pair = torch.cat([hidden[rows, entity_pos[:, 0]], hidden[rows, entity_pos[:, 1]]], dim=-1)
        return self.classifier(self.dropout(pair))

    def forward(self, labels: torch.Tensor, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        inputs["attention_mask"] = sdpa_mask(inputs.get("attention_mask"), self.hf.config)
        if self.entity_start:
            logits = self._entity_logits(**inputs)
            return {"loss": nn.functional.cross_entropy(logits.float(), labels)}
        inputs.pop("entity_pos", None)
        return {"loss": self.hf(**inputs, labels=labels).loss}

    def logits(self, **inputs: torch.Tensor) -> torch.Tensor:
        inputs.pop("labels", None)
        inputs["attention_mask"] = sdpa_mask(inputs.get("attention_mask"), self.hf.config)
        if self.entity_start:
            return self._entity_logits(**inputs)
        inputs.pop("entity_pos", None)
        return self.hf(**inputs).logits

    def save(self, folder: Path, tokenizer: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.hf.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        if self.entity_start:
            torch.save({"weight": self.classifier.weight, "bias": self.classifier.bias}, folder / ENTITY_HEAD)
            (folder / "entity_head.json").write_text(json.dumps({
                "pooling": "entity_start", "input": "concat of the two entities' first tokens"}))


def build_model(model: str, codec: TaskCodec, dropout: float,
                attention_dropout: float | None = None) -> TaskModel:
    """The task's head on the encoder `model` (new head weights, seeded by the caller).
    `attention_dropout` None: the same as `dropout`."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # "newly initialized head weights" is expected here, not news
    path = resolve_model(model)
    common: dict[str, Any] = {
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout if attention_dropout is None else attention_dropout}
    entity_start = codec.task.task_type == "re" and codec.options.re_pooling == "entity_start"
    if entity_start:
        hf = AutoModel.from_pretrained(path, add_pooling_layer=False, **common)
    else:
        cls = (AutoModelForTokenClassification if codec.task.head == "token_classification"
               else AutoModelForSequenceClassification)
        labels = codec.labels or ["score"]
        hf = cls.from_pretrained(
            path, num_labels=codec.num_labels, problem_type=codec.problem_type, classifier_dropout=dropout,
            id2label=dict(enumerate(labels)), label2id={lab: i for i, lab in enumerate(labels)}, **common)
    if len(codec.tokenizer) > hf.get_input_embeddings().num_embeddings:
        hf.resize_token_embeddings(len(codec.tokenizer))  # the RE dummy tokens
    return TaskModel(hf, codec, dropout, entity_start)


__all__ = ["ENTITY_HEAD", "TaskModel", "build_model", "check_model", "load_checked_tokenizer"]
