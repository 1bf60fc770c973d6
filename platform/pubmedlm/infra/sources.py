"""External inputs: declared with a URL and a sha256, fetched from a mirror or downloaded, verified.

The built-in catalog (`resources/sources.tsv`) declares every BLURB and corpus file as the raw
file at repository@commit/path; users add catalogs of their own (for instance the NCBI PubMed
baseline and update files, pinned with `pubmedlm sources pin`). `resolve(path)` returns a local,
verified file:

1. when `PUBMEDLM_DATA_MIRROR` names a folder, the same relative path inside it;
2. else the download cache (`runtime.cache_dir`), filled by a streamed download with a
   progress bar, verified before it is moved into place.

A checksum mismatch names the file and both hashes; with no mirror and no network, the error
says how to set a mirror.
"""

from __future__ import annotations

import csv
import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from pubmedlm.errors import UserError

MIRROR_ENV = "PUBMEDLM_DATA_MIRROR"
BUILTIN_CATALOG = "builtin"
_CHUNK = 1 << 20


class SourceError(UserError, RuntimeError):
    """A source could not be found, fetched or verified."""


@dataclass(frozen=True)
class Source:
    """One declared external file."""

    path: str
    url: str
    sha256: str
    bytes: int | None = None
    catalog: str = BUILTIN_CATALOG

    @property
    def downloadable(self) -> bool:
        return self.url.startswith(("http://", "https://", "file://"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def read_catalog(path: Path | str | None = None) -> dict[str, Source]:
    """Parse a catalog TSV (comment lines start with '#'; header: path, url, sha256, bytes)."""
    name = BUILTIN_CATALOG if path is None else str(path)
    if path is None:
        text = resources.files("pubmedlm.resources").joinpath("sources.tsv").read_text(encoding="utf-8")
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise SourceError(f"source catalog not found: {path}") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    out: dict[str, Source] = {}
    for lineno, row in enumerate(csv.DictReader(lines, delimiter="\t"), start=2):
        missing = [k for k in ("path", "url", "sha256") if not row.get(k)]
        if missing:
            raise SourceError(f"{name}: row {lineno} lacks {', '.join(missing)}")
        sha = row["sha256"].strip().lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise SourceError(f"{name}: row {lineno} ({row['path']}): sha256 is not 64 hex digits")
        size = row.get("bytes")
        out[row["path"]] = Source(row["path"], row["url"], sha, int(size) if size else None, name)
    return out


class Catalog:
    """The built-in catalog plus any extra ones; later catalogs may not redefine a path."""

    def __init__(self, extra: Iterable[str | Path] = ()) -> None:
        self.sources = read_catalog()
        for path in extra:
            for key, src in read_catalog(path).items():
                if key in self.sources and self.sources[key].sha256 != src.sha256:
                    raise SourceError(
                        f"{path}: '{key}' is already declared by {self.sources[key].catalog} "
                        "with another sha256"
                    )
                self.sources[key] = src

    def __contains__(self, path: str) -> bool:
        return path in self.sources

    def get(self, path: str) -> Source:
        try:
            return self.sources[path]
        except KeyError:
            raise SourceError(f"'{path}' is not declared in any source catalog") from None

    def under(self, prefix: str) -> list[Source]:
        """Every declared source under a folder prefix, sorted by path."""
        prefix = prefix.rstrip("/") + "/"
        return sorted((s for p, s in self.sources.items() if p.startswith(prefix)), key=lambda s: s.path)


def mirror_root() -> Path | None:
    """The data mirror folder named by PUBMEDLM_DATA_MIRROR (None: unset); one that is not an
    existing folder is an error naming it, never an empty mirror."""
    value = os.environ.get(MIRROR_ENV)
    if not value:
        return None
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise SourceError(f"{MIRROR_ENV}={value}: no such folder"
                          + (f" ({path})" if str(path) != value else "")
                          + "; point it at the data mirror, or unset it to download into the cache")
    return path


def verify(path: Path, expected: str, label: str) -> str:
    actual = sha256_file(path)
    if actual != expected:
        raise SourceError(
            f"checksum mismatch for {label} ({path}): expected sha256 {expected}, got {actual}"
        )
    return actual


def _download(src: Source, dest: Path, progress: bool, check: bool = True) -> None:
    import requests
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, requests.get(src.url, stream=True, timeout=60) as resp:
            resp.raise_for_status()
            total = int(resp.headers.get("content-length") or 0) or src.bytes
            with Progress(
                "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                TransferSpeedColumn(), disable=not progress, transient=True,
            ) as bar:
                task = bar.add_task(f"download {Path(src.path).name}", total=total)
                for chunk in resp.iter_content(_CHUNK):
                    out.write(chunk)
                    bar.advance(task, len(chunk))
        if check:
            verify(tmp, src.sha256, src.path)
        tmp.replace(dest)
    except requests.RequestException as e:
        tmp.unlink(missing_ok=True)
        raise SourceError(
            f"cannot download {src.path} from {src.url}: {e}. Offline? Point {MIRROR_ENV} at a folder "
            f"laid out like the data mirror (e.g. export {MIRROR_ENV}=/path/to/data) and rerun."
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def resolve(src: Source, cache_dir: Path, progress: bool = True) -> Path:
    """A verified local copy of `src`: from the mirror, the cache, or a fresh download."""
    mirror = mirror_root()
    if mirror is not None:
        candidate = mirror / src.path
        if candidate.is_file():
            verify(candidate, src.sha256, src.path)
            return candidate
    cached = cache_dir / src.path
    if cached.is_file():
        verify(cached, src.sha256, src.path)
        return cached
    if not src.downloadable:
        where = f"the mirror {mirror} lacks it" if mirror else f"{MIRROR_ENV} is not set"
        raise SourceError(
            f"{src.path} can only come from a data mirror ({src.url}); {where}. "
            f"Set {MIRROR_ENV} to a folder that holds {src.path}."
        )
    _download(src, cached, progress)
    return cached


def pin(urls: Iterable[str], prefix: str, catalog: Path, cache_dir: Path,
        progress: bool = True) -> list[Source]:
    """Download each URL and record its sha256 in `catalog` as `prefix/<file name>` (trust on first use).

    For NCBI PubMed files, pass the baseline/update URLs; later runs verify against the pinned hash.
    """
    existing = read_catalog(catalog) if catalog.exists() else {}
    added = []
    for url in urls:
        path = f"{prefix.rstrip('/')}/{url.rstrip('/').rsplit('/', 1)[-1]}"
        if path in existing:
            continue
        dest = cache_dir / path
        if not dest.is_file():
            _download(Source(path, url, ""), dest, progress, check=False)
        src = Source(path, url, sha256_file(dest), dest.stat().st_size, str(catalog))
        existing[path] = src
        added.append(src)
    catalog.parent.mkdir(parents=True, exist_ok=True)
    with open(catalog, "w", encoding="utf-8") as f:
        f.write("# Pinned with `pubmedlm sources pin`: sha256 recorded at first download.\n")
        f.write("path\turl\tsha256\tbytes\n")
        for s in sorted(existing.values(), key=lambda s: s.path):
            f.write(f"{s.path}\t{s.url}\t{s.sha256}\t{s.bytes or ''}\n")
    return added


@dataclass(frozen=True)
class Input:
    """One resolved stage input: its label (catalog path, or the path as given), a verified local
    path, and its sha256."""

    label: str
    path: Path
    sha256: str


def _local(entry: str, root: Path | None) -> Path | None:
    for candidate in ((root / entry) if root else None, Path(entry).expanduser()):
        if candidate is not None and candidate.exists():
            return candidate
    return None


def _folder_inputs(folder: Path, label: str) -> list[Input]:
    """Every non-hidden file below a local folder, in sorted order."""
    files = sorted(
        p for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    return [Input(f"{label.rstrip('/')}/{p.relative_to(folder).as_posix()}", p, sha256_file(p))
            for p in files]


def resolve_inputs(
    specs: Iterable[object], catalog: Catalog, cache_dir: Path, progress: bool = True,
    root: Path | None = None
) -> list[Input]:
    """Resolve a stage's `inputs` list, in order. Each entry is, by precedence:

    1. an inline spec with path/url/sha256 (a `config.SourceSpec`);
    2. a path declared in the catalog: mirror or cache or download, sha256-verified;
    3. a catalog folder (`corpus/pmc_oa_xml` or `corpus/pmc_oa_xml/`): every declared file under it;
    4. an existing local file or folder (relative to `root`, else the working directory): the
       user's own data, used as is, its sha256 recorded for lineage; a folder gives every
       non-hidden file below it in sorted order.
    """
    out: list[Input] = []
    for spec in specs:
        if hasattr(spec, "sha256") and hasattr(spec, "url"):
            src = Source(spec.path, spec.url, spec.sha256, None, "inline")
            out.append(Input(src.path, resolve(src, cache_dir, progress), src.sha256))
            continue
        name = str(spec)
        srcs = [catalog.get(name)] if name in catalog else catalog.under(name)
        if srcs:
            out.extend(Input(s.path, resolve(s, cache_dir, progress), s.sha256) for s in srcs)
        elif (local := _local(name, root)) is not None:
            found = (_folder_inputs(local, name) if local.is_dir()
                     else [Input(name, local, sha256_file(local))])
            if not found:
                raise SourceError(f"input folder {name} holds no files")
            out.extend(found)
        else:
            raise SourceError(
                f"input '{name}' is neither declared in a source catalog (see `pubmedlm sources list`) "
                f"nor an existing local file or folder"
            )
    return out
