"""Fetching and verifying model bundles against real HTTP servers on 127.0.0.1 and real folders."""

from __future__ import annotations

import fcntl
import hashlib
import os
import random
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from helpers import needs_proc

from photoindex.errors import DownloadError
from photoindex.inference import download
from photoindex.inference.bundle import Bundle, resolve_bundle
from photoindex.inference.download import FileCheck, fetch_bundle, missing_files_hint, verify_bundle

SIZES = {"image.onnx": 300_000, "text.onnx": 120_000, "image.axmodel": 50_000}


def payload(name: str) -> bytes:
    """Deterministic bytes for a bundle file (more than one transfer chunk for image.onnx)."""
    return random.Random(name).randbytes(SIZES[name])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Site:
    """What the test server serves and what it saw."""

    files: dict[str, bytes]
    ranges: bool = True  # False: ignore Range headers and always answer 200 with the whole file
    drop_after: dict[str, int] = field(default_factory=dict)  # the next request closes after K body bytes
    drop_always: set[str] = field(default_factory=set)  # every request closes before any body byte
    requests: list[tuple[str, str | None, str | None]] = field(default_factory=list)  # (name, Range, UA)
    sent: dict[str, int] = field(default_factory=dict)  # body bytes written per name
    base: str = ""


def _handler(site: Site) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            name = unquote(self.path.lstrip("/"))
            range_header = self.headers.get("Range")
            site.requests.append((name, range_header, self.headers.get("User-Agent")))
            body = site.files.get(name)
            if body is None:
                self.send_error(404)
                return
            start, status = 0, 200
            if range_header and site.ranges:
                m = re.fullmatch(r"bytes=(\d+)-", range_header)
                assert m, range_header
                start, status = int(m.group(1)), 206
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            rest = body[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(rest)))
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            self.end_headers()
            limit = 0 if name in site.drop_always else site.drop_after.pop(name, None)
            if limit is not None:
                # A dropped connection: part of the promised body, then the socket goes away.
                self.wfile.write(rest[:limit])
                site.sent[name] = site.sent.get(name, 0) + limit
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self.wfile.write(rest)
            site.sent[name] = site.sent.get(name, 0) + len(rest)

    return Handler


@pytest.fixture
def site() -> Iterator[Site]:
    """A real HTTP server on 127.0.0.1 (ephemeral port) serving the three payloads."""
    state = Site(files={name: payload(name) for name in SIZES})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # Retries are exercised for real; only the waiting between them is skipped.
    monkeypatch.setattr(download, "_BACKOFF", 0.0)


def make_bundle(
    folder: Path,
    *,
    base_url: str | None = None,
    checksums: bool = True,
    sizes: bool = False,
    homepage: str | None = None,
) -> Bundle:
    """Write a bundle folder with a manifest.toml for the three payloads and resolve it for real."""
    lines = [
        'name = "toy"',
        'title = "Toy bundle"',
        "embedding_dim = 8",
        *([f'homepage = "{homepage}"'] if homepage else []),
        "[image]",
        "size = 32",
        "[text]",
        'tokenizer = "clip-bpe"',
        "context_length = 77",
    ]
    for role, name, optional in (
        ("image", "image.onnx", False),
        ("text", "text.onnx", False),
        ("image-npu", "image.axmodel", True),
    ):
        lines += ["[[files]]", f'role = "{role}"', f'name = "{name}"']
        if checksums:
            lines.append(f'sha256 = "{sha(payload(name))}"')
        if sizes:
            lines.append(f"size = {SIZES[name]}")
        if base_url:
            lines.append(f'url = "{base_url}/{name}"')
        if optional:
            lines.append("optional = true")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return resolve_bundle(str(folder), folder.parent / "models-home")


def by_name(checks: list[FileCheck]) -> dict[str, FileCheck]:
    return {c.file.name: c for c in checks}


def assert_fetched(bundle: Bundle, names: tuple[str, ...] = ("image.onnx", "text.onnx")) -> None:
    for name in names:
        assert (bundle.directory / name).read_bytes() == payload(name)
    assert not list(bundle.directory.glob("*.part"))


