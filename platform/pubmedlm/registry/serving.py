"""Fine-tuned task models for use outside the pipeline: load, predict, and the MLflow pyfunc.

A fine-tuned model folder (`data/finetune/<task>/model/`) holds the HF model and tokenizer and
`pubmedlm_task.json` (the task id, the encoding options and the precision it was trained with).
`TaskPredictor` loads it and predicts the way fine-tuning scored: the same codec, precision,
batching and decoding, so it reproduces the finetune stage's prediction files.

`BlurbTaskModel` is the MLflow pyfunc the register stage logs for every task. Input is a table
(pandas DataFrame, or what the scoring server turns JSON into):

| task type | columns | one output per row |
|---|---|---|
| NER | `text` (raw text) | entity spans: `{"start", "end", "type", "text"}`, character offsets into `text` |
| NER, PICO | `tokens` (words, as in BLURB's files) instead of `text` | \
one tag per word, in the file's scheme |
| PICO | `text` | PICO spans the same way (`type` PAR / INT / OUT) |
| RE | `text` (BLURB's masked sentence, `@GENE$`...; `entities` too for marker / original models) | \
relation label |
| sentence similarity | `text_a`, `text_b` | similarity score |
| document classification | `text` (a sentence) | the hallmark indices it carries |
| QA | `question`, `context` | `yes` / `no` / `maybe` |

Raw text is split into words the way BLURB's NER files are (`tokenizers`' BERT pre-tokenizer:
whitespace, then each punctuation character a word of its own), then labelled as in training
(the first piece of each word). Typed tags (a user's typed NER task: `B-Chemical`, `I-Chemical`)
give their type (`{"type": "Chemical", "start", "end", "text"}`); untyped mention tags (BLURB NER's
`B`/`I`) give the dataset's name as the span type. A user task's model carries its task row
(`pubmedlm_task.json`), so it serves without the task file or the prepared data.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc

from pubmedlm.finetune import tagging
from pubmedlm.finetune.features import FinetuneError, TaskCodec
from pubmedlm.finetune.heads import read_task_file


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Words with character offsets, split as BLURB's NER files are (BERT pre-tokenization)."""
    from tokenizers.pre_tokenizers import BertPreTokenizer

    return [(w, a, b) for w, (a, b) in BertPreTokenizer().pre_tokenize_str(text)]


def load_task_model(folder: Path, codec: TaskCodec):
    """The saved `TaskModel` (HF head, or encoder + entity-start head) in eval mode on CPU."""
    import torch
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoModelForTokenClassification

    from pubmedlm.finetune.heads import ENTITY_HEAD, TaskModel

    folder = Path(folder)
    if (folder / ENTITY_HEAD).is_file():
        hf = AutoModel.from_pretrained(folder, add_pooling_layer=False)
        model = TaskModel(hf, codec, 0.0, entity_start=True)
        state = torch.load(folder / ENTITY_HEAD, map_location="cpu")
        with torch.no_grad():
            model.classifier.weight.copy_(state["weight"])
            model.classifier.bias.copy_(state["bias"])
    else:
        cls = (AutoModelForTokenClassification if codec.task.head == "token_classification"
               else AutoModelForSequenceClassification)
        model = TaskModel(cls.from_pretrained(folder), codec, 0.0, entity_start=False)
    return model.eval()


def text_spans(text: str, words: list[tuple[str, int, int]], tags: list[str],
               untyped: str) -> list[dict[str, Any]]:
    """Mentions of word-level tags as character spans of `text` (`words`: `split_words(text)`): typed
    tags give their type, untyped ones (`B`/`I`) the type `untyped` (the dataset's name)."""
    spans = []
    for kind, first, last in tagging.spans(tags) if words else []:
        start, end = words[first][1], words[last][2]
        spans.append({"type": kind or untyped, "start": start, "end": end, "text": text[start:end]})
    return spans


