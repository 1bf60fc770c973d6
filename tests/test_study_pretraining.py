"""Studies whose variants pretrain (issue #14): the shipped `vocab-wwm` and `init` studies run end
to end at tiny scale. A variant that fine-tunes `pretrain` packs and pretrains its own model with its
own params (the in-domain or the general vocab from scratch, whole-word or piece masking, continued
from MiniLM) in a project of its own under `data/study_models/`, named by its pretraining recipe and
shared by every variant and study with that recipe (the random-initialisation control takes its
architecture and vocab); each variant fine-tunes the model its params made,
and a rerun recomputes nothing."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, corpus_and_vocab, ohsumed_docs, prepare_blurb

pytestmark = pytest.mark.integration


def _params() -> dict:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["blurb_data"]["datasets"] = ["NCBI-disease", "BC5-chem", "ChemProt", "BIOSSES"]
    params["finetune"].update(max_train_examples=16, max_eval_examples=16, max_length=64)
    params["pack"].update(seq_lengths=[64], nsp=False)
    params["pretrain"].update(
        model={"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
               "max_position_embeddings": 128, "dropout": 0.0},
        phases=[{"seq_len": 64, "steps": 4, "global_batch": 8}], eval_every=2, eval_batches=1,
        checkpoint_every=4, log_every=1)
    params["runtime"].update(progress=False, num_workers=1, cpus_per_worker=2, micro_batch_size=8)
    return params


def test_vocab_wwm_and_init_pretrain_their_own_models_end_to_end(tmp_path: Path, mirror: Path) -> None:
    from mlflow import MlflowClient
    from transformers import AutoConfig

    from pubmedlm.studies import runner
    from pubmedlm.text.models import load_tokenizer, pack_tokenizer, pretrained_model

    root = tmp_path / "project"
    root.mkdir()
    prepare_blurb(root, mirror, _params())
    corpus_and_vocab(root, ohsumed_docs(mirror, 300), heldout=30)
    shutil.copytree(REPO / "pipelines" / "studies", root / "pipelines" / "studies")  # as shipped
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "COLUMNS": "200"}

    def study(*args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", "study", *args], cwd=root, env=env,
                              capture_output=True, text=True, timeout=1200)
        assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
        return proc.stdout + proc.stderr

    def plans(name: str) -> dict[str, runner.VariantPlan]:
        return {p.variant: p for p in runner.make_plan(*runner.resolve(name, root), root)}

    study("run", "vocab-wwm")
    wwm = plans("vocab-wwm")
    assert len({p.pretrain for p in wwm.values()}) == 4  # four recipes, four models
    in_domain = len(load_tokenizer(root / "data" / "vocab"))
    for variant, plan in wwm.items():
        cfg = plan.config()
        model = pretrained_model(plan.pretrain)
        assert cfg.finetune.model == str(model)
        # the model was pretrained with the variant's masking and vocab, and the variant fine-tuned it
        made = yaml.safe_load((model.parent / "config.yaml").read_text())
        assert made["pretrain"]["whole_word_mask"] == variant.endswith("-wwm")
        size = AutoConfig.from_pretrained(model).vocab_size
        assert size == len(load_tokenizer(pack_tokenizer(cfg.pack.tokenizer, root)))
        assert (size == in_domain) == variant.startswith("pubmed-")
        for dataset in plan.datasets:
            folder = plan.folder / "finetune" / dataset
            assert yaml.safe_load((folder / "config.yaml").read_text())["finetune"]["model"] == str(model)
            assert json.loads((folder / "results.json").read_text())["test"]["n"] == 2
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("study-vocab-wwm").experiment_id
    pretrain_runs = client.search_runs([experiment], "tags.`pubmedlm.stage` = 'pretrain'")
    assert len(pretrain_runs) == 4 and all(r.info.status == "FINISHED" for r in pretrain_runs)

    study("report", "vocab-wwm", "--bootstrap", "0")
    page = (root / "reports/studies/vocab-wwm/vocab-wwm.md").read_text()
    assert "the numbers are not claims" in page and "## The claim" in page

    out = study("run", "init")
    init = plans("init")
    assert init["scratch"].pretrain == wwm["pubmed-wwm"].pretrain  # one recipe, one model for both studies
    assert init["random"].pretrain == init["scratch"].pretrain  # its architecture and vocab, fresh weights
    folder = init["random"].folder / "finetune" / "NCBI-disease"
    assert yaml.safe_load((folder / "config.yaml").read_text())["finetune"]["random_init"] is True
    assert "[init/scratch] pack" not in out and "[init/continual] pack" in out
    assert init["general"].pretrain is None and init["general"].config().finetune.model == "minilm"
    continual = pretrained_model(init["continual"].pretrain)
    assert AutoConfig.from_pretrained(continual).hidden_size == 384  # MiniLM's, continued
    assert len(list((root / "data" / "study_models").iterdir())) == 5
    study("report", "init", "--bootstrap", "0")

    for name, variants in (("vocab-wwm", wwm), ("init", init)):
        again = study("run", name)  # resumed: nothing left, nothing pretrained again
        assert all(f"[{name}/{v}] done earlier: skipped" in again for v in variants), again
        assert " pack -> " not in again
