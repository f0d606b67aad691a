"""The `photoindex` command line: parse options, call one core function, render the result.

This is the one place where errors become `error:`/`hint:` lines and exit codes. Heavy modules
(onnxruntime, faiss, SQLAlchemy, numpy) are imported inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from typer.core import TyperGroup

from photoindex.errors import PhotoindexError

if TYPE_CHECKING:
    from photoindex.config import Config
    from photoindex.search.client import Served
    from photoindex.search.protocol import SearchRequest

EXIT_OK = 0
EXIT_ERROR = 1  # nothing could be done (bad input, missing model, broken config)
EXIT_USAGE = 2  # wrong options (click's own code)
EXIT_LOCKED = 3  # another photoindex process holds the writer lock
EXIT_INTERRUPTED = 130


class _Group(TyperGroup):
    """Turns PhotoindexError into `error:`/`hint:` lines and its exit code, for every sub-command."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except PhotoindexError as exc:
            _fail(exc)
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


def _fail(exc: PhotoindexError) -> None:
    typer.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        typer.echo(f"hint: {exc.hint}", err=True)
    raise typer.Exit(exc.exit_code)


app = typer.Typer(
    cls=_Group,
    help="Find your photos by describing them: CLIP search over a persistent SQLite + FAISS index.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
models_app = typer.Typer(cls=_Group, help="List, fetch and verify model bundles.", no_args_is_help=True)
app.add_typer(models_app, name="models")
catalog_app = typer.Typer(cls=_Group, help="Move the catalog between SQLite and PostgreSQL.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"photoindex {version('photoindex')}")
        except PackageNotFoundError:  # run from a source tree that was never installed
            typer.echo("photoindex (not installed: version unknown)")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None, "--config", "-c", help="Config file (default: $PHOTOINDEX_HOME/config.toml)."
    ),
    version: bool = typer.Option(
        False, "--version", help="Print the version and exit.", is_eager=True, callback=_version
    ),
) -> None:
    ctx.obj = {"config_file": config}
    from photoindex.cli import render

    render.log_to_stderr()


def _config(ctx: typer.Context) -> Config:
    from photoindex.config import load_config

    root = ctx.find_root()
    path = (root.obj or {}).get("config_file") if root.obj else None
    return load_config(config_file=path)


def _emit_json(data: Any) -> None:
    from photoindex.cli import render

    render.json_document(data)


def _interactive(quiet: bool, as_json: bool) -> bool:
    return not quiet and not as_json and sys.stderr.isatty()


def _display(path: str) -> str:
    # Non-UTF-8 names are kept with surrogate escapes; show them without crashing the terminal.
    return path.encode("utf-8", "backslashreplace").decode("utf-8")


# ---------------------------------------------------------------- init


@app.command()
def init(
    ctx: typer.Context,
    force: bool = typer.Option(False, "--force", help="Overwrite an existing config file."),
) -> None:
    """Write a starting config.toml (every key documented, with its default)."""
    from photoindex.library import write_starting_config

    cfg = _config(ctx)
    path = write_starting_config(cfg, force=force)
    typer.echo(f"wrote {path}")
    typer.echo(f"state lives in {cfg.home} (set PHOTOINDEX_HOME to move it)")


# ---------------------------------------------------------------- index / reindex