def test_fetch_from_manifest_urls_then_verify(tmp_path: Path, site: Site) -> None:
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    seen: list[tuple[str, int, int | None]] = []
    checks = by_name(fetch_bundle(bundle, progress=lambda n, d, t: seen.append((n, d, t))))

    assert_fetched(bundle)
    assert not (bundle.directory / "image.axmodel").exists()  # optional, not asked for
    assert checks["image.onnx"].ok and checks["image.onnx"].sha256 == sha(payload("image.onnx"))
    assert checks["image.axmodel"].ok and not checks["image.axmodel"].present
    image_progress = [(d, t) for n, d, t in seen if n == "image.onnx"]
    assert image_progress[-1] == (SIZES["image.onnx"], SIZES["image.onnx"])
    assert [d for d, _ in image_progress] == sorted(d for d, _ in image_progress)
    assert all(ua and ua.startswith("photoindex/") for _, _, ua in site.requests)

    verified = by_name(verify_bundle(bundle))
    assert all(c.ok for c in verified.values())
    assert verified["text.onnx"].expected == verified["text.onnx"].sha256 == sha(payload("text.onnx"))

    # Present, verified files are not fetched again; the optional one is fetched when asked for.
    before = len(site.requests)
    fetch_bundle(bundle, include_optional=True)
    assert [r[0] for r in site.requests[before:]] == ["image.axmodel"]
    assert_fetched(bundle, ("image.axmodel",))


def test_fetch_from_base_url(tmp_path: Path, site: Site) -> None:
    bundle = make_bundle(tmp_path / "toy")  # no URLs in the manifest
    fetch_bundle(bundle, site.base + "/")
    assert_fetched(bundle)


def test_dropped_connection_is_resumed_with_range(tmp_path: Path, site: Site) -> None:
    k = 70_000
    site.drop_after["image.onnx"] = k
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    fetch_bundle(bundle)

    assert_fetched(bundle)
    image_requests = [r[1] for r in site.requests if r[0] == "image.onnx"]
    assert image_requests == [None, f"bytes={k}-"]
    assert site.sent["image.onnx"] == SIZES["image.onnx"]  # nothing was sent twice


def test_part_from_killed_run_is_resumed(tmp_path: Path, site: Site) -> None:
    k = 123_457
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    (bundle.directory / "image.onnx.part").write_bytes(payload("image.onnx")[:k])
    fetch_bundle(bundle)

    assert_fetched(bundle)
    assert [r[1] for r in site.requests if r[0] == "image.onnx"] == [f"bytes={k}-"]
    assert site.sent["image.onnx"] == SIZES["image.onnx"] - k


def test_complete_part_answered_416_is_verified_and_used(tmp_path: Path, site: Site) -> None:
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    (bundle.directory / "text.onnx.part").write_bytes(payload("text.onnx"))
    fetch_bundle(bundle)

    assert_fetched(bundle)
    assert [r[1] for r in site.requests if r[0] == "text.onnx"] == [f"bytes={SIZES['text.onnx']}-"]
    assert "text.onnx" not in site.sent


def test_stale_part_with_other_bytes_is_restarted(tmp_path: Path, site: Site) -> None:
    # A part from another version of the file: resuming gives a wrong digest, so one fresh download follows.
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    (bundle.directory / "image.onnx.part").write_bytes(b"\xff" * 1000)
    fetch_bundle(bundle)

    assert_fetched(bundle)
    assert [r[1] for r in site.requests if r[0] == "image.onnx"] == ["bytes=1000-", None]


def test_server_ignoring_range_still_ends_correct(tmp_path: Path, site: Site) -> None:
    site.ranges = False
    site.drop_after["image.onnx"] = 50_000
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    (bundle.directory / "text.onnx.part").write_bytes(payload("text.onnx")[:10_000])
    fetch_bundle(bundle)

    assert_fetched(bundle)
    assert [r[1] for r in site.requests if r[0] == "image.onnx"] == [None, "bytes=50000-"]
    assert [r[1] for r in site.requests if r[0] == "text.onnx"] == ["bytes=10000-"]


