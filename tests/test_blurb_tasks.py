"""The task table: all 13 BLURB datasets, consistent with docs/BLURB.md, the metrics, the BLURB
score's grouping, the published table, the converters and the source catalog."""

from __future__ import annotations

import pytest

from pubmedlm.blurb import chemprot, ddi, score, tasks
from pubmedlm.blurb.metrics import METRICS
from pubmedlm.blurb.published import published
from pubmedlm.config import BlurbDataConfig, ConfigError, FinetuneConfig, load_config
from pubmedlm.infra.sources import Catalog

# docs/BLURB.md, "The 13 datasets": paper name -> (task type, train, dev, test, metric).
PAPER = {
    "BC5-chem": ("NER", 5_203, 5_347, 5_385, "entity_f1"),
    "BC5-disease": ("NER", 4_182, 4_244, 4_424, "entity_f1"),
    "NCBI-disease": ("NER", 5_134, 787, 960, "entity_f1"),
    "BC2GM": ("NER", 15_197, 3_061, 6_325, "entity_f1"),
    "JNLPBA": ("NER", 46_750, 4_551, 8_662, "entity_f1"),
    "EBM PICO": ("PICO", 339_167, 85_321, 16_364, "pico_token_macro_f1"),
    "ChemProt": ("relation extraction", 18_035, 11_268, 15_745, "micro_f1_excluding"),
    "DDI": ("relation extraction", 25_296, 2_496, 5_716, "micro_f1_excluding"),
    "GAD": ("relation extraction", 4_261, 535, 534, "positive_f1"),
    "BIOSSES": ("sentence similarity", 64, 16, 20, "pearson"),
    "HoC": ("document classification", 1_295, 186, 371, "hoc_abstract_micro_f1"),
    "PubMedQA": ("question answering", 450, 50, 500, "accuracy"),
    "BioASQ": ("question answering", 670, 75, 140, "accuracy"),
}
# docs/BLURB.md, "Max input length": the lengths the paper states.
PAPER_MAX_LENGTH = {"GAD": 128, "ChemProt": 256, "DDI": 256, "PubMedQA": 512, "BioASQ": 512}
# Registry paths the built-in catalog does not declare: kept back (BC2GM, BioASQ) or over 4 MiB.
UNDECLARED = {
    *(f"blurb/{d}/{s}.tsv" for d in ("BC2GM", "BioASQ") for s in ("train", "dev", "test")),
    "blurb/ebmnlp/train.tsv", "blurb/chemprot/train.tsv", "blurb/chemprot/test.tsv", "blurb/DDI/train.tsv",
}


def test_all_13_datasets_in_the_papers_order() -> None:
    table = tasks.all_tasks()
    assert [t.paper_name for t in table.values()] == list(PAPER) == list(score.DATASETS)