class _Progress:
    """A rich progress bar on a terminal, silence elsewhere."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled
        self.label = label
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(self.label, total=None, rate="")
        return self

    def __call__(self, event: Any) -> None:
        if not self.enabled:
            return
        rate = f"{event.rate:.1f} photos/s" if getattr(event, "rate", 0) else ""
        self._bar.update(
            self._task,
            description=f"{self.label}: {event.stage}",
            completed=event.done,
            total=event.total,
            rate=rate,
        )

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _print_failures(report: Any) -> None:
    for f in report.failures:
        typer.echo(f"skipped: {_display(f.path)}: {f.message}" + (f" ({f.hint})" if f.hint else ""), err=True)



class _StopOnInterrupt:
    """First Ctrl-C (or SIGTERM): finish the current batch and stop; a second Ctrl-C aborts at once."""

    def __init__(self, quiet: bool) -> None:
        import threading

        self.event = threading.Event()
        self.quiet = quiet
        self._saved: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        import signal

        if self.event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.event.set()
        if not self.quiet:
            typer.echo("stopping after the current batch (Ctrl-C again to abort)", err=True)

    def __enter__(self) -> _StopOnInterrupt:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        import signal

        for sig, handler in self._saved.items():
            signal.signal(sig, handler)


def _run_indexing(ctx: typer.Context, paths: list[Path] | None, quiet: bool, as_json: bool, dry_run: bool) -> None:
    if not dry_run:
        from photoindex.photos.decodepool import start_server

        # The decode workers' server imports the decoders on the other core while this process
        # imports the indexer (SQLAlchemy: ~0.8 CPU s) and opens the library.
        start_server()
    from photoindex.indexing.indexer import run_index

    cfg = _config(ctx)

    def waiting(message: str) -> None:
        if not as_json:
            typer.echo(f"waiting: {message}", err=True)

    with (
        _StopOnInterrupt(quiet or as_json) as stop,
        _Progress(_interactive(quiet, as_json), "planning (dry run)" if dry_run else "indexing") as progress,
    ):
        report = run_index(cfg, paths, progress=progress, dry_run=dry_run, stop=stop.event, on_wait=waiting)
    if as_json:
        _emit_json(report.to_json())
    else:
        if not quiet or report.failed_new:
            _print_failures(report)
        if dry_run:
            for change in report.planned:
                source = f"\tfrom {_display(change.source)}" if change.source else ""
                typer.echo(f"{change.action}\t{_display(change.path)}{source}")
        if not quiet:
            typer.echo(report.summary())
    if report.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def index(
    ctx: typer.Context,
    paths: list[Path] = typer.Argument(..., help="Folders (or single photos) to add as roots and index."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Add folders as roots and index them (only new and changed photos are encoded)."""
    _run_indexing(ctx, paths, quiet, as_json, dry_run=False)