def test_corrupted_download_is_rejected(tmp_path: Path, site: Site) -> None:
    corrupt = bytearray(payload("text.onnx"))
    corrupt[5000] ^= 0x01  # one flipped bit
    site.files["text.onnx"] = bytes(corrupt)
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)

    with pytest.raises(DownloadError) as info:
        fetch_bundle(bundle)

    message = info.value.message
    assert "text.onnx" in message
    assert sha(payload("text.onnx")) in message and sha(bytes(corrupt)) in message
    assert info.value.hint and "run the command again" in info.value.hint
    assert not (bundle.directory / "text.onnx").exists()
    assert not (bundle.directory / "text.onnx.part").exists()  # a corrupt part is never resumed


def test_wrong_size_from_manifest_is_rejected(tmp_path: Path, site: Site) -> None:
    site.files["image.onnx"] = payload("image.onnx") + b"extra"
    bundle = make_bundle(tmp_path / "toy", base_url=site.base, checksums=False, sizes=True)
    with pytest.raises(DownloadError, match="image.onnx"):
        fetch_bundle(bundle)
    assert not (bundle.directory / "image.onnx").exists()
    assert not (bundle.directory / "SHA256SUMS").exists()  # a wrong file is never trusted


def test_connection_that_keeps_dropping_fails_after_retries(tmp_path: Path, site: Site) -> None:
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    site.drop_always.add("text.onnx")
    with pytest.raises(DownloadError, match="text.onnx") as info:
        fetch_bundle(bundle)
    assert info.value.hint and "resumes" in info.value.hint
    assert len([r for r in site.requests if r[0] == "text.onnx"]) == 1 + download._RETRIES
    assert not (bundle.directory / "text.onnx").exists()


def test_http_404_fails_at_once(tmp_path: Path, site: Site) -> None:
    del site.files["text.onnx"]
    bundle = make_bundle(tmp_path / "toy", base_url=site.base)
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch_bundle(bundle)
    assert len([r for r in site.requests if r[0] == "text.onnx"]) == 1


def write_source_folder(folder: Path) -> Path:
    folder.mkdir()
    for name in SIZES:
        (folder / name).write_bytes(payload(name))
    return folder


def test_fetch_from_local_folder(tmp_path: Path) -> None:
    source = write_source_folder(tmp_path / "my models")
    bundle = make_bundle(tmp_path / "toy")
    checks = fetch_bundle(bundle, str(source), include_optional=True)
    assert all(c.ok and c.present for c in checks)
    assert_fetched(bundle, tuple(SIZES))


def test_fetch_from_file_url(tmp_path: Path) -> None:
    source = write_source_folder(tmp_path / "my models")
    bundle = make_bundle(tmp_path / "toy")
    fetch_bundle(bundle, source.as_uri())
    assert_fetched(bundle)


def test_fetch_from_folder_missing_a_file(tmp_path: Path) -> None:
    source = write_source_folder(tmp_path / "src")
    (source / "text.onnx").unlink()
    bundle = make_bundle(tmp_path / "toy")
    with pytest.raises(DownloadError, match="text.onnx"):
        fetch_bundle(bundle, str(source))
    assert not (bundle.directory / "text.onnx").exists()


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "toy")
    with pytest.raises(DownloadError, match="no such folder"):
        fetch_bundle(bundle, str(tmp_path / "nowhere"))
    with pytest.raises(DownloadError, match="unsupported URL scheme"):
        fetch_bundle(bundle, "ftp://example.invalid/models")
    with pytest.raises(DownloadError) as info:
        fetch_bundle(bundle)  # no URLs and no --from
    assert "image.onnx" in info.value.message and "text.onnx" in info.value.message
    assert info.value.hint == missing_files_hint(bundle)