def test_config_validates_dataset_lists_against_the_table(tmp_path) -> None:
    ids = list(tasks.all_tasks())
    assert BlurbDataConfig().datasets == FinetuneConfig().datasets == ids
    params = tmp_path / "params.yaml"
    params.write_text("corpus: {inputs: [x]}\nfinetune: {datasets: [GAD, SQuAD]}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(params)
    message = str(err.value)
    assert "finetune.datasets" in message and "unknown BLURB dataset(s) SQuAD" in message
    assert f"known: {', '.join(ids)}" in message
    with pytest.raises(ValueError, match="unknown: SQuAD"):
        FinetuneConfig(seeds={"default": 2, "SQuAD": 3})


def test_params_files_list_the_datasets_once() -> None:
    """blurb_data.datasets holds the list; finetune.datasets (dvc.yaml's `foreach`) is its alias."""
    import yaml

    from conftest import REPO

    def node(doc: yaml.Node, *keys: str) -> yaml.Node:
        for key in keys:
            doc = next(v for k, v in doc.value if k.value == key)
        return doc

    for name in ("params.yaml", "pipelines/profiles/paper.yaml"):
        data = yaml.safe_load((REPO / name).read_text(encoding="utf-8"))
        assert data["blurb_data"]["datasets"] == list(tasks.all_tasks()), name
    # the paper profile fine-tunes what it prepares, from one list (the tiny one a subset: test_config)
    doc = yaml.compose((REPO / "pipelines/profiles/paper.yaml").read_text(encoding="utf-8"))
    assert node(doc, "finetune", "datasets") is node(doc, "blurb_data", "datasets")


@pytest.mark.parametrize("task", tasks.all_tasks().values(), ids=lambda t: t.id)
def test_row_matches_the_paper(task: tasks.Task) -> None:
    type_name, train, dev, test, metric = PAPER[task.paper_name]
    assert task.type_name == type_name == score.TASK_TYPE_OF[task.paper_name]
    assert task.paper_counts == {"train": train, "dev": dev, "test": test}
    assert task.metric == metric and task.metric in METRICS
    assert task.unit == tasks.UNITS[task.task_type]
    assert task.max_length == PAPER_MAX_LENGTH.get(task.paper_name, 512)
    assert set(task.files) == set(tasks.SPLITS)
    assert task.paper_name in published().scores["PubMedBERT"]


def test_the_blurb_scores_grouping_is_the_papers() -> None:
    # docs/BLURB.md: six task types in the paper's order, each with its datasets in table order.
    grouped: dict[str, list[str]] = {}
    for name, (type_name, *_counts) in PAPER.items():
        grouped.setdefault(type_name, []).append(name)
    assert {k: tuple(v) for k, v in grouped.items()} == score.TASK_TYPES
    assert list(score.TASK_TYPES) == ["NER", "PICO", "relation extraction", "sentence similarity",
                                      "document classification", "question answering"]


def test_label_sets_agree_with_the_converters_and_the_docs() -> None:
    t = tasks.all_tasks()
    assert set(t["ChemProt"].labels) == {chemprot.NEGATIVE_LABEL, *chemprot.POSITIVE_LABELS}
    assert t["ChemProt"].metric_args == {"negative": chemprot.NEGATIVE_LABEL}
    assert set(t["DDI"].labels) == {ddi.NEGATIVE_LABEL, *ddi.POSITIVE_LABELS}
    assert t["DDI"].metric_args == {"negative": ddi.NEGATIVE_LABEL}
    assert t["GAD"].labels == ("0", "1") and t["GAD"].metric_args == {"positive": "1"}
    assert t["EBM-PICO"].labels == ("I-INT", "I-OUT", "I-PAR", "O")
    assert all(t[d].labels == ("B", "I", "O")
               for d in ("BC5-chem", "BC5-disease", "NCBI-disease", "BC2GM", "JNLPBA"))
    assert t["HoC"].labels == tuple(str(i) for i in range(10))
    assert t["PubMedQA"].labels == ("yes", "no", "maybe") and t["BioASQ"].labels == ("yes", "no")
    assert t["BIOSSES"].labels == () and t["BIOSSES"].score_range == (0.0, 4.0)


def test_input_templates() -> None:
    t = tasks.all_tasks()
    assert t["ChemProt"].input["entity_tokens"][:2] == ["@CHEMICAL$", "@GENE$"]
    assert "@DRUG$" in t["DDI"].input["entity_tokens"]
    assert t["GAD"].input["entity_tokens"] == ["@GENE$", "@DISEASE$"]
    assert t["BIOSSES"].input == {"layout": "pair", "fields": ["text_a", "text_b"]}
    assert t["PubMedQA"].input["fields"] == t["BioASQ"].input["fields"] == ["question", "context"]
    assert t["NCBI-disease"].input["tags"] == "BIO" and t["EBM-PICO"].input["tags"] == "IO"
    assert t["HoC"].head == "multi_label" and t["BIOSSES"].head == "regression"


def test_documented_deviations() -> None:
    t = tasks.all_tasks()
    assert ({d: task.deviations for d, task in t.items() if task.deviations}.keys()
            == {"BC5-disease", "EBM-PICO"})
    assert (t["BC5-disease"].deviations["dev"].count == 4_246
            and "MTL" in t["BC5-disease"].deviations["dev"].reason)
    assert t["EBM-PICO"].deviations["dev"].count == 87_308


def test_registry_paths_are_the_catalogs_except_what_the_mirror_lacks() -> None:
    catalog = Catalog()
    paths = {p for t in tasks.all_tasks().values() for files in t.files.values() for p in files}
    assert {p for p in paths if p not in catalog} == UNDECLARED
    raw = {p for t in tasks.all_tasks().values() for files in t.raw.values() for p in files}
    assert all(p in catalog or catalog.under(p) for p in raw)
    checks = {p for t in tasks.all_tasks().values() for c in t.checks.values() for p in c.values()}
    assert checks and all(p in catalog for p in checks)


def test_every_name_resolves_and_score_uses_the_registry_aliases() -> None:
    for task in tasks.all_tasks().values():
        for name in (task.id, task.paper_name, task.folder, task.id.upper()):
            assert tasks.get(name) is task
            assert score.canonical(name) == task.paper_name
    assert tasks.name_aliases() == score.ALIASES
    assert score.canonical("EBM-PICO") == "EBM PICO" and score.canonical("ebmnlp") == "EBM PICO"
    with pytest.raises(KeyError, match="unknown BLURB dataset"):
        tasks.get("SQuAD")


def test_meta_form_is_json_ready() -> None:
    import json

    for task in tasks.all_tasks().values():
        form = task.as_dict()
        # what meta.json holds reads back as the same data (no tuples, sets or objects inside)
        assert json.loads(json.dumps(form)) == form, task.id
        assert form["id"] == task.id and form["labels"] == list(task.labels)
