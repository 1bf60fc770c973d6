"""BLURB test documents for pretraining exclusion: PMIDs survive without the derived PubMedQA split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from pubmedlm.blurb.readers import blurb_test_documents


def test_pubmedqa_test_pmids_come_from_official_list_without_split_file(mirror: Path, tmp_path: Path) -> None:
    folder = tmp_path / "blurb" / "pubmedqa"
    folder.mkdir(parents=True)
    for name in ("ori_pqal.json", "test_ground_truth.json"):
        shutil.copy(mirror / "blurb/pubmedqa" / name, folder / name)
    docs = [d for d in blurb_test_documents(tmp_path) if d.dataset == "pubmedqa"]
    official = json.loads((mirror / "blurb/pubmedqa/test_ground_truth.json").read_text())
    assert {d.doc_id for d in docs} == set(official) and len(docs) == 500
    assert all(d.text for d in docs)
    with_split = {d.doc_id for d in blurb_test_documents(mirror) if d.dataset == "pubmedqa"}
    assert with_split == set(official)