def test_verify_reports_missing_and_mismatching_files(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "toy")
    checks = by_name(verify_bundle(bundle))
    assert checks["image.onnx"].problem == "missing" and not checks["image.onnx"].ok
    assert checks["image.onnx"].expected == sha(payload("image.onnx"))
    assert checks["image.axmodel"].ok and not checks["image.axmodel"].present  # optional

    (bundle.directory / "image.onnx").write_bytes(payload("image.onnx"))
    wrong = payload("text.onnx")[:-1] + b"\x00"
    (bundle.directory / "text.onnx").write_bytes(wrong)
    seen: list[tuple[str, int, int | None]] = []
    checks = by_name(verify_bundle(bundle, progress=lambda n, d, t: seen.append((n, d, t))))
    assert checks["image.onnx"].ok and checks["image.onnx"].problem is None
    text = checks["text.onnx"]
    assert text.present and not text.ok and text.sha256 == sha(wrong)
    assert text.problem == f"sha256 mismatch (expected {sha(payload('text.onnx'))}, got {sha(wrong)})"
    assert ("image.onnx", SIZES["image.onnx"], SIZES["image.onnx"]) in seen
    assert not (bundle.directory / "SHA256SUMS").exists()  # the manifest has every checksum

    # fetch replaces only the bad file
    fetch_bundle(bundle, str(write_source_folder(tmp_path / "src")))
    assert all(c.ok for c in verify_bundle(bundle))


def test_verify_checks_size_from_manifest(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "toy", sizes=True)
    (bundle.directory / "image.onnx").write_bytes(payload("image.onnx")[:-10])
    check = by_name(verify_bundle(bundle))["image.onnx"]
    assert not check.ok
    assert (
        check.problem
        == f"size mismatch (expected {SIZES['image.onnx']} bytes, got {SIZES['image.onnx'] - 10})"
    )


def test_trust_on_first_use_without_upstream_checksums(tmp_path: Path, site: Site) -> None:
    bundle = make_bundle(tmp_path / "toy", base_url=site.base, checksums=False)
    fetched = by_name(fetch_bundle(bundle))
    assert fetched["image.onnx"].expected is None
    assert "no upstream checksum" in (fetched["image.onnx"].note or "")

    sums = (bundle.directory / "SHA256SUMS").read_text(encoding="utf-8")
    assert sums == "".join(f"{sha(payload(n))}  {n}\n" for n in ("image.onnx", "text.onnx"))
    assert not list(bundle.directory.glob("*.tmp"))

    checks = by_name(verify_bundle(bundle))
    image = checks["image.onnx"]
    assert image.ok and image.expected == sha(payload("image.onnx"))
    assert "no upstream checksum" in (image.note or "") and "SHA256SUMS" in (image.note or "")

    # A damaged copy is caught by the recorded digest, and fetch repairs it from the same source.
    (bundle.directory / "image.onnx").write_bytes(b"garbage")
    checks = by_name(verify_bundle(bundle))
    assert not checks["image.onnx"].ok and "recorded in SHA256SUMS" in (checks["image.onnx"].problem or "")
    fetch_bundle(bundle)
    assert_fetched(bundle)

    # Upstream now serves other bytes under the same name: refused, with the way out in the hint.
    (bundle.directory / "text.onnx").unlink()
    site.files["text.onnx"] = b"a different release"
    with pytest.raises(DownloadError) as info:
        fetch_bundle(bundle)
    assert sha(payload("text.onnx")) in info.value.message
    assert info.value.hint and "SHA256SUMS" in info.value.hint
    assert not (bundle.directory / "text.onnx").exists()


def test_verify_records_hand_placed_files_without_checksum(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "toy", checksums=False)
    (bundle.directory / "image.onnx").write_bytes(payload("image.onnx"))
    checks = by_name(verify_bundle(bundle))
    assert checks["image.onnx"].ok and checks["image.onnx"].expected is None
    assert "trust on first use" in (checks["image.onnx"].note or "")
    assert checks["text.onnx"].problem == "missing"
    sums = (bundle.directory / "SHA256SUMS").read_text(encoding="utf-8")
    assert sums == f"{sha(payload('image.onnx'))}  image.onnx\n"
    assert by_name(verify_bundle(bundle))["image.onnx"].expected == sha(payload("image.onnx"))


