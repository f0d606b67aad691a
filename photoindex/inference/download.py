"""Fetching a model bundle's files (resumable, checksummed, atomic) and verifying a bundle folder.

A file is downloaded into `NAME.part` next to its final place, resumed with an HTTP Range
request after a dropped connection or a killed run, hashed while it is written, fsynced, checked
against its sha256 and only then renamed to `NAME`: a partial or corrupt file never appears under
the final name. Upstream publishes no checksums for some bundles; for those files the digest of
the first good copy is recorded in `SHA256SUMS` in the bundle folder (trust on first use) and
every later copy is checked against it. Standard library only; nothing touches the network at
import time.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import os
import re
import shlex
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from photoindex import __version__
from photoindex.durable import fsync_folder
from photoindex.errors import DownloadError
from photoindex.inference.bundle import MANIFEST_NAME, Bundle, ModelFile
from photoindex.resources import models_dir

SUMS_NAME = "SHA256SUMS"
PART_SUFFIX = ".part"
LOCK_NAME = ".fetch.lock"
USER_AGENT = f"photoindex/{__version__} (Python urllib)"

Progress = Callable[[str, int, int | None], None]
"""Progress callback: (file name, bytes done, total bytes or None when unknown)."""

_CHUNK = 1 << 18  # 256 KiB: small enough for smooth progress on a slow link, large enough to be cheap
_HASH_CHUNK = 1 << 20
_RETRIES = 4  # failed attempts in a row (without any new bytes) before giving up
_BACKOFF = 0.5  # seconds before the first retry, doubled for each further one
_SHA_RE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_CONTENT_RANGE_RE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")
_UNSATISFIED_RANGE_RE = re.compile(r"^bytes\s+\*/(\d+)$")


@dataclass(frozen=True)
class FileCheck:
    """The state of one bundle file: present or not, its digest, and whether it passes its checksum."""

    file: ModelFile
    path: Path
    present: bool
    sha256: str | None  # what was computed; None when absent (or not hashed because its size is wrong)
    expected: str | None  # the manifest's sha256, else the one recorded in SHA256SUMS, else None
    ok: bool  # present and matching (or nothing to match); an optional absent file is ok
    problem: str | None  # one line saying what is wrong, None when ok
    note: str | None = None  # one line of context when ok, e.g. that no upstream checksum exists


class _Dropped(Exception):
    """A transfer ended early (connection closed or reset); the part file holds what arrived."""


# ---------------------------------------------------------------- SHA256SUMS (trust on first use)


def _read_sums(directory: Path) -> dict[str, str]:
    """File name -> sha256 from the bundle's `SHA256SUMS` (sha256sum format); empty when there is none."""
    try:
        text = (directory / SUMS_NAME).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise DownloadError(
            f"{directory / SUMS_NAME}: cannot read the recorded checksums: {exc}",
            "fix its permissions, or delete it to trust the current files again",
        ) from None
    sums: dict[str, str] = {}
    for line in text.splitlines():
        m = _SHA_RE.match(line)
        if m:  # other lines (comments, sha256sum's backslash-escaped names) are not ours
            sums[m.group(2)] = m.group(1).lower()
    return sums


