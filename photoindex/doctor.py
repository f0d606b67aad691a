"""`photoindex doctor`: what runs where and why, the versions and limits that matter, and real problems.

It loads no model and creates no state: the catalog is only read when it exists, and never migrated.
(Verifying the bundle records first-use checksums in its SHA256SUMS, as `photoindex models verify` does.)
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sqlite3
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from photoindex.config import Config
from photoindex.errors import PhotoindexError
from photoindex.inference.bundle import Bundle

# Distribution names (what pip installs) in the order doctor shows them.
_PACKAGES = (
    ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
    ("faiss", ("faiss-cpu", "faiss", "faiss-gpu")),
    ("numpy", ("numpy",)),
    ("Pillow", ("Pillow",)),
    ("SQLAlchemy", ("SQLAlchemy",)),
    ("alembic", ("alembic",)),
    ("watchdog", ("watchdog",)),
)
# SQLite before 3.51.3 can corrupt a WAL database when two connections write and reset the WAL at once.
_SQLITE_WAL_FIX = (3, 51, 3)
_MOUNTS = Path("/proc/self/mounts")
_INOTIFY = Path("/proc/sys/fs/inotify")
_WATCH_MARGIN = 0.9  # warn when the folders alone take this share of the per-user watch limit


@dataclass(frozen=True)
class Finding:
    """One thing worth a line: a problem (doctor fails) or a warning, with what to do."""

    level: Literal["problem", "warning"]
    message: str
    hint: str | None = None


@dataclass(frozen=True)
class PackageVersion:
    """An installed distribution's version, or None with why it is absent."""

    name: str
    version: str | None
    note: str | None = None


@dataclass(frozen=True)
class EncoderRuntime:
    """Where one encoder will run and why, as `[runtime] <which>` and this machine decide."""

    encoder: Literal["image", "text"]
    setting: str
    device: str | None  # "npu" | "cpu", None when it cannot run at all
    reason: str


@dataclass(frozen=True)
class BundleFile:
    """One file of the configured bundle: present, verified, and what is wrong if not."""

    name: str
    role: str
    optional: bool
    present: bool
    ok: bool
    detail: str | None


@dataclass(frozen=True)
class BundleState:
    """The configured model bundle and its files."""

    name: str
    directory: str
    files: list[BundleFile]


@dataclass(frozen=True)
class ModelCacheState:
    """Fast-loading copies of the bundle's ONNX models (`[runtime] model_cache`); `directory` None when off."""

    directory: str | None
    ready: dict[str, bool]  # ONNX model file -> a current copy exists (else it is made at its first load)


@dataclass(frozen=True)
class InotifyState:
    """inotify limits against what the daemon would need (one watch per folder, one instance per root)."""

    max_user_watches: int | None
    max_user_instances: int | None
    roots: int
    folders: int
    counted_all: bool  # False when counting stopped at the watch limit