@app.command()
def reindex(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="List what would change; write nothing."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only failures (the default off a terminal)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Reconcile every root with the disk (the cron safety net)."""
    _run_indexing(ctx, None, quiet or not sys.stdout.isatty(), as_json, dry_run=dry_run)


@app.command()
def forget(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="A root folder to take out of the library (files are not touched)."),
    purge: bool = typer.Option(False, "--purge", help="Also delete the vectors no photo needs any more."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON summary."),
) -> None:
    """Take a folder out of the library; its photos leave the results (the files stay on disk)."""
    from photoindex.indexing.roots import forget_root

    def waiting(message: str) -> None:
        if not as_json:
            typer.echo(f"waiting: {message}", err=True)

    report = forget_root(_config(ctx), path, purge=purge, on_wait=waiting)
    if as_json:
        _emit_json(report)
        return
    typer.echo(
        f"forgot {_display(report.root)}: {report.photos} photo{'' if report.photos == 1 else 's'}"
        + (f", {report.vectors_deleted} vectors purged" if purge else " (their vectors are kept for a return)")
    )


# ---------------------------------------------------------------- search


_SEARCH_EPILOG = """\b
Examples:
  photoindex search "a dog on the beach"
  photoindex search "beach + sunset - people"        (add and subtract ideas)
  photoindex search "2:sunset + beach"               (weigh one idea twice)
  photoindex search "./dog.jpg + in the snow"        (an example photo as a term)
  photoindex search -i a.jpg -i b.jpg --not-image blurry.jpg
  photoindex search "mountains" --after 2024-06 --before 2024-08 --camera pixel
  photoindex search --place Paris --after 2023       (no query: the photos by date)
  photoindex search --place 杭州 --sort date
  photoindex search "lake" --near 30.25,120.15,10 --type heic
  photoindex search "cat" --folder ~/Pictures/2024 --limit 20 --offset 20
"""


@app.command(epilog=_SEARCH_EPILOG)
def search(
    ctx: typer.Context,
    text: str | None = typer.Argument(
        None, help='What to look for, e.g. "a dog on the beach"; "beach + sunset - people", "2:sunset + beach".'
    ),
    image: list[Path] = typer.Option([], "--image", "-i", help="Find photos like this one (repeatable)."),
    not_image: list[Path] = typer.Option([], "--not-image", help="Push away from this photo (repeatable)."),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="How many results (default 20)."),
    offset: int = typer.Option(0, "--offset", min=0, help="Skip this many results (the next page)."),
    min_score: float | None = typer.Option(None, "--min-score", help="Drop results below this cosine score."),
    # A str, not a Path: Path("") is ".", and an empty --folder must be an error (search/filters.py).
    folder: str | None = typer.Option(None, "--folder", help="Only photos under this folder."),
    after: str | None = typer.Option(
        None, "--after", help="Taken in or after this year, month or day (2024, 2024-06, 2024-06-15)."
    ),
    before: str | None = typer.Option(None, "--before", help="Taken in or before this year, month or day."),
    camera: str | None = typer.Option(
        None, "--camera", help="Camera make or model containing this text (e.g. pixel, canon)."
    ),
    place: str | None = typer.Option(
        None, "--place", help="Taken in this city or country (any spelling: Hangzhou, 杭州)."
    ),
    near: str | None = typer.Option(None, "--near", help="Within KM (default 5) of LAT,LON: --near 48.85,2.35,10."),
    types: list[str] = typer.Option(
        [], "--type", help="Only these file types: jpeg, heic, png, webp, ... (repeatable)."
    ),
    sort: str = typer.Option("score", "--sort", help="score (best first) or date (newest first)."),
    words: str | None = typer.Option(
        None, "--words", "-w", help='Words written in the photos (OCR), e.g. "tracking number"; alone, or with a text.'
    ),
    as_json: bool = typer.Option(False, "--json", help="Print results as JSON."),
    paths_only: bool = typer.Option(False, "--paths", "-f", help="Print only the paths, one per line (for scripts)."),
    sheet: Path | None = typer.Option(
        None, "--sheet", help="Also write the hits as a contact sheet image (.jpg, .png or .webp)."
    ),
    preview: bool = typer.Option(
        False, "--preview", "-p", help="Show thumbnails in the terminal (kitty, sixel; else Unicode blocks)."
    ),
) -> None:
    """Find photos by a text description, example photos, the words in them, or filters alone (newest first)."""
    from photoindex.search.filters import Filters
    from photoindex.search.protocol import SearchRequest

    filters = Filters.from_options(
        folder=folder, after=after, before=before, camera=camera, place=place, near=near, types=types
    )
    if not text and not image and not words and filters.empty:
        raise PhotoindexError(
            "nothing to search for",
            'give a text, e.g. `photoindex search "a red car"`, --image PATH, --words "...", '
            "or a filter such as --after 2024",
        )
    cfg = _config(ctx)
    request = SearchRequest.build(
        text=text,
        images=image,
        not_images=not_image,
        limit=limit if limit is not None else cfg.search.limit,
        offset=offset,
        min_score=min_score if min_score is not None else cfg.search.min_score,
        sort=sort,
        filters=filters,
        words=words,
    )
    # `--words` alone loads no model: it is as quick here as through the daemon.
    served = _ask_daemon(cfg, request) if cfg.search.use_daemon and request.has_query else None
    if served is not None:
        hits = served.hits
    else:
        from photoindex.search.query import run_search

        hits = run_search(cfg, request)
    _warn_not_encoded(cfg, served)
    if sheet is not None and hits:
        from photoindex.photos.sheet import Tile, write_contact_sheet
        from photoindex.photos.thumbnails import thumbnails_for_files

        thumbs = thumbnails_for_files(cfg, [h.path for h in hits])
        write_contact_sheet(sheet, [Tile(t, h.score, Path(h.path).name) for h, t in zip(hits, thumbs, strict=True)])
        typer.echo(f"wrote {sheet} ({len(hits)} photos)", err=True)
    from photoindex.cli import render

    if as_json:
        _emit_json([h.to_json() for h in hits])
    elif not hits:
        from photoindex.search.query import why_no_hits

        why, hint = why_no_hits(cfg, request)
        typer.echo(f"no matching photos: {_display(why)}", err=True)
        typer.echo(f"hint: {_display(hint)}", err=True)
    elif preview:
        try:
            import textual_image.renderable  # noqa: F401
        except ImportError:
            raise PhotoindexError(
                "-p/--preview needs the textual-image package", "pip install 'photoindex[preview]'"
            ) from None
        from photoindex.photos.thumbnails import thumbnails_for_files

        render.hits_preview(hits, thumbnails_for_files(cfg, [h.path for h in hits]))
    elif paths_only or not sys.stdout.isatty():
        render.hits_lines(hits, paths_only=paths_only)  # a pipe or a script: no header, no padding
    else:
        render.hits_table(hits)


def _warn_not_encoded(cfg: Config, served: Served | None = None) -> None:
    """Say when the configured model has not encoded every photo yet (a model switch): results are partial.

    The daemon's answer carries its count; otherwise it is read from the catalog.
    """
    from photoindex.cli import render

    if served is not None and served.not_encoded is not None:
        model, missing = served.not_encoded
    else:
        from photoindex.search.query import photos_not_encoded

        model, missing = photos_not_encoded(cfg)
    render.not_encoded_warning(model, missing)


def _ask_daemon(cfg: Config, request: SearchRequest) -> Served | None:
    """The running daemon's answer (its model and index are warm), or None: search in this process."""
    from photoindex.library import bundle_for
    from photoindex.search.client import serve_request

    try:
        model_id = bundle_for(cfg).manifest.model_id  # reads one manifest: no model is loaded
    except PhotoindexError:
        return None  # the local search reports it
    return serve_request(cfg.home, request, model_id)


# ---------------------------------------------------------------- duplicates


@app.command(epilog="""\b
Examples:
  photoindex duplicates
  photoindex duplicates --folder ~/Pictures/2024 --threshold 0.9 --json
""")
def duplicates(
    ctx: typer.Context,
    threshold: float = typer.Option(
        0.95, "--threshold", help="Cosine score from which two photos are near-duplicates (0-1]."
    ),
    # A str, not a Path: Path("") is ".", and an empty --folder must be an error (search/filters.py).
    folder: str | None = typer.Option(None, "--folder", help="Only photos under this folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the groups as JSON."),
) -> None:
    """Groups of exact copies and near-duplicates (re-saved, resized, cropped, bursts); never deletes."""
    from photoindex.cli import render
    from photoindex.search.duplicates import find_duplicates

    cfg = _config(ctx)
    groups = find_duplicates(cfg, threshold=threshold, folder=folder)
    _warn_not_encoded(cfg)  # after a model switch, photos it has not encoded are in no group yet
    if as_json:
        _emit_json([g.to_json() for g in groups])
    elif not groups:
        typer.echo("no duplicates", err=True)
    else:
        render.duplicate_groups(groups)


# ---------------------------------------------------------------- status


@app.command()
def status(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Roots, photo counts, the model, the index and the daemon."""
    from photoindex.status import library_status

    st = library_status(_config(ctx))
    if as_json:
        _emit_json(st)
        return
    for line in st.lines():
        typer.echo(_display(line))


# ---------------------------------------------------------------- serve


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; any but loopback needs the secret."),
    port: int = typer.Option(8765, "--port", min=0, max=65535, help="Port (0: any free one)."),
    open_browser: bool = typer.Option(False, "--open", help="Open the page in the default browser."),
) -> None:
    """Serve the search page: type or drop a photo, see thumbnails (http://127.0.0.1:8765/)."""
    try:
        from photoindex.web.server import serve as serve_page
    except ImportError as exc:
        raise PhotoindexError(
            f"the web page needs the `web` extra ({exc.name} is not installed)", "pip install 'photoindex[web]'"
        ) from None

    def ready(listening: Any) -> None:
        typer.echo(f"serving {listening.url}  (Ctrl-C stops)", err=True)
        if listening.login:
            where = listening.secret_file or "[web] secret in config.toml"
            typer.echo(f"off loopback: browsers log in with the secret in {where}", err=True)
        if open_browser:
            import webbrowser

            webbrowser.open(listening.url)

    serve_page(_config(ctx), host=host, port=port, on_ready=ready)
@catalog_app.command("copy")
def catalog_copy(
    ctx: typer.Context,
    to: str = typer.Option(
        ..., "--to", help="The empty catalog to fill: postgresql://USER@HOST/DB, or a SQLite file path."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Copy this catalog (photos, metadata, vectors: nothing re-encoded) into another one; see docs/scale.md."""
    from photoindex.catalog.copy import copy_catalog
    from photoindex.catalog.location import parse_location
    from photoindex.library import open_library

    cfg = _config(ctx)
    target = parse_location(to if "://" in to else f"sqlite:///{Path(to).expanduser().absolute()}", cfg.db_path)
    show = _interactive(False, as_json)

    def progress(table: str, done: int, total: int) -> None:
        if show:
            typer.echo(f"\r{table}: {done}/{total}", err=True, nl=done >= total)

    with open_library(cfg) as lib:
        report = copy_catalog(lib.db, target, progress=progress)
    if as_json:
        _emit_json(report.to_json())
        return
    rows = ", ".join(f"{n} {t}" for t, n in report.rows.items() if n)
    typer.echo(f"copied to {report.target} in {report.seconds:.1f} s: {rows or 'an empty catalog'}")
    typer.echo("to use it, set [catalog] url in config.toml (or PHOTOINDEX_CATALOG_URL)")


# ---------------------------------------------------------------- daemon


@app.command()
def daemon(ctx: typer.Context) -> None:
    """Watch the roots and index new, changed, moved and deleted photos as they happen."""
    from photoindex.daemon.loop import run_daemon

    raise typer.Exit(run_daemon(_config(ctx)))


# ---------------------------------------------------------------- doctor


@app.command()
def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """What runtime and accelerator will be used, and why; versions, limits and problems."""
    from photoindex.doctor import diagnose

    report = diagnose(_config(ctx))
    if as_json:
        _emit_json(report)
    else:
        for line in report.lines():
            typer.echo(_display(line))
    if not report.ok:
        raise typer.Exit(EXIT_ERROR)


# ---------------------------------------------------------------- models


def _bytes_progress(enabled: bool) -> Any:
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def update(name: str, done: int, total: int | None) -> None:
        if not tasks:
            bar.start()
        if name not in tasks:
            tasks[name] = bar.add_task(name, total=total)
        bar.update(tasks[name], completed=done, total=total)

    update.stop = bar.stop  # type: ignore[attr-defined]
    return update


def _render_checks(checks: list[Any]) -> bool:
    ok = True
    for c in checks:
        if c.ok and not c.present:  # an optional file (an NPU model) that is not there: fine, but not "ok"
            mark, note = "--", "  absent (optional)"
        else:
            mark = "ok" if c.ok else "FAIL"
            note = f"  {c.problem}" if c.problem else ""
        typer.echo(f"{mark:4}  {c.file.role:10} {c.path}{note}")
        ok = ok and c.ok
    return ok


@models_app.command("list")
def models_list(ctx: typer.Context, as_json: bool = typer.Option(False, "--json")) -> None:
    """The bundles photoindex knows, and which one is configured."""
    from photoindex.library import list_bundles

    cfg = _config(ctx)
    rows = list_bundles(cfg)
    if as_json:
        _emit_json(rows)
        return
    for r in rows:
        mark = "*" if r.configured else " "
        state = "ready" if r.present else "not fetched"
        typer.echo(f"{mark} {r.name:24} {r.embedding_dim:4}-d  {r.tokenizer:12} {state:12} {r.title}")


@models_app.command("verify")
def models_verify(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Bundle name or folder (default: the configured one)."),
) -> None:
    """Check that a bundle's files are present and match their sha256."""
    from photoindex.inference.download import verify_bundle
    from photoindex.library import bundle_for

    cfg = _config(ctx)
    bundle = bundle_for(cfg, name)
    if not _render_checks(verify_bundle(bundle, progress=None)):
        from photoindex.inference.download import missing_files_hint

        raise PhotoindexError(f"bundle {bundle.manifest.name} is not complete", missing_files_hint(bundle))
    typer.echo(f"bundle {bundle.manifest.name} verified in {bundle.directory}")


@models_app.command("fetch")
def models_fetch(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Bundle name (default: the configured one)."),
    source: str | None = typer.Option(None, "--from", help="A base URL or a local folder holding the files."),
    optional: bool = typer.Option(False, "--all", help="Also fetch optional files (e.g. the .axmodel)."),
) -> None:
    """Download a bundle's files (resumable, sha256-checked, placed atomically)."""
    from photoindex.inference.download import fetch_bundle
    from photoindex.library import bundle_for

    cfg = _config(ctx)
    bundle = bundle_for(cfg, name)
    progress = _bytes_progress(sys.stderr.isatty())
    try:
        checks = fetch_bundle(bundle, source, progress=progress, include_optional=optional)
    finally:
        if progress is not None:
            progress.stop()
    _render_checks(checks)
    typer.echo(f"bundle {bundle.manifest.name} ready in {bundle.directory}")


@models_app.command("quantize")
def models_quantize(
    ctx: typer.Context,
    name: str | None = typer.Argument(None, help="Bundle name or folder (default: the configured one)."),
    out: Path | None = typer.Option(None, "--out", help="Folder to write (default: NAME-int8 beside the bundle)."),
    text: bool = typer.Option(
        False, "--text", help="Also quantize the text encoder: a quarter of its memory, but slower on short queries."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the output folder if it exists."),
) -> None:
    """Write an int8 variant of a bundle (dynamic quantization of its ONNX encoders) as a new bundle."""
    from photoindex.inference.quantize import quantize_bundle
    from photoindex.library import bundle_for

    bundle = bundle_for(_config(ctx), name)
    folder = quantize_bundle(bundle, out, text=text, overwrite=force)
    typer.echo(f"bundle {bundle.manifest.name}-int8 written to {folder}")
    typer.echo(f'use it with PHOTOINDEX_MODEL_BUNDLE={folder}, or `bundle = "{folder}"` under [model] in config.toml')


