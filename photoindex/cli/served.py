"""`photoindex search` answered before the Typer app is even built: by the running daemon, or here.

A served search is worth having only if the command around it is quick too: importing Typer and
Click, the configuration's and the search's modules costs more than the daemon's answer. So the
entry point (`cli.main`) hands a plain `search` here first. It reads the options the daemon can
take (a text, the page, the order, the filters, `--json`, `-f/--paths`) and sends them with its
working folder and `PHOTOINDEX_*` variables; the daemon loads the configuration for this caller,
searches, and sends the hits, its count of photos not encoded yet and, when there are none, why
(docs/daemon.md, "Searches served by the daemon"). Until then this module imports the standard
library alone (os, sys, socket, json), and rich only to draw a table on a terminal.

With no daemon (or one that declines: another home, catalog or model in the caller's
configuration, the daemon turned off) the same search runs in this process, still without the
Typer app, and prints the same way (docs/architecture.md, "Start-up").

Anything else returns None and the full command runs as if this module did not exist: another
option or a form it does not know (`--image`, `--words`, `--sheet`, `-p`, `--help`, `--opt=`,
`--`), a value the option parser would refuse, or a daemon that does not send its count.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing itself is not imported on this path
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from photoindex.config import Config

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
    """Print the answer to `photoindex search ARGS` and return the exit code; None: run the full command.

    The daemon answers if it runs and takes the request; else the search runs in this process,
    still without the Typer app.
    """
    options = parse(args)
    if options is None:
        return None
    output = {k: options.pop(k, False) for k in ("as_json", "paths_only")}
    if "folder" in options and options["folder"].strip():
        options["folder"] = os.path.realpath(os.path.expanduser(options["folder"]))  # as `resolve_folder` reads it
    if not options["types"]:
        del options["types"]
    try:
        cwd = os.getcwd()
    except OSError:  # run from a folder deleted since: the full command copes
        return None
    answer = _ask_daemon(options, cwd)
    if answer is None:
        answer = _search_here(options, cwd)
        if answer is None:
            return None
    if isinstance(answer.get("error"), str):  # the search refused the request: its own error and hint
        print(f"error: {answer['error']}", file=sys.stderr)
        if isinstance(answer.get("hint"), str):
            print(f"hint: {answer['hint']}", file=sys.stderr)
        code = answer.get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) and 0 < code < 126 else 1
    from photoindex.cli import render

    hits, counted = answer["hits"], answer["not_encoded"]
    render.not_encoded_warning(str(counted.get("model")), counted["photos"])
    if output["as_json"]:
        render.json_document(hits)
    elif not hits:
        said = answer.get("no_hits")
        why: dict[str, Any] = said if isinstance(said, dict) else {}
        print(f"no matching photos: {render.display(str(why.get('why')))}", file=sys.stderr)
        print(f"hint: {render.display(str(why.get('hint')))}", file=sys.stderr)
    else:
        shown = [render.ShownHit.of(h) for h in hits]
        if output["paths_only"] or not sys.stdout.isatty():
            render.hits_lines(shown, paths_only=bool(output["paths_only"]))
        else:
            render.hits_table(shown)
    return 0


def _ask_daemon(options: dict[str, Any], cwd: str) -> dict[str, Any] | None:
    """The running daemon's reply, if one runs and takes the request (`QueryServer.answer_command`)."""
    home = _home()
    if home is None or not _daemon_wanted(home):
        return None
    from photoindex.search import wire

    path = os.path.join(home, wire.SOCKET_NAME)
    if not os.path.exists(path):
        return None
    env = {k: v for k, v in os.environ.items() if k.startswith("PHOTOINDEX_")}
    try:
        answer = wire.exchange(path, {"cli": {"options": options, "cwd": cwd, "env": env, "home": home,
                                              "user_home": os.environ.get("HOME")}})
    except (OSError, ValueError):  # no daemon, a stale socket, a timeout, garbage: search here
        return None
    if not isinstance(answer, dict):
        return None
    if isinstance(answer.get("error"), str):
        return answer
    hits, counted = answer.get("hits"), answer.get("not_encoded")
    if not isinstance(hits, list) or not all(isinstance(h, dict) and isinstance(h.get("path"), str) for h in hits):
        return None
    if not isinstance(counted, dict) or not isinstance(counted.get("photos"), int):
        return None  # a daemon from before this protocol: the search runs here
    return answer


def _search_here(options: dict[str, Any], cwd: str) -> dict[str, Any] | None:
    """The same reply, made in this process: the full command's search without its Typer app
    (docs/architecture.md, "Start-up"); None only for options it would not take (then the full command)."""
    from photoindex.cli import render

    render.log_to_stderr()
    from photoindex.config import load_config
    from photoindex.errors import PhotoindexError
    from photoindex.search.protocol import Declined, reply_error, request_from_options
    from photoindex.search.query import command_reply, photos_not_encoded, run_search

    loaded: list[Config] = []

    def defaults() -> tuple[int, float]:  # loaded once the filters are read, as the full command does
        loaded.append(load_config())
        return loaded[0].search.limit, loaded[0].search.min_score

    try:
        request = request_from_options(options, cwd=cwd, defaults=defaults)
        cfg = loaded[0]
        hits = run_search(cfg, request)
        return command_reply(cfg, request, hits, photos_not_encoded(cfg))
    except Declined:
        return None
    except PhotoindexError as exc:
        return reply_error(exc)


def _daemon_wanted(home: str) -> bool:
    """False when this caller's `[search] use_daemon` is off, read without loading the configuration:
    its variable, else its file's key (the file is parsed only if it mentions the key). A value
    the configuration would refuse counts as off: the search here then loads it and says so."""
    value = os.environ.get("PHOTOINDEX_SEARCH_USE_DAEMON")
    if value is not None:
        return value.strip().lower() in ("1", "true", "yes", "on")  # config.py's spellings of true
    path = os.path.expanduser(os.environ.get("PHOTOINDEX_CONFIG") or os.path.join(home, "config.toml"))
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError:
        return True  # no file: the default (on); an unreadable one: the daemon's load says so
    if b"use_daemon" not in raw:
        return True
    import tomllib

    try:
        section = tomllib.loads(raw.decode("utf-8")).get("search")
    except (ValueError, UnicodeDecodeError):
        return False
    return not isinstance(section, dict) or section.get("use_daemon", True) is True


def _home() -> str | None:
    """The photoindex home this command would use (`config.default_home`), or None if it cannot say."""
    home = os.environ.get("PHOTOINDEX_HOME")
    if not home:
        try:
            from platformdirs import user_data_dir
        except ImportError:
            return None
        home = user_data_dir("photoindex", appauthor=False)
    return os.path.abspath(os.path.expanduser(home))