@dataclass(frozen=True)
class DoctorReport:
    """Everything `photoindex doctor` shows; JSON-serializable with dataclasses.asdict."""

    ok: bool
    platform: str
    python: str
    cpu_count: int
    packages: list[PackageVersion]
    axengine: str
    onnxruntime_providers: list[str]
    encoders: list[EncoderRuntime]
    bundle: BundleState | None
    model_cache: ModelCacheState
    sqlite_version: str
    inotify: InotifyState | None
    findings: list[Finding] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as plain text lines, findings last."""
        out = [
            f"platform: {self.platform}",
            f"python: {self.python}",
            f"CPUs: {self.cpu_count}",
            "packages: " + ", ".join(f"{p.name} {p.version or p.note}" for p in self.packages),
            f"axengine (NPU runtime): {self.axengine}",
            "ONNX Runtime providers: " + (", ".join(self.onnxruntime_providers) or "none"),
        ]
        for e in self.encoders:
            out.append(f'{e.encoder} encoder ([runtime] {e.encoder} = "{e.setting}"): {e.reason}')
        if self.bundle is not None:
            out.append(f"model bundle {self.bundle.name} in {self.bundle.directory}:")
            for f in self.bundle.files:
                state = "ok" if f.ok and f.present else ("absent" if f.ok else "PROBLEM")
                extra = f" ({f.detail})" if f.detail else ""
                out.append(f"  {state:8} {f.name} [{f.role}{', optional' if f.optional else ''}]{extra}")
        cache = self.model_cache
        if cache.directory is None:
            out.append('fast model copies: off ([runtime] model_cache = "off"): each load parses the model')
        else:
            states = ", ".join(
                f"{name} {'ready' if ok else 'made at its first load'}" for name, ok in cache.ready.items()
            )
            out.append(f"fast model copies in {cache.directory}: {states or 'no ONNX model in the bundle'}")
        out.append(f"SQLite library: {self.sqlite_version}")
        if self.inotify is not None:
            n = self.inotify
            folders = f"{n.folders}" if n.counted_all else f"more than {n.folders}"
            out.append(
                f"inotify: max_user_watches {n.max_user_watches}, max_user_instances {n.max_user_instances}; "
                f"{n.roots} watched root(s) with {folders} folder(s)"
            )
        for finding in self.findings:
            out.append(f"{finding.level}: {finding.message}")
            if finding.hint:
                out.append(f"  hint: {finding.hint}")
        problems = sum(1 for f in self.findings if f.level == "problem")
        out.append("ok" if self.ok else f"{problems} problem(s) found")
        return out


def _version(dists: tuple[str, ...]) -> str | None:
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _packages(findings: list[Finding]) -> list[PackageVersion]:
    out = []
    for name, dists in _PACKAGES:
        version = _version(dists)
        if version is None:
            findings.append(
                Finding(
                    "problem", f"{name} is not installed", "reinstall photoindex with pip: it is a dependency"
                )
            )
            out.append(PackageVersion(name, None, "not installed"))
        else:
            out.append(PackageVersion(name, version))
    return out


def _axengine(findings: list[Finding]) -> str:
    from photoindex.inference.sessions.npu import INSTALL_HINT, axengine_status

    status = axengine_status()
    if status.reason is not None:
        if status.installed:
            findings.append(
                Finding(
                    "warning", f"axengine is installed but cannot be imported: {status.reason}", INSTALL_HINT
                )
            )
            return f"installed but not importable ({status.reason})"
        return f"not installed ({status.reason})"
    version = _version(("axengine",)) or getattr(sys.modules.get("axengine"), "__version__", None)
    return f"{version or 'version unknown'}, importable"


def _ort_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except Exception:  # reported as a missing package already
        return []
    return list(ort.get_available_providers())


def _encoders(config: Config, bundle: Bundle | None, findings: list[Finding]) -> list[EncoderRuntime]:
    from photoindex.inference.select import plan_runtime

    out = []
    for which in ("image", "text"):
        setting = str(getattr(config.runtime, which))
        if bundle is None:
            out.append(
                EncoderRuntime(which, setting, None, "unknown: the model bundle could not be resolved")
            )
            continue
        try:
            device, reason = plan_runtime(bundle, which, config.runtime)
        except PhotoindexError as exc:
            findings.append(Finding("problem", exc.message, exc.hint))
            out.append(EncoderRuntime(which, setting, None, f"cannot run: {exc.message}"))
            continue
        out.append(EncoderRuntime(which, setting, device, reason))
    return out


def _bundle(bundle: Bundle, findings: list[Finding]) -> BundleState:
    from photoindex.inference.download import missing_files_hint, verify_bundle

    files = []
    missing = False
    for check in verify_bundle(bundle):
        f = check.file
        files.append(
            BundleFile(f.name, f.role, f.optional, check.present, check.ok, check.problem or check.note)
        )
        if check.ok:
            continue
        if not check.present:
            missing = True
        else:
            findings.append(
                Finding(
                    "problem",
                    f"{check.path}: {check.problem}",
                    f"delete it and run `photoindex models fetch {bundle.manifest.name}` to replace it",
                )
            )
    if missing:
        names = ", ".join(f.name for f in files if not f.present and not f.ok)
        findings.append(
            Finding(
                "problem",
                f"model bundle {bundle.manifest.name} is missing {names}",
                missing_files_hint(bundle),
            )
        )
    return BundleState(bundle.manifest.name, str(bundle.directory), files)


def _model_cache(config: Config, bundle: Bundle | None) -> ModelCacheState:
    from photoindex.inference import modelcache

    directory = config.runtime.model_cache_dir
    if directory is None:
        return ModelCacheState(None, {})
    ready: dict[str, bool] = {}
    try:
        import onnxruntime

        version: str | None = onnxruntime.__version__
    except ImportError:  # reported with the packages; no copy can be used (or made) without it
        version = None
    if bundle is not None:
        for which in ("image", "text"):
            path = bundle.path(which)
            if path is not None and path.is_file():
                ready[path.name] = version is not None and modelcache.lookup(path, directory, version) is not None
    return ModelCacheState(str(directory), ready)


def _network_filesystem(path: Path) -> str | None:
    """The type of the network or FUSE filesystem holding `path` (from the mount table), else None."""
    from photoindex.daemon.watcher import _POLLING_FSTYPES, filesystem_of, read_mounts

    try:
        mounts = read_mounts(_MOUNTS.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return None
    fs = filesystem_of(os.path.realpath(path), mounts)
    if fs is None:
        return None
    kind = fs[1]
    return kind if kind in _POLLING_FSTYPES or kind.startswith("fuse.") else None


def _sqlite(config: Config, findings: list[Finding]) -> str:
    version = sqlite3.sqlite_version
    try:
        parts = tuple(int(p) for p in version.split(".")[:3])
    except ValueError:
        return version
    # The bug needs two writers at once. photoindex's writer lock allows one, but an flock does not
    # hold between machines: the warning applies only to a catalog on a network filesystem.
    remote = _network_filesystem(config.home) if parts < _SQLITE_WAL_FIX else None
    if remote is not None:
        findings.append(
            Finding(
                "warning",
                f"the SQLite library is {version} and the catalog is on a {remote} filesystem; SQLite before "
                "3.51.3 has a WAL-reset bug that can corrupt a database written from two machines at once, "
                "and the writer lock does not reach across machines",
                "keep PHOTOINDEX_HOME on a local disk (e.g. ~/.local/share/photoindex) and index the network "
                "folder from there",
            )
        )
    return version


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _roots(config: Config, findings: list[Finding]) -> list[str]:
    """Root folders from the catalog, only when it exists (doctor never creates or migrates it)."""
    location = config.catalog_location
    if not location.is_postgres and not config.db_path.is_file():
        return []
    try:
        from sqlalchemy import select

        from photoindex.catalog.db import open_catalog
        from photoindex.catalog.schema import RootRow

        db = open_catalog(location, migrate=False)
        try:
            with db.read() as s:
                return [str(p) for p in s.scalars(select(RootRow.path))]
        finally:
            db.close()
    except PhotoindexError as exc:
        findings.append(
            Finding("warning", f"cannot read the roots from the catalog: {exc.message}", exc.hint)
        )
    return []


def _count_folders(roots: list[str], config: Config, limit: int) -> tuple[int, bool]:
    """Folders the daemon would watch under `roots` (rules as the scanner's), stopping past `limit`."""
    from photoindex.photos.scanner import is_excluded

    scan = config.scan
    count = 0
    seen: set[tuple[int, int]] = set()
    for root in roots:
        try:
            st = os.stat(root)
        except OSError:
            continue
        seen.add((st.st_dev, st.st_ino))
        stack = [root]
        while stack:
            folder = stack.pop()
            count += 1
            if count > limit:
                return count - 1, False
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue
            for entry in entries:
                if not scan.include_hidden and entry.name.startswith("."):
                    continue
                try:
                    if entry.is_symlink() and not scan.follow_symlinks:
                        continue
                    est = entry.stat(follow_symlinks=True)
                except OSError:
                    continue
                key = (est.st_dev, est.st_ino)
                if stat.S_ISDIR(est.st_mode) and key not in seen and not is_excluded(entry.path, root, scan):
                    seen.add(key)
                    stack.append(entry.path)
    return count, True


def _inotify(config: Config, findings: list[Finding]) -> InotifyState | None:
    if not _INOTIFY.is_dir():  # not Linux: the daemon uses the platform's own watcher
        return None
    watches = _read_int(_INOTIFY / "max_user_watches")
    instances = _read_int(_INOTIFY / "max_user_instances")
    polled = {os.path.abspath(os.path.expanduser(p)) for p in config.daemon.polling_roots}
    roots = [r for r in _roots(config, findings) if os.path.abspath(r) not in polled]
    limit = watches if watches is not None else 1_000_000
    folders, counted_all = _count_folders(roots, config, limit)
    sysctl = (
        "echo fs.inotify.{key}={value} | sudo tee /etc/sysctl.d/90-photoindex.conf && sudo sysctl --system"
    )
    if watches is not None and folders >= watches * _WATCH_MARGIN:
        findings.append(
            Finding(
                "warning",
                f"the roots hold {'more than ' if not counted_all else ''}{folders} folders and the daemon "
                f"needs one inotify watch per folder, but fs.inotify.max_user_watches is {watches} (shared "
                "with every program of this user): folders beyond it are only seen by the periodic rescan",
                "raise the limit: " + sysctl.format(key="max_user_watches", value=max(524288, 2 * folders)),
            )
        )
    if instances is not None and len(roots) >= instances:
        findings.append(
            Finding(
                "warning",
                f"{len(roots)} roots need one inotify instance each, "
                f"but fs.inotify.max_user_instances is {instances}",
                "raise the limit: "
                + sysctl.format(key="max_user_instances", value=max(1024, 2 * len(roots))),
            )
        )
    return InotifyState(watches, instances, len(roots), folders, counted_all)


def _cpu_count() -> int:
    # The affinity mask is what this process may use (containers, taskset); cpu_count is the machine's.
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def diagnose(config: Config) -> DoctorReport:
    """Check this machine and config, loading no model, creating no state; `ok` is False only for problems."""
    from photoindex.library import bundle_for

    findings: list[Finding] = []
    packages = _packages(findings)
    bundle: Bundle | None
    try:
        bundle = bundle_for(config)
    except PhotoindexError as exc:
        findings.append(Finding("problem", exc.message, exc.hint))
        bundle = None
    encoders = _encoders(config, bundle, findings)
    bundle_state = _bundle(bundle, findings) if bundle is not None else None
    sqlite_version = _sqlite(config, findings)
    inotify = _inotify(config, findings)
    axengine = _axengine(findings)
    return DoctorReport(
        ok=not any(f.level == "problem" for f in findings),
        platform=f"{platform.platform()} ({platform.machine()})",
        python=f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})",
        cpu_count=_cpu_count(),
        packages=packages,
        axengine=axengine,
        onnxruntime_providers=_ort_providers(),
        encoders=encoders,
        bundle=bundle_state,
        model_cache=_model_cache(config, bundle),
        sqlite_version=sqlite_version,
        inotify=inotify,
        findings=findings,
    )
