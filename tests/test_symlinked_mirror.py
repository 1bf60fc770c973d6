"""A data mirror assembled with symlinks (`cp -rs`) prepares the same BLURB data as a copied one:
NLTK's path rules (which refuse a symlink leading outside its data roots) never see our files."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

PARTS = ("MANIFEST.tsv", "nltk", "blurb/BIOSSES", "blurb/chemprot")  # ChemProt: converted with Punkt


def _assemble(mirror: Path, dest: Path, link: bool) -> Path:
    for part in PARTS:
        src, out = mirror / part, dest / part
        out.parent.mkdir(parents=True, exist_ok=True)
        if link:
            subprocess.run(["cp", "-rs", str(src), str(out)], check=True)
        elif src.is_dir():
            shutil.copytree(src, out)
        else:
            shutil.copy2(src, out)
    return dest


def _blurb_data(root: Path, mirror: Path) -> dict[str, bytes]:
    root.mkdir()
    params = {"corpus": {"inputs": ["corpus/pubmed_xml/pubmed-29768149.xml"]}, "runtime": {"progress": False},
              "blurb_data": {"datasets": ["ChemProt", "BIOSSES"]}, "finetune": {"datasets": ["BIOSSES"]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    env = {**os.environ, "PUBMEDLM_PROJECT_ROOT": str(root), "PUBMEDLM_DATA_MIRROR": str(mirror),
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    proc = subprocess.run([sys.executable, "-m", "pubmedlm.cli", "blurb-data"], cwd=root, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = root / "data" / "blurb_data"
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_symlinked_mirror_prepares_the_same_bytes_as_a_copied_one(tmp_path: Path, mirror: Path) -> None:
    linked = _assemble(mirror, tmp_path / "linked", link=True)
    assert (linked / "nltk" / "tokenizers" / "punkt_tab" / "english" / "collocations.tab").is_symlink()
    copied = _assemble(mirror, tmp_path / "copied", link=False)
    via_links = _blurb_data(tmp_path / "p_linked", linked)
    via_copy = _blurb_data(tmp_path / "p_copied", copied)
    assert "ChemProt/train.jsonl" in via_copy
    assert sorted(via_links) == sorted(via_copy)
    assert [name for name in via_copy if via_links[name] != via_copy[name]] == []