def test_missing_files_hint_for_shipped_bundles(tmp_path: Path) -> None:
    clip = resolve_bundle("clip-vit-b32", tmp_path / "models")
    hint = missing_files_hint(clip)
    assert "image_encoder.onnx" in hint and "text_encoder.onnx" in hint
    assert "feature_matmul.onnx" not in hint  # optional
    assert str(tmp_path / "models" / "clip-vit-b32") in hint
    assert (
        "https://github.com/ZHEQIUSHUI/CLIP-ONNX-AX650-CPP/releases/download/3models/image_encoder.onnx"
        in hint
    )
    assert "`photoindex models fetch clip-vit-b32`" in hint
    assert "`photoindex models fetch clip-vit-b32 --from DIR_OR_URL`" in hint

    cn = resolve_bundle("cnclip-vit-b16", tmp_path / "models")
    hint = missing_files_hint(cn)
    assert "cnclip_vit_b16_image.onnx, cnclip_vit_b16_text.onnx" in hint
    assert "no download URL" in hint and "https://github.com/OFA-Sys/Chinese-CLIP" in hint
    assert "`photoindex models fetch cnclip-vit-b16 --from DIR_OR_URL`" in hint


def test_missing_files_hint_for_bundle_folder(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "my toy")
    (bundle.directory / "image.onnx").write_bytes(payload("image.onnx"))
    hint = missing_files_hint(bundle)
    assert "place text.onnx in" in hint and "image.onnx" not in hint
    assert f"`photoindex models fetch '{bundle.directory}' --from DIR_OR_URL`" in hint


def test_concurrent_fetch_of_the_same_folder_is_refused(tmp_path: Path) -> None:
    source = write_source_folder(tmp_path / "src")
    bundle = make_bundle(tmp_path / "toy")
    fd = os.open(bundle.directory / download.LOCK_NAME, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running fetch holds
        with pytest.raises(DownloadError, match="another `photoindex models fetch`"):
            fetch_bundle(bundle, str(source))
        assert not (bundle.directory / "image.onnx").exists()
    finally:
        os.close(fd)
    fetch_bundle(bundle, str(source))
    assert_fetched(bundle)


def test_verify_in_a_read_only_folder_still_verifies(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "toy", checksums=False)
    (bundle.directory / "image.onnx").write_bytes(payload("image.onnx"))
    (bundle.directory / "SHA256SUMS.tmp").mkdir()  # the temporary file cannot be created
    check = by_name(verify_bundle(bundle))["image.onnx"]
    assert check.ok and check.sha256 == sha(payload("image.onnx"))
    assert "cannot record" in (check.note or "")
    assert not (bundle.directory / "SHA256SUMS").exists()


@needs_proc
def test_a_downloaded_model_its_checksum_and_the_folder_are_fsynced(tmp_path: Path, fsynced: list[str]) -> None:
    """fetch_bundle from a folder, no upstream checksum: the part is flushed before its rename, the folder after
    it, and SHA256SUMS (trust on first use) is written durably too."""
    from photoindex.inference.bundle import resolve_bundle
    from photoindex.inference.download import fetch_bundle

    source = tmp_path / "source"
    source.mkdir()
    (source / "image.onnx").write_bytes(b"i" * 5000)
    (source / "text.onnx").write_bytes(b"t" * 3000)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "manifest.toml").write_text(
        'name = "toy"\ntitle = "Toy"\nembedding_dim = 8\n[image]\nsize = 32\n[text]\ntokenizer = "clip-bpe"\n'
        'context_length = 77\n[[files]]\nrole = "image"\nname = "image.onnx"\n'
        '[[files]]\nrole = "text"\nname = "text.onnx"\n',
        encoding="utf-8",
    )
    bundle = resolve_bundle(str(folder), tmp_path / "models-home")
    fetch_bundle(bundle, str(source))
    where = str(bundle.directory)
    for name in ("image.onnx", "text.onnx"):
        part = f"{where}/{name}.part"
        assert part in fsynced and where in fsynced[fsynced.index(part) + 1:]
    sums = f"{where}/SHA256SUMS.tmp"
    assert sums in fsynced and fsynced[-1] == where
    assert (bundle.directory / "image.onnx").read_bytes() == b"i" * 5000