class TaskPredictor:
    """A fine-tuned model folder, ready to predict rows (the BLURB normalized form) or raw text."""

    def __init__(self, folder: str | Path, *, eval_batch: int = 64, precision: str | None = None) -> None:
        import torch

        from pubmedlm.config import FinetuneConfig, RuntimeConfig
        from pubmedlm.finetune.fit import Settings
        from pubmedlm.text.models import load_tokenizer

        self.folder = Path(folder)
        self.task, options, trained_precision = read_task_file(self.folder)
        task_id = self.task.id
        tokenizer = load_tokenizer(str(self.folder))
        self.codec = TaskCodec(self.task, tokenizer, options)
        self.model = load_task_model(self.folder, self.codec)
        trained = FinetuneConfig(tagging=options.tagging, re_entity=options.re_entity,
                                 re_pooling=options.re_pooling, max_length=options.max_length,
                                 precision=precision or trained_precision)
        # evaluation batches are twice the micro-batch (`Settings.eval_batch`)
        runtime = RuntimeConfig(device="cpu", micro_batch_size=max(1, eval_batch // 2))
        self.settings = Settings(model=str(self.folder), task=task_id, gold_dir="", finetune=trained,
                                 runtime=runtime)
        self.device = torch.device("cpu")

    def _placeholder_targets(self, row: dict[str, Any]) -> dict[str, Any]:
        """Rows for inference carry no gold; the codec's target slot gets a neutral value."""
        head = self.task.head
        if head == "token_classification":
            return {"tags": ["O"] * len(row["tokens"])}
        if head == "regression":
            return {"score": 0.0}
        if head == "multi_label":
            return {"labels": []}
        return {"label": self.codec.labels[0]}

    def predict_rows(self, rows: list[dict[str, Any]]) -> list[Any]:
        """Predictions (the prediction-file forms) for rows with the task's input fields."""
        from pubmedlm.finetune.fit import TaskData, predict

        if not rows:
            return []
        full = [{"id": str(i), **r, **self._placeholder_targets(r)} for i, r in enumerate(rows)]
        data = TaskData(self.codec, {"rows": self.codec.encode(full)})
        preds = predict(self.model, data, "rows", self.settings, self.device)
        return [sorted(p) if isinstance(p, frozenset) else p for p in preds]

    def predict_text(self, texts: list[str]) -> list[list[dict[str, Any]]]:
        """Entity spans with character offsets for raw texts (NER and PICO models)."""
        if self.task.head != "token_classification":
            raise FinetuneError(f"{self.task.id} is not a tagging task; "
                                f"give rows with {self.task.input['fields']}")
        words = [split_words(t) for t in texts]
        tags = self.predict_rows([{"tokens": [w for w, _, _ in ws] or ["."]} for ws in words])
        return [text_spans(text, ws, row_tags, self.task.paper_name)
                for text, ws, row_tags in zip(texts, words, tags, strict=True)]

    def predict_table(self, records: list[dict[str, Any]]) -> list[Any]:
        """The pyfunc contract: NER/PICO rows carry `text`; other tasks their input fields."""
        if self.task.head == "token_classification":
            if records and records[0].get("tokens") is not None:
                return self.predict_rows([{"tokens": [str(w) for w in r["tokens"]]} for r in records])
            if records and records[0].get("text") is None:
                raise FinetuneError(f"{self.task.id}: input needs a `text` column (raw text) "
                                    "or `tokens` (words)")
            return self.predict_text([str(r["text"]) for r in records])
        fields = list(self.task.input["fields"])
        missing = [f for f in fields if records and f not in records[0]]
        if missing:
            raise FinetuneError(f"{self.task.id}: input needs the columns {fields} (missing {missing})")
        rows = []
        for r in records:
            row = {f: r[f] for f in fields}
            if isinstance(r.get("entities"), str):
                row["entities"] = json.loads(r["entities"])
            elif isinstance(r.get("entities"), dict):
                row["entities"] = r["entities"]
            rows.append(row)
        return self.predict_rows(rows)


# MLflow asks for type hints at class creation; the input is checked in predict_table
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*type hints.*")

    class BlurbTaskModel(mlflow.pyfunc.PythonModel):
        """MLflow pyfunc around `TaskPredictor` (artifact `model`: the fine-tuned model folder)."""

        def load_context(self, context) -> None:
            self.predictor = TaskPredictor(context.artifacts["model"])

        def predict(self, context, model_input, params=None):
            records = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
            return self.predictor.predict_table(records)


def log_task_model(folder: Path, name: str) -> Any:
    """Log a fine-tuned model folder as a pyfunc in the active run; returns MLflow's ModelInfo."""
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    from pubmedlm import __version__

    task, _, _ = read_task_file(folder)
    task_id = task.id
    if task.head == "token_classification":
        # `text` or `tokens`: either may be absent, which a signature cannot say without MLflow
        # silently dropping a misnamed column; `predict_table` checks the input itself.
        columns, signature = ["text | tokens"], None
    else:
        columns = list(task.input["fields"])
        signature = ModelSignature(inputs=Schema([ColSpec("string", c) for c in columns]))
    with warnings.catch_warnings():  # the contract is the signature (or predict_table), not type hints
        warnings.filterwarnings("ignore", message=".*type hints.*")
        return mlflow.pyfunc.log_model(
            name=name, python_model=str(Path(__file__).with_name("pyfunc_model.py")),
            artifacts={"model": str(folder)}, signature=signature,
            pip_requirements=[f"pubmedlm=={__version__}"],
            metadata={"pubmedlm.task": task_id, "pubmedlm.input_columns": columns})


__all__ = ["BlurbTaskModel", "TaskPredictor", "load_task_model", "log_task_model", "split_words",
           "text_spans"]
