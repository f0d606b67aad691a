"""`photoindex search` answered by the running daemon, before the Typer app is even built.

A served search is worth having only if the command around it is quick too: importing Typer and
Click and building the app costs more than the daemon's answer. So the entry point (`cli.main`)
hands a plain `search` here first. It reads the options the daemon can take (a text, the page, the
order, the filters, `--json`, `-f/--paths`), sends them, and prints the hits as the full command
does, warning about photos the model has not encoded yet from the daemon's own count: the catalog
is never opened, and nothing heavier than the standard library is imported for piped output
(docs/daemon.md, "Searches served by the daemon").

Anything else returns None and the full command runs as if this module did not exist: another
option or a form it does not know (`--image`, `--words`, `--sheet`, `-p`, `--help`, `--opt=`,
`--`), a value the full command would refuse, no daemon, a declined request, a daemon that does not
send its count, or a configuration that does not load (the full command reports it). No hits
are explained from the catalog, as the full command does.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from photoindex.errors import PhotoindexError

if TYPE_CHECKING:
    from photoindex.config import Config
    from photoindex.search.client import Served
    from photoindex.search.protocol import SearchRequest

# The options this path reads: name -> (destination, takes a value). Short forms as in `cli.app.search`.
_OPTIONS: dict[str, tuple[str, bool]] = {
    "--limit": ("limit", True),
    "-n": ("limit", True),
    "--offset": ("offset", True),
    "--min-score": ("min_score", True),
    "--sort": ("sort", True),
    "--folder": ("folder", True),
    "--after": ("after", True),
    "--before": ("before", True),
    "--camera": ("camera", True),
    "--place": ("place", True),
    "--near": ("near", True),
    "--type": ("types", True),
    "--json": ("as_json", False),
    "--paths": ("paths_only", False),
    "-f": ("paths_only", False),
}


def parse(args: Sequence[str]) -> dict[str, Any] | None:
    """The options of `photoindex search ARGS` when this path can take them all, else None.

    Values are checked as the full command checks them (a whole number of at least 1 for
    `--limit`...); a value it would refuse gives None, so the full command prints its usage error.
    """
    found: dict[str, Any] = {"types": []}
    texts: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            texts.append(arg)
            i += 1
            continue
        option = _OPTIONS.get(arg)
        if option is None:
            return None
        name, takes_value = option
        if not takes_value:
            found[name] = True
            i += 1
            continue
        if i + 1 >= len(args):
            return None
        value = args[i + 1]
        if name == "types":
            found["types"].append(value)
        elif name in found:
            return None  # given twice: leave the rule to the full command
        else:
            found[name] = value
        i += 2
    if len(texts) != 1 or not texts[0].strip():
        return None
    found["text"] = texts[0]
    try:
        if "limit" in found:
            found["limit"] = int(found["limit"])
            if found["limit"] < 1:
                return None
        if "offset" in found:
            found["offset"] = int(found["offset"])
            if found["offset"] < 0:
                return None
        if "min_score" in found:
            found["min_score"] = float(found["min_score"])
    except ValueError:
        return None
    return found


def search(args: Sequence[str]) -> int | None:
    """Print the daemon's answer to `photoindex search ARGS` and return the exit code; None: run the full command."""
    options = parse(args)
    if options is None:
        return None
    from photoindex.cli import render

    render.log_to_stderr()
    try:
        asked = _ask(options)
    except PhotoindexError as exc:  # the daemon's search refused the request: its own error and hint
        print(f"error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"hint: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    if asked is None:
        return None
    cfg, request, served = asked
    if served.not_encoded is None:
        return None  # a daemon from before the count: the full command counts in the catalog
    render.not_encoded_warning(*served.not_encoded)
    if options.get("as_json"):
        render.json_document([h.to_json() for h in served.hits])
    elif not served.hits:
        from photoindex.search.query import why_no_hits  # the catalog says why (rare: worth its imports)

        why, hint = why_no_hits(cfg, request)
        print(f"no matching photos: {render.display(why)}", file=sys.stderr)
        print(f"hint: {render.display(hint)}", file=sys.stderr)
    elif options.get("paths_only") or not sys.stdout.isatty():
        render.hits_lines(served.hits, paths_only=bool(options.get("paths_only")))
    else:
        render.hits_table(served.hits)
    return 0


def _ask(options: dict[str, Any]) -> tuple[Config, SearchRequest, Served] | None:
    """(config, request, the daemon's answer), or None: no daemon, or something only the full command may report."""

    from photoindex.config import load_config
    from photoindex.library import bundle_for
    from photoindex.search.client import serve_request
    from photoindex.search.filters import Filters
    from photoindex.search.protocol import SearchRequest

    try:
        filters = Filters.from_options(
            folder=options.get("folder"),  # a str: Path("") would be ".", and --folder '' is an error
            after=options.get("after"),
            before=options.get("before"),
            camera=options.get("camera"),
            place=options.get("place"),
            near=options.get("near"),
            types=options["types"],
        )
        cfg = load_config()
        if not cfg.search.use_daemon:
            return None
        request = SearchRequest.build(
            text=options["text"],
            limit=options.get("limit", cfg.search.limit),
            offset=options.get("offset", 0),
            min_score=options.get("min_score", cfg.search.min_score),
            sort=options.get("sort", "score"),
            filters=filters,
        )
        model_id = bundle_for(cfg).manifest.model_id  # one manifest read: no model is loaded
    except PhotoindexError:
        return None  # the full command reports it, with the same words as always
    served = serve_request(cfg.home, request, model_id)
    return None if served is None else (cfg, request, served)
