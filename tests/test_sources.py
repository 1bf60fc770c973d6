"""Sources: declared with URL + sha256, read from the mirror or downloaded, always verified.

Hermetic, on a folder laid out like the mirror in tmp (real bytes: the committed fixtures), a
catalog written here and a real HTTP server on localhost; one integration test checks the
built-in catalog against the real mirror's MANIFEST.tsv and files."""

from __future__ import annotations

import csv
import hashlib
import shutil
from pathlib import Path

import pytest

from conftest import FIXTURES
from pubmedlm.infra.sources import (
    MIRROR_ENV,
    Catalog,
    Source,
    SourceError,
    pin,
    read_catalog,
    resolve,
    sha256_file,
)


def _sha256(path: Path) -> str:
    """Independent of the package's hashing."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder laid out like the data mirror, holding real BLURB rows at a few paths; MIRROR_ENV
    points at it."""
    root = tmp_path / "mirror"
    for rel, fixture in (("blurb/BIOSSES/test.jsonl", "BIOSSES/test.jsonl"),
                         ("blurb/BIOSSES/dev.jsonl", "BIOSSES/dev.jsonl"),
                         ("extra/xml/b.jsonl", "GAD/dev.jsonl"), ("extra/xml/a.jsonl", "GAD/test.jsonl"),
                         ("extra/xml/sub/c.jsonl", "GAD/train.jsonl"),
                         ("extra/xmlother/d.jsonl", "HoC/dev.jsonl")):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / "blurb_data" / fixture, root / rel)
    monkeypatch.setenv(MIRROR_ENV, str(root))
    return root


def test_builtin_catalog_declares_every_manifest_file(mirror: Path, tmp_path: Path, monkeypatch) -> None:
    catalog = read_catalog()
    with open(mirror / "MANIFEST.tsv", encoding="utf-8") as f:
        manifest = {r["path"]: r for r in csv.DictReader(f, delimiter="\t")}
    assert set(catalog) == set(manifest)
    for path, src in catalog.items():
        assert src.sha256 == manifest[path]["sha256"]
        repo, commit = manifest[path]["source_repo"], manifest[path]["source_commit"]
        if src.downloadable:
            # drop notes such as "(removed upstream ...)"
            source_path = manifest[path]["source_path"].split(" (")[0]
            assert src.url == f"https://raw.githubusercontent.com/{repo}/{commit}/{source_path}"
        else:
            assert repo in src.url and commit in src.url
    # and every mirror file verifies against its catalog entry, from the mirror (never the cache)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    for path, src in catalog.items():
        assert resolve(src, tmp_path / "no-cache", progress=False) == mirror / path


def test_mirror_copy_is_verified(fake_mirror: Path, tmp_path: Path) -> None:
    path = fake_mirror / "blurb/BIOSSES/test.jsonl"
    src = Source("blurb/BIOSSES/test.jsonl", "http://127.0.0.1:9/none", _sha256(path))
    assert resolve(src, tmp_path / "cache") == path
    assert not (tmp_path / "cache").exists(), "a verified mirror copy is used in place, not cached"


def test_wrong_sha256_names_file_and_both_hashes(fake_mirror: Path, tmp_path: Path) -> None:
    actual = _sha256(fake_mirror / "blurb/BIOSSES/test.jsonl")
    wrong = Source("blurb/BIOSSES/test.jsonl", "http://127.0.0.1:9/none", "0" * 64)
    with pytest.raises(SourceError) as err:
        resolve(wrong, tmp_path)
    msg = str(err.value)
    assert "blurb/BIOSSES/test.jsonl" in msg and "0" * 64 in msg and actual in msg