def _record_sum(directory: Path, name: str, digest: str) -> None:
    """Add or replace one line of `SHA256SUMS`, atomically (temp file, fsync, replace, fsync folder)."""
    sums = _read_sums(directory)
    sums[name] = digest
    target = directory / SUMS_NAME
    tmp = directory / (SUMS_NAME + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(f"{d}  {n}\n" for n, d in sorted(sums.items()))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        fsync_folder(directory)
    except OSError as exc:
        raise DownloadError(
            f"{target}: cannot record the sha256 of {name}: {exc}",
            f"make {directory} writable and run the command again",
        ) from None


# ---------------------------------------------------------------- verifying


def _hash_file(path: Path, name: str, progress: Progress | None) -> str:
    """sha256 of a file, read in chunks so a 350 MB model never sits in memory."""
    total = path.stat().st_size
    hasher = hashlib.sha256()
    done = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            hasher.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(name, done, total)
    return hasher.hexdigest()


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, read in chunks (what manifests record)."""
    return _hash_file(path, path.name, None)


def _check_file(
    bundle: Bundle, file: ModelFile, recorded: dict[str, str], progress: Progress | None
) -> FileCheck:
    """Check one file; a present file without any known checksum gets its digest recorded (TOFU)."""
    path = bundle.directory / file.name
    expected = file.sha256 or recorded.get(file.name)
    if not path.is_file():
        if file.optional:
            return FileCheck(file, path, False, None, expected, True, None, "optional, not present")
        return FileCheck(file, path, False, None, expected, False, "missing")
    try:
        size = path.stat().st_size
        if file.size is not None and size != file.size:
            problem = f"size mismatch (expected {file.size} bytes, got {size})"
            return FileCheck(file, path, True, None, expected, False, problem)
        digest = _hash_file(path, file.name, progress)
    except OSError as exc:
        return FileCheck(file, path, True, None, expected, False, f"unreadable: {exc.strerror or exc}")
    if file.sha256 is not None:
        if digest == file.sha256:
            return FileCheck(file, path, True, digest, expected, True, None)
        problem = f"sha256 mismatch (expected {file.sha256}, got {digest})"
        return FileCheck(file, path, True, digest, expected, False, problem)
    if expected is not None:
        if digest == expected:
            note = f"no upstream checksum; matches the sha256 recorded in {SUMS_NAME} on first use"
            return FileCheck(file, path, True, digest, expected, True, None, note)
        problem = f"sha256 mismatch (expected {expected} as recorded in {SUMS_NAME}, got {digest})"
        return FileCheck(file, path, True, digest, expected, False, problem)
    # First sight of a file that has no upstream checksum: this copy becomes the reference.
    try:
        _record_sum(bundle.directory, file.name, digest)
    except DownloadError as exc:  # a read-only bundle folder still verifies; it just cannot remember
        return FileCheck(file, path, True, digest, None, True, None, f"no upstream checksum; {exc.message}")
    recorded[file.name] = digest
    note = f"no upstream checksum; recorded its sha256 in {SUMS_NAME} now (trust on first use)"
    return FileCheck(file, path, True, digest, None, True, None, note)


def verify_bundle(bundle: Bundle, *, progress: Progress | None = None) -> list[FileCheck]:
    """Check every file of the bundle (size, then sha256 in chunks); records first-use digests (TOFU)."""
    recorded = _read_sums(bundle.directory)
    return [_check_file(bundle, f, recorded, progress) for f in bundle.manifest.files]


# ---------------------------------------------------------------- hints


def _bundle_spec(bundle: Bundle) -> str:
    """What to pass to `photoindex models fetch` to name this bundle again."""
    source = bundle.source
    if source.suffix == ".toml":
        try:
            if source.resolve().parent == models_dir().resolve():
                return bundle.manifest.name
        except OSError:
            pass
        return shlex.quote(str(bundle.directory if source.name == MANIFEST_NAME else source))
    return bundle.manifest.name


def missing_files_hint(bundle: Bundle) -> str:
    """One message saying which files to place in which folder, where to get them, and the `--from` way."""
    manifest = bundle.manifest
    needed = bundle.missing() or [f for f in manifest.files if not f.optional]
    names = ", ".join(f.name for f in needed)
    spec = _bundle_spec(bundle)
    with_url = [f for f in needed if f.url]
    without_url = [f for f in needed if not f.url]
    where: list[str] = []
    if with_url:
        where.append("download " + ", ".join(f"{f.name} from {f.url}" for f in with_url))
    if without_url:
        unknown = ", ".join(f.name for f in without_url)
        origin = f"; the model comes from {manifest.homepage}" if manifest.homepage else ""
        where.append(f"photoindex knows no download URL for {unknown}{origin}")
    message = f"place {names} in {bundle.directory} ({'; '.join(where)})"
    if with_url and not without_url:
        message += f", or run `photoindex models fetch {spec}` to download them"
    return (
        message + f"; if you already have the files in a folder or at a URL, run "
        f"`photoindex models fetch {spec} --from DIR_OR_URL`"
    )


# ---------------------------------------------------------------- fetching

# Where one file comes from: an http(s) URL (str) or a local file (Path).
_Location = str | Path


def _local_from_file_url(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise DownloadError(
            f"{url}: file URLs on another host are not supported", "mount it and use its path"
        )
    return Path(urllib.request.url2pathname(parsed.path))


def _resolve_source(source: str) -> str | Path:
    """A `--from` value as a base URL (str) or a local folder (Path)."""
    scheme = urllib.parse.urlparse(source).scheme.lower()
    if scheme in ("http", "https"):
        return source
    folder = _local_from_file_url(source) if scheme == "file" else Path(source).expanduser()
    if folder.is_dir():
        return folder
    if scheme and scheme != "file" and len(scheme) > 1:  # a one-letter scheme is a Windows drive
        raise DownloadError(
            f"{source}: unsupported URL scheme {scheme!r}", "use an http(s) or file URL, or a folder"
        )
    raise DownloadError(f"{source}: no such folder", "give the folder (or URL) that holds the model files")


def _locate(file: ModelFile, origin: str | Path | None) -> _Location | None:
    """Where to fetch one file from, or None when neither the source nor the manifest says."""
    if isinstance(origin, Path):
        return origin / file.name
    if isinstance(origin, str):
        return origin.rstrip("/") + "/" + urllib.parse.quote(file.name)
    if file.url is None:
        return None
    scheme = urllib.parse.urlparse(file.url).scheme.lower()
    if scheme in ("http", "https"):
        return file.url
    if scheme == "file":
        return _local_from_file_url(file.url)
    raise DownloadError(
        f"{file.name}: unsupported URL {file.url!r} in the manifest", "use an http(s) or file URL"
    )


class _Part:
    """The `NAME.part` file and the running sha256 of exactly the bytes it holds."""

    def __init__(self, path: Path, name: str, progress: Progress | None) -> None:
        self.path = path
        self.name = name
        self.hasher = hashlib.sha256()
        self.size = 0
        if path.is_file():  # left by a dropped transfer or a killed run: resume after what it holds
            try:
                with open(path, "rb") as fh:
                    while chunk := fh.read(_HASH_CHUNK):
                        self.hasher.update(chunk)
                        self.size += len(chunk)
            except OSError as exc:
                raise self._error(exc) from None
            if progress is not None and self.size:
                progress(name, self.size, None)

    def _error(self, exc: OSError) -> DownloadError:
        return DownloadError(
            f"{self.path}: cannot write the download: {exc.strerror or exc}",
            f"free some space or make {self.path.parent} writable, then run the command again",
        )

    def restart(self) -> None:
        """Drop what the part holds and start from byte 0."""
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._error(exc) from None
        self.hasher = hashlib.sha256()
        self.size = 0

    def open(self) -> _PartWriter:
        """Append to the part, keeping the digest in step with every byte written."""
        try:
            return _PartWriter(self, open(self.path, "ab"))
        except OSError as exc:
            raise self._error(exc) from None


class _PartWriter:
    """A context manager that appends to a part and fsyncs it on exit, also when the transfer broke."""

    def __init__(self, part: _Part, fh: BinaryIO) -> None:
        self.part = part
        self.fh = fh

    def __enter__(self) -> _PartWriter:
        return self

    def write(self, chunk: bytes) -> None:
        try:
            self.fh.write(chunk)
        except OSError as exc:
            raise self.part._error(exc) from None
        self.part.hasher.update(chunk)
        self.part.size += len(chunk)

    def __exit__(self, *exc: object) -> None:
        # The bytes written so far are what the next attempt resumes after, so they must be on
        # disk and match the running digest even when this attempt failed.
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
        except OSError as err:
            raise self.part._error(err) from None
        finally:
            self.fh.close()


def _copy_local(src: Path, part: _Part, file: ModelFile, progress: Progress | None) -> None:
    """Copy a local file into the part, continuing after what the part already holds."""
    try:
        total = src.stat().st_size
    except FileNotFoundError:
        raise DownloadError(
            f"{src}: not found", f"the folder given with --from must hold {file.name}"
        ) from None
    except OSError as exc:
        raise DownloadError(f"{src}: cannot read it: {exc.strerror or exc}") from None
    if part.size > total:
        part.restart()
    try:
        with open(src, "rb") as inp, part.open() as out:
            inp.seek(part.size)
            while chunk := inp.read(_CHUNK):
                out.write(chunk)
                if progress is not None:
                    progress(file.name, part.size, total)
    except OSError as exc:
        raise DownloadError(f"{src}: cannot read it: {exc.strerror or exc}") from None


def _content_range_start(value: str | None) -> int | None:
    m = _CONTENT_RANGE_RE.match(value or "")
    return int(m.group(1)) if m else None


def _http_attempt(url: str, part: _Part, file: ModelFile, progress: Progress | None, timeout: float) -> None:
    """One request: append the rest of the file to the part; raise _Dropped when it ends early."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and part.size:
            exc.close()
            # Nothing left after the part: it is either complete or longer than the file.
            m = _UNSATISFIED_RANGE_RE.match(exc.headers.get("Content-Range", ""))
            if m is None or int(m.group(1)) != part.size:
                part.restart()
                raise _Dropped("the server refused to resume; starting again from the beginning") from None
            return
        raise
    with response:
        if part.size:
            if response.status == 200:
                part.restart()  # the server ignored the Range header and sends everything again
            elif (
                response.status != 206
                or _content_range_start(response.headers.get("Content-Range")) != part.size
            ):
                part.restart()
                raise _Dropped(f"the server answered the resume request with an unusable {response.status}")
        length_header = response.headers.get("Content-Length")
        length = int(length_header) if length_header and length_header.isdigit() else None
        start = part.size
        total = start + length if length is not None else file.size
        with part.open() as out:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                if progress is not None:
                    progress(file.name, part.size, total)
        # urllib returns b"" (no error) when the peer closes before Content-Length bytes arrived.
        if length is not None and part.size - start < length:
            raise _Dropped(f"the connection closed after {part.size} of {start + length} bytes")


def _download_http(url: str, part: _Part, file: ModelFile, progress: Progress | None, timeout: float) -> None:
    """Fetch a URL into the part, resuming after dropped connections with a small backoff."""
    failures = 0
    while True:
        if file.size is not None and part.size > file.size:
            part.restart()
        if file.size is not None and part.size == file.size and part.size:
            return  # the part already holds the whole file; the checksum decides whether it is good
        before = part.size
        try:
            _http_attempt(url, part, file, progress, timeout)
            return
        except urllib.error.HTTPError as exc:
            if exc.code not in (408, 429) and exc.code < 500:
                raise DownloadError(
                    f"{file.name}: {url} answered HTTP {exc.code} {exc.reason}",
                    "check the URL (or the folder/URL given with --from) and run the command again",
                ) from None
            reason = f"HTTP {exc.code} {exc.reason}"
        except (_Dropped, OSError, http.client.HTTPException) as exc:
            # OSError covers URLError, timeouts and resets; HTTPException covers IncompleteRead of a
            # chunked body and a connection closed before the status line.
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            if isinstance(getattr(exc, "reason", None), socket.gaierror) or isinstance(exc, socket.gaierror):
                # No name resolution means no network (or a wrong host): retrying only makes the user wait.
                raise DownloadError(
                    f"{file.name}: cannot reach {urllib.parse.urlsplit(url).netloc}: {reason}",
                    "this machine seems to have no internet access",
                ) from None
        failures = 1 if part.size > before else failures + 1
        if failures > _RETRIES:
            raise DownloadError(
                f"{file.name}: downloading {url} failed {failures} times in a row: {reason}",
                f"check the network and run the same command again: it resumes from {part.path.name}",
            )
        time.sleep(_BACKOFF * 2 ** (failures - 1))


def _fetch_file(
    bundle: Bundle,
    file: ModelFile,
    location: _Location,
    recorded: dict[str, str],
    progress: Progress | None,
    timeout: float,
) -> FileCheck:
    """Fetch one file into `NAME.part`, check it, and move it into place; returns its check."""
    final = bundle.directory / file.name
    part = _Part(final.with_name(file.name + PART_SUFFIX), file.name, progress)
    expected = file.sha256 or recorded.get(file.name)
    resumed = part.size > 0
    while True:
        if isinstance(location, Path):
            _copy_local(location, part, file, progress)
        else:
            _download_http(location, part, file, progress, timeout)
        digest = part.hasher.hexdigest()
        good_size = file.size is None or part.size == file.size
        if resumed and (not good_size or (expected is not None and digest != expected)):
            # The part came from an earlier run and may hold another version's bytes: one fresh try.
            resumed = False
            part.restart()
            continue
        break
    if file.size is not None and part.size != file.size:
        part.restart()
        raise DownloadError(
            f"{file.name}: {location} gave {part.size} bytes, the manifest says {file.size}",
            "run the command again; if it keeps failing, the source holds a different file",
        )
    if expected is not None and digest != expected:
        part.restart()  # a corrupt part must not be resumed: the next attempt starts from byte 0
        if file.sha256 is not None:
            hint = (
                "the transfer was corrupted or the source holds a different file: run the command again, "
                f"and if it fails again get {file.name} by hand ({missing_files_hint(bundle)})"
            )
        else:
            hint = (
                f"the source no longer matches the copy first recorded in {bundle.directory / SUMS_NAME}; "
                f"if you trust the new file, delete the line for {file.name} there and run the command again"
            )
        raise DownloadError(
            f"{file.name}: sha256 mismatch from {location} (expected {expected}, got {digest})", hint
        )
    try:
        os.replace(part.path, final)
    except OSError as exc:
        raise DownloadError(f"{final}: cannot move the download into place: {exc.strerror or exc}") from None
    fsync_folder(bundle.directory)
    if expected is None:
        _record_sum(bundle.directory, file.name, digest)
        recorded[file.name] = digest
        note = f"no upstream checksum; recorded its sha256 in {SUMS_NAME} (trust on first use)"
        return FileCheck(file, final, True, digest, None, True, None, note)
    if file.sha256 is None:
        note = f"no upstream checksum; matches the sha256 recorded in {SUMS_NAME}"
        return FileCheck(file, final, True, digest, expected, True, None, note)
    return FileCheck(file, final, True, digest, expected, True, None)


def fetch_bundle(
    bundle: Bundle,
    source: str | None = None,
    *,
    progress: Progress | None = None,
    timeout: float = 30.0,
    include_optional: bool = False,
) -> list[FileCheck]:
    """Download or copy the bundle's missing or bad files into its folder and return every file's check.

    `source` None uses each file's manifest URL; an http(s)/file URL is a base that file names
    are appended to; a folder is copied from. Present files that pass their checksum are kept.
    """
    origin = _resolve_source(source) if source is not None else None
    try:
        bundle.directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(
            f"{bundle.directory}: cannot create the bundle folder: {exc.strerror or exc}"
        ) from None
    with _fetch_lock(bundle.directory):
        return _fetch_locked(bundle, origin, progress, timeout, include_optional)


@contextlib.contextmanager
def _fetch_lock(directory: Path) -> Iterator[None]:
    """Hold `.fetch.lock` in the bundle folder so two fetches never append to the same part file."""
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise DownloadError(
            f"{path}: cannot open the fetch lock: {exc.strerror or exc}", f"make {directory} writable"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DownloadError(
                f"{directory}: another `photoindex models fetch` is filling this bundle folder",
                "wait for it to finish, then run the command again",
            ) from None
        yield  # the lock file stays: removing it would race with a fetch that just opened it
    finally:
        os.close(fd)


def _fetch_locked(
    bundle: Bundle,
    origin: str | Path | None,
    progress: Progress | None,
    timeout: float,
    include_optional: bool,
) -> list[FileCheck]:
    recorded = _read_sums(bundle.directory)
    checks = [_check_file(bundle, f, recorded, progress) for f in bundle.manifest.files]
    todo = [c for c in checks if (not c.ok or not c.present) and (not c.file.optional or include_optional)]
    locations: dict[str, _Location] = {}
    for check in todo:
        location = _locate(check.file, origin)
        if location is None:
            unknown = ", ".join(c.file.name for c in todo if _locate(c.file, origin) is None)
            message = f"{bundle.manifest.name}: no download URL is known for {unknown}"
            raise DownloadError(message, missing_files_hint(bundle))
        locations[check.file.name] = location
    results = {c.file.name: c for c in checks}
    for check in todo:
        results[check.file.name] = _fetch_file(
            bundle, check.file, locations[check.file.name], recorded, progress, timeout
        )
    return [results[f.name] for f in bundle.manifest.files]
