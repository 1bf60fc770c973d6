"""The cost ledger (infra.cost): one entry shape for every stage, summed into what a BLURB score cost,
rendered in the report and tagged on registered models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pubmedlm.config.pretraining import RuntimeConfig
from pubmedlm.infra import cost
from pubmedlm.registry import versions
from pubmedlm.report import leaderboard


def test_entry_counts_every_reserved_device() -> None:
    gpu = cost.entry(RuntimeConfig(gpus_per_worker=1, cpus_per_worker=8), 1800.0, 1000, 1800.0, workers=4)
    assert (gpu["device"], gpu["devices"], gpu["device_seconds"], gpu["device_hours"]) == ("gpu", 4, 7200, 2)
    # trials and seeds: their seconds summed, each on cpus_per_worker cores
    cpu = cost.entry(RuntimeConfig(cpus_per_worker=2), 90.0 + 30.0, None, 100.0)
    assert (cpu["device"], cpu["device_seconds"], cpu["wall_seconds"], cpu["tokens"]) == (
        "cpu", 240, 100, None)
    assert cost.as_metrics(cpu) == {"cost/devices": 2.0, "cost/wall_seconds": 100.0,
                                    "cost/device_seconds": 240.0, "cost/device_hours": round(240 / 3600, 6)}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_pipeline_cost_sums_the_stages_behind_the_score(tmp_path: Path) -> None:
    rt = RuntimeConfig(cpus_per_worker=1)
    _write(tmp_path / "pretrain.json", {"loss": 1.0, "cost": cost.entry(rt, 3600.0, 5_000_000, 3600.0, 2)})
    _write(tmp_path / "tune/GAD.json", {"cost": cost.entry(rt, 720.0, 30_000, 400.0)})
    _write(tmp_path / "finetune/GAD.json", {"cost": cost.entry(rt, 360.0, 20_000, 200.0)})
    _write(tmp_path / "finetune/BIOSSES.json", {"cost": cost.entry(rt, 36.0, 1_000, 40.0)})
    _write(tmp_path / "finetune/HoC.json", {"test_mean": 1.0})  # a stage run before the ledger
    _write(tmp_path / "tune/BC2GM.json", {"status": "unavailable"})  # no data: not in the score
    _write(tmp_path / "finetune/BC2GM.json", {"status": "unavailable"})
    ledger = cost.pipeline_cost(tmp_path, ["GAD", "BIOSSES", "HoC", "BC2GM"])
    assert ledger["pretrain_device_hours"] == 2.0 and ledger["pretrain_tokens"] == 5_000_000
    assert ledger["datasets"]["GAD"] == {"device_hours": pytest.approx(0.3), "tune_device_hours": 0.2,
                                         "finetune_device_hours": 0.1, "tokens": 50_000}
    assert ledger["datasets"]["BIOSSES"]["tune_device_hours"] is None
    assert "HoC" not in ledger["datasets"] and "BC2GM" not in ledger["datasets"]
    assert ledger["finetune_device_hours"] == pytest.approx(0.31)
    assert ledger["total_device_hours"] == pytest.approx(2.31)
    assert sorted(ledger["missing"]) == ["finetune@HoC", "tune@BIOSSES", "tune@HoC"]
    assert ledger["devices"] == ["cpu"]

    rows = leaderboard.cost_rows(ledger)
    assert [r[0] for r in rows] == ["pretraining", "fine-tuning GAD", "fine-tuning BIOSSES", "total"]
    assert rows[1] == ["fine-tuning GAD", "0.2000", "0.1000", "0.3000", "50,000"] and rows[-1][3] == "2.3100"
    page = leaderboard.markdown([], {}, cost=ledger)
    assert "## Cost" in page and "Not recorded: tune@BIOSSES" in page and "| total |  |  | 2.3100 |" in page
    assert '<table id="cost">' in leaderboard.html_page([], {}, cost=ledger)

    assert versions.encoder_cost(ledger) == {
        "cost.blurb_finetune_device_hours": 0.31, "cost.device": "cpu",
        "cost.pretrain_device_hours": 2.0, "cost.tokens_seen": 5_000_000}
    assert versions.task_cost(ledger, "GAD") == {"cost.finetune_device_hours": 0.1,
                                                 "cost.tune_device_hours": 0.2, "cost.tokens_trained": 50_000}


def test_no_ledger_no_cost_section(tmp_path: Path) -> None:
    ledger = cost.pipeline_cost(tmp_path, ["GAD"])
    assert leaderboard.cost_rows(ledger) == [] and "## Cost" not in leaderboard.markdown([], {}, cost=ledger)
    assert "cost.pretrain_device_hours" not in versions.encoder_cost(ledger)
    # an encoder that is not the pipeline's own: its pretraining (if any ran) is not this score's cost
    _write(tmp_path / "pretrain.json", {"cost": cost.host_entry(60.0, 10)})
    other = cost.pipeline_cost(tmp_path, ["GAD"], pretrained=False)
    assert other["missing"] == ["tune@GAD", "finetune@GAD"] and other["pretrain_device_hours"] == 0.0
    assert cost.pipeline_cost(tmp_path, ["GAD"])["pretrain_device_hours"] == round(60 / 3600, 6)