def test_offline_without_mirror_says_how_to_set_one(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    src = Source("blurb/x/test.tsv", "http://127.0.0.1:9/none.tsv", "a" * 64)
    with pytest.raises(SourceError, match=f"{MIRROR_ENV}"):
        resolve(src, tmp_path)
    mirror_only = Catalog().get("corpus/pubmed_abstracts/ohsumed_single_23.tar.gz")
    with pytest.raises(SourceError, match=f"can only come from a data mirror.*{MIRROR_ENV} is not set"):
        resolve(mirror_only, tmp_path)


def test_download_verifies_and_caches(http_root, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    www, base = http_root
    (www / "a.txt").write_bytes(b"alpha\n")
    good = Source("extra/a.txt", f"{base}/a.txt", sha256_file(www / "a.txt"))
    cache = tmp_path / "cache"
    assert resolve(good, cache, progress=False).read_bytes() == b"alpha\n"
    (www / "a.txt").unlink()  # now served from the cache
    assert resolve(good, cache, progress=False) == cache / "extra/a.txt"

    (www / "b.txt").write_bytes(b"beta\n")
    bad = Source("extra/b.txt", f"{base}/b.txt", "f" * 64)
    with pytest.raises(SourceError, match=r"checksum mismatch for extra/b\.txt"):
        resolve(bad, cache, progress=False)
    assert not (cache / "extra/b.txt").exists(), "a file that failed verification must not be cached"


def test_pin_records_sha256_and_extra_catalog_is_used(http_root, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    www, base = http_root
    (www / "pubmed26n0001.xml.gz").write_bytes(b"\x1f\x8b fake bytes")
    catalog = tmp_path / "ncbi.sources.tsv"
    added = pin([f"{base}/pubmed26n0001.xml.gz"], "corpus/pubmed_xml/baseline", catalog, tmp_path / "c",
                False)
    assert [s.path for s in added] == ["corpus/pubmed_xml/baseline/pubmed26n0001.xml.gz"]
    merged = Catalog([catalog])
    src = merged.get("corpus/pubmed_xml/baseline/pubmed26n0001.xml.gz")
    assert src.sha256 == sha256_file(www / "pubmed26n0001.xml.gz")
    under = [s.path for s in merged.under("corpus/pubmed_xml/baseline")]
    assert under == ["corpus/pubmed_xml/baseline/pubmed26n0001.xml.gz",
                     "corpus/pubmed_xml/baseline/pubmed26n1334.xml.gz"]


def test_catalog_row_errors_name_the_row(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("path\turl\tsha256\tbytes\nx.txt\thttp://h/x\tnothex\t1\n")
    with pytest.raises(SourceError, match=r"bad.tsv: row 2 \(x.txt\): sha256 is not 64 hex digits"):
        read_catalog(bad)


def test_resolve_inputs_expands_folders_and_takes_local_files(fake_mirror: Path, tmp_path: Path) -> None:
    from pubmedlm.config import SourceSpec
    from pubmedlm.infra.sources import resolve_inputs

    catalog = tmp_path / "extra.sources.tsv"
    declared = ("extra/xml/b.jsonl", "extra/xml/sub/c.jsonl", "extra/xml/a.jsonl", "extra/xmlother/d.jsonl")
    catalog.write_text("path\turl\tsha256\tbytes\n" + "".join(
        f"{p}\thttp://127.0.0.1:9/{p}\t{_sha256(fake_mirror / p)}\t\n" for p in declared))
    own = tmp_path / "mine.txt"
    own.write_text("my corpus\n")
    biosses = fake_mirror / "blurb/BIOSSES/dev.jsonl"
    inline = SourceSpec(path="blurb/BIOSSES/dev.jsonl", url="http://127.0.0.1:9/dev", sha256=_sha256(biosses))
    got = resolve_inputs(["extra/xml/", str(own), inline], Catalog([catalog]), tmp_path / "c", False)
    # a folder: every declared file under it (not a sibling sharing its prefix), in path order
    assert [i.label for i in got] == ["extra/xml/a.jsonl", "extra/xml/b.jsonl", "extra/xml/sub/c.jsonl",
                                      str(own), "blurb/BIOSSES/dev.jsonl"]
    assert [i.path for i in got] == [fake_mirror / "extra/xml/a.jsonl", fake_mirror / "extra/xml/b.jsonl",
                                     fake_mirror / "extra/xml/sub/c.jsonl", own, biosses]
    assert got[3].sha256 == _sha256(own) and got[0].sha256 == _sha256(fake_mirror / "extra/xml/a.jsonl")
    with pytest.raises(SourceError, match="input 'corpus/nothing' is neither declared"):
        resolve_inputs(["corpus/nothing"], Catalog(), tmp_path, False)
