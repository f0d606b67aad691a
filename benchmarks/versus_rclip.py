"""`python -m benchmarks.versus_rclip`: photoindex against rclip 4.0.8 on rclip's own model, one run.

Both tools get the very same ONNX files (open_clip ViT-B-32-256 as rclip's convert script exports
it, random weights: `benchmarks/peer/make_random_model.py`) and the same synthetic 12 MP JPEGs.
Every timed command runs offline (`unshare -n` where allowed) on a fresh home, A/B interleaved
(the order flips every round, so a busy moment of the shared machine hits each tool alike). Timed
runs are not sampled: their wall time and the exact CPU time of their whole process tree come from
`benchmarks.memory.exact_run`. Peak memory comes from separate runs of the same commands whose
process tree is sampled from /proc (`--memory-rounds`, `benchmarks/memory.py`): sampling takes ~17%
of a core from the command it watches, so those runs are not timed.

Measured: indexing (rclip, photoindex fp32 and int8, fresh homes: the fast model copies are made
in the run), the first search after indexing, cold searches, searches served by the daemon,
decoding alone against indexing with the NPU stand-in, and the stored vectors of both tools.

Set-up (cached under --cache, default ~/.cache/photoindex-peers): a Python 3.12 venv with
`pip install rclip==4.0.8`; a Python 3.11 venv with torch (for the export) and open_clip's model
code from its wheel; the photos. Where rclip cannot be installed its rows are left out and the
report says why. Results: benchmarks/out/versus_rclip.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.memory import TreeSampler, exact_run  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PEER = HERE / "peer"
RCLIP_VERSION = "4.0.8"
MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # where rclip looks for its model (rclip/model_download.py)
LEGAL_FILES = ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md")
QUERY = "a dog playing on the beach at sunset"
DAEMON_QUERIES = (  # as long as QUERY in tokens, each new to the daemon
    "a cat sleeping on the sofa at noon", "a boat sailing on the lake at dawn",
    "a child running in the park at dusk", "a bird sitting on the fence at night",
    "a horse grazing in the field at sunrise", "a car parked on the street in winter",
    "a girl reading in the garden in spring", "a train crossing the bridge in autumn",
)


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _python(version: str) -> str | None:
    """An interpreter of `version` (e.g. "3.12"): on PATH, under pyenv, or in /usr/bin."""
    candidates = [shutil.which(f"python{version}")]
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates += sorted(str(p / "bin" / "python3") for p in pyenv.glob(f"{version}*"))
    for c in candidates:
        if not c:
            continue
        probe = subprocess.run([c, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return c
    return None


def _pip(venv: Path, *args: str) -> None:
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *args], check=True)


def _venv(path: Path, python: str) -> None:
    if not (path / "bin" / "python").exists():
        subprocess.run([python, "-m", "venv", str(path)], check=True)


# --- inputs: rclip, the model, the photos, the bundles ----------------------------------------


def setup_rclip(cache: Path) -> tuple[Path | None, str]:
    """rclip's venv (Python 3.12 or 3.13: rclip 4.x needs them); (None, why) when it cannot be made."""
    venv = cache / "rclipenv"
    rclip = venv / "bin" / "rclip"
    try:
        done = subprocess.run([str(rclip), "--version"], capture_output=True, text=True)
        if done.returncode == 0 and done.stdout.strip() == f"rclip {RCLIP_VERSION}":
            return venv, ""
    except OSError:
        pass
    python = _python("3.12") or _python("3.13")
    if python is None:
        return None, f"rclip {RCLIP_VERSION} needs Python 3.12 or 3.13, and neither is installed"
    try:
        shutil.rmtree(venv, ignore_errors=True)
        _venv(venv, python)
        _pip(venv, f"rclip=={RCLIP_VERSION}")
    except (subprocess.CalledProcessError, OSError) as exc:
        return None, f"pip install rclip=={RCLIP_VERSION} failed ({exc})"
    return venv, ""


def setup_model(cache: Path, helper_venv: Path | None) -> Path:
    """rclip's data folder with the random-weight model (exported once) and the real BPE vocabulary."""
    datadir = cache / "rclipdata"
    model = datadir / MODEL_SUBDIR
    if (model / "visual.onnx").is_file() and (model / "textual.onnx").is_file() \
            and (datadir / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz").is_file():
        return datadir
    export = cache / "rclip_export_env"
    if subprocess.run([str(export / "bin" / "python"), "-c", "import torch, onnx"], capture_output=True).returncode:
        python = _python("3.11")
        if python is None:
            raise SystemExit("the model export needs Python 3.11 (torch's wheel); none found")
        shutil.rmtree(export, ignore_errors=True)
        _venv(export, python)
        _pip(export, "torch==2.13.0", "numpy", "onnx")
    src = cache / "rclip_work" / "open_clip_src"
    if not (src / "open_clip" / "model.py").is_file():
        dl = cache / "rclip_work" / "dl"
        pip = (helper_venv / "bin" / "pip") if helper_venv else Path(sys.executable).with_name("pip")
        subprocess.run([str(pip), "download", "-q", "--no-deps", "open_clip_torch==3.3.0", "-d", str(dl)], check=True)
        wheel = next(dl.glob("open_clip_torch-3.3.0-*.whl"))
        subprocess.run([sys.executable, "-m", "zipfile", "-e", str(wheel), str(src)], check=True)
    say("exporting the random-weight ViT-B-32-256 (torch, a few minutes)")
    subprocess.run([str(export / "bin" / "python"), "-W", "ignore", str(PEER / "make_random_model.py"), str(src),
                    str(datadir)], check=True)
    return datadir


def setup_photos(cache: Path, count: int) -> Path:
    """`count` distinct 4000x3000 JPEGs (q90), made once."""
    photos = cache / "rclip_photos"
    subprocess.run([sys.executable, str(PEER / "gen_photos.py"), str(photos), "0", str(count), "4000", "3000"],
                   check=True, capture_output=True)
    return photos


def setup_bundles(work: Path, datadir: Path) -> tuple[Path, Path]:
    """photoindex bundles on rclip's very files: fp32 (the shipped manifest + links) and its int8 variant."""
    from photoindex.inference.bundle import resolve_bundle
    from photoindex.inference.quantize import quantize_bundle

    fp32 = work / "bundle-fp32"
    fp32.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "models" / "openclip-vit-b32-256.toml", fp32 / "manifest.toml")
    for name in ("visual.onnx", "textual.onnx"):
        link = fp32 / name
        if not link.exists():
            link.symlink_to(datadir / MODEL_SUBDIR / name)
    int8 = work / "bundle-int8"
    source = datadir / MODEL_SUBDIR / "visual.onnx"
    text = datadir / MODEL_SUBDIR / "textual.onnx"
    # The image encoder only, as `photoindex models quantize` does by default: the fp32 text model
    # run on a query's own tokens is cheaper than an int8 one run padded (docs/search.md, "Query text").
    if (
        not (int8 / "visual.onnx").is_file()
        or (int8 / "visual.onnx").stat().st_mtime < source.stat().st_mtime
        or not (int8 / "textual.onnx").is_file()
        or (int8 / "textual.onnx").stat().st_size != text.stat().st_size
    ):
        quantize_bundle(resolve_bundle(str(fp32), work / "models"), int8, text=False, overwrite=True)
    return fp32, int8


# --- running one command ---------------------------------------------------------------------


@dataclass
class Run:
    """One command: wall seconds and whole-tree CPU seconds (exact), or peak memory (`sampled`)."""

    tool: str
    what: str
    wall: float
    cpu: float
    rss_mib: float
    pss_mib: float
    processes: int
    load: float
    sampled: bool = False  # a memory run: rss/pss are its peaks, its wall and CPU are not figures

    @property
    def cpu_percent(self) -> float:
        """Whole-tree CPU use over the command, 100% = one core."""
        return 100.0 * self.cpu / self.wall if self.wall else 0.0


def _offline() -> list[str]:
    try:
        ok = subprocess.run(["unshare", "-n", "true"], capture_output=True).returncode == 0
    except OSError:
        ok = False
    return ["unshare", "-n"] if ok else []


OFFLINE = _offline()


def timed(tool: str, what: str, args: list[str], env: dict[str, str], cwd: Path | None = None, *,
          memory: bool = False) -> tuple[Run, str]:
    """Run `args` offline; (the run, its stdout). Timed unsampled (wall and exact whole-tree CPU), or,
    with `memory`, its process tree sampled for peak RSS and PSS (and its time not to be quoted)."""
    load = os.getloadavg()[0]
    if not memory:
        r = exact_run([*OFFLINE, *args], env, cwd)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} {what}: {' '.join(args)} exited {r.returncode}:\n{r.stderr[-3000:]}")
        if not r.exact:
            say(f"  ({tool} {what}: no child subreaper here, so orphaned processes' CPU is not counted)")
        return Run(tool, what, r.wall, r.cpu_seconds, 0.0, 0.0, 0, load), r.stdout
    start = time.perf_counter()
    proc = subprocess.Popen([*OFFLINE, *args], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    with TreeSampler(proc.pid, interval=0.05) as sampler:
        out, err = proc.communicate(timeout=1800)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} {what}: {' '.join(args)} exited {proc.returncode}:\n{err[-3000:]}")
    p = sampler.peak
    return Run(tool, what, wall, p.cpu_seconds, p.rss_mib, p.pss_mib, p.processes, load, sampled=True), out


def photoindex_cmd() -> list[str]:
    script = Path(sys.executable).with_name("photoindex")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "photoindex"]


def pi_env(home: Path, bundle: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    # rclip reads no text in photos, so the comparison indexes CLIP vectors only: OCR is off here
    # even where the `ocr` extra is installed (benchmarks/ocr.py measures what reading costs).
    env.update(PHOTOINDEX_HOME=str(home), PHOTOINDEX_MODEL_BUNDLE=str(bundle), PHOTOINDEX_OCR_ENABLED="false")
    return env


def rclip_datadir(path: Path, datadir: Path) -> Path:
    """A fresh rclip data folder (no index) whose model files are the shared ones, linked."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    (path / MODEL_SUBDIR).symlink_to(datadir / MODEL_SUBDIR)
    (path / "tokenizer").symlink_to(datadir / "tokenizer")
    for name in LEGAL_FILES:
        (path / name).symlink_to(datadir / name)
    return path


def rclip_env(datadir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "RCLIP_DATADIR": str(datadir)}


# --- the measurements ------------------------------------------------------------------------


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def index_rounds(rounds: int, tools: dict[str, Any], memory_rounds: int = 1) -> list[Run]:
    """Each tool indexes the photos from nothing, `rounds` timed times, order flipped every round; then
    `memory_rounds` more times with its process tree sampled for the peak memory (`Run.sampled`)."""
    runs: list[Run] = []
    names = list(tools)
    for r in range(rounds + memory_rounds):
        memory = r >= rounds
        for name in names if r % 2 == 0 else names[::-1]:
            run = tools[name](r, memory=memory)
            runs.append(run)
            if memory:
                say(f"  index {name:6} memory run: tree peak RSS {run.rss_mib:5.0f} MiB, PSS {run.pss_mib:5.0f} MiB")
            else:
                say(f"  index {name:6} round {r + 1}: {run.wall:6.2f} s, CPU {run.cpu:5.1f} s = "
                    f"{run.cpu_percent:4.0f}%, load {run.load:.1f}")
    return runs


def daemon_searches(bundle: Path, home: Path, reps: int) -> list[Run]:
    """`photoindex search` while `photoindex daemon` runs on `home` (started here, stopped after)."""
    from photoindex.library import TEXT_READY

    env = pi_env(home, bundle)
    log = open(home / "bench-daemon.log", "w")
    daemon = subprocess.Popen([*OFFLINE, *photoindex_cmd(), "daemon"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                state = json.loads((home / "daemon.json").read_text())
                if state.get("state") == "idle" and state.get("serving") and \
                        TEXT_READY in (home / "bench-daemon.log").read_text(errors="replace"):
                    break  # a warm daemon: its text model loaded (photoindex/daemon/loop.py)
            except (OSError, ValueError):
                pass
            if daemon.poll() is not None:
                raise RuntimeError(f"the daemon exited: {(home / 'bench-daemon.log').read_text()[-2000:]}")
            time.sleep(0.2)
        else:
            raise RuntimeError("the daemon did not start serving within 300 s")
        # A text new to the daemon every time: it keeps its last queries' vectors, and a repeated
        # text would time the socket alone, not the text model.
        return [timed("photoindex", "daemon search",
                      [*photoindex_cmd(), "search", DAEMON_QUERIES[r % len(DAEMON_QUERIES)], "--limit", "10"], env)[0]
                for r in range(reps)]
    finally:
        daemon.terminate()
        daemon.wait(60)
        log.close()


def _floor_script(home: Path, bundle: Path) -> str:
    """A script that does only what a one-shot search cannot skip (see `main`'s search stage)."""
    import numpy as np

    from photoindex.config import load_config
    from photoindex.inference.bundle import resolve_bundle
    from photoindex.inference.tokenizers import load_tokenizer

    cfg = load_config(environ=pi_env(home, bundle), home=home)
    manifest = resolve_bundle(str(bundle), cfg.runtime.model_cache_dir).manifest
    ids = load_tokenizer(manifest.text.tokenizer, manifest.text.context_length)([QUERY])[0]
    used = [int(i) for i in ids[: int(np.flatnonzero(ids)[-1]) + 1]]
    (short,) = (cfg.runtime.model_cache_dir or home).glob("textual-*/model.short.onnx")
    return (
        "import numpy as np, onnxruntime as ort\n"
        "o = ort.SessionOptions(); o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL\n"
        "o.add_session_config_entry('session.disable_prepacking', '1')\n"
        f"s = ort.InferenceSession({str(short)!r}, o, providers=['CPUExecutionProvider'])\n"
        "i = s.get_inputs()[0]\n"
        f"s.run(None, {{i.name: np.array([{used}], dtype=np.int64 if 'int64' in i.type else np.int32)}})\n"
    )


def fidelity(rclip_db: Path | None, pi_db: Path, model_id: str, int8_db: Path, int8_id: str) -> dict[str, Any]:
    """Cosine between the tools' stored image vectors of the same photos (and int8 against fp32)."""
    import numpy as np

    def pi(db: Path, mid: str) -> dict[str, Any]:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        rows = con.execute("SELECT p.path, v.vector, v.dim FROM photos p JOIN vectors v ON v.content_hash ="
                           " p.content_hash AND v.model_id = ? WHERE p.status = 'indexed'", (mid,)).fetchall()
        return {p: np.frombuffer(v, dtype="<f4", count=d) for p, v, d in rows}

    def cos(a: Any, b: Any) -> float:
        return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))

    out: dict[str, Any] = {}
    mine, int8 = pi(pi_db, model_id), pi(int8_db, int8_id)
    c8 = [cos(mine[p], int8[p]) for p in mine.keys() & int8.keys()]
    out["int8_vs_fp32"] = {"n": len(c8), "min": min(c8), "mean": float(np.mean(c8))}
    if rclip_db is not None:
        con = sqlite3.connect(f"file:{rclip_db}?mode=ro", uri=True)
        theirs = {p: np.frombuffer(v, dtype=np.float32) for p, v in
                  con.execute("SELECT filepath, vector FROM images WHERE deleted IS NULL")}
        cr = [cos(mine[p], theirs[p]) for p in mine.keys() & theirs.keys()]
        out["photoindex_vs_rclip"] = {"n": len(cr), "min": min(cr), "mean": float(np.mean(cr))}
    return out


# The NPU stage's sides: decoding alone (the indexer's DecodePool, thumbnails as the indexer makes
# them or none) and indexing with the NPU stand-in (thumbnails made while indexing, or not).
NPU_SIDES = ("decode", "decode-thumbs", "npu", "npu-nothumbs")


def npu_vs_decode(photos: Path, bundle: Path, work: Path, rounds: int,
                  sides: tuple[str, ...] = NPU_SIDES) -> tuple[dict[str, Any], dict[str, float]]:
    """Decoding alone (the indexer's DecodePool) against indexing with the NPU stand-in, interleaved
    (the order turns every round), each in its own process so the whole tree's memory is its own.
    The rounds are unsampled; one more run of the NPU side, its tree sampled, gives the peak memory:
    (the rounds' results by side, {"rss_mib", "pss_mib"})."""
    runs: dict[str, list[dict[str, Any]]] = {what: [] for what in sides}

    def child(what: str, r: int, memory: bool) -> tuple[Run, dict[str, Any]]:
        out = work / f"npu-{what}-{r}.json"
        run, _ = timed("photoindex", what, [sys.executable, "-m", "benchmarks.versus_rclip", "--child", what,
                                            str(photos), str(bundle), str(work / f"home-npu-{r}"), str(out)],
                       {**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO, memory=memory)
        return run, json.loads(out.read_text())

    for r in range(rounds):
        k = r % len(sides)
        for what in sides[k:] + sides[:k]:
            run, result = child(what, r, memory=False)
            result.update(wall=run.wall, cpu_s=run.cpu, load=run.load)
            runs[what].append(result)
            say(f"  {what:13} round {r + 1}: {result['rate']:.1f} photos/s, "
                f"{1000 * (result.get('window_cpu_per_photo') or 0):.1f} CPU ms per photo "
                f"({1000 * (result.get('own_cpu_per_photo') or 0):.1f} in the main process), "
                f"CPU {run.cpu:.1f} s, load {run.load:.1f}")
    run, _ = child("npu", rounds, memory=True)
    say(f"  npu memory run: tree peak RSS {run.rss_mib:.0f} MiB, PSS {run.pss_mib:.0f} MiB")
    return runs, {"rss_mib": run.rss_mib, "pss_mib": run.pss_mib}


def _child(what: str, photos: Path, bundle: Path, home: Path, out: Path) -> None:
    """One side of `npu_vs_decode`, in this process: its rate goes to `out` as JSON."""
    from benchmarks import pipeline, stages
    from photoindex.config import load_config
    from photoindex.inference.bundle import resolve_bundle
    from photoindex.photos.thumbnails import ThumbnailStore

    workers = os.cpu_count() or 1
    config = load_config(environ={}, home=home)
    if what.startswith("decode"):
        paths = sorted(photos.glob("*.jpg"))
        spec = resolve_bundle(str(bundle), home / "models").manifest.image
        thumbnails = None
        if what == "decode-thumbs":  # written to a fresh cache, as the indexer's workers do
            shutil.rmtree(home / "decode-thumbnails", ignore_errors=True)
            thumbnails = ThumbnailStore(home / "decode-thumbnails", size=config.thumbnails.size)
        rate, cpu, own = stages.decodepool_pass(paths, spec, workers, config.scan.max_image_pixels, thumbnails)
        n = len(paths)
    else:
        thumbs = "false" if what == "npu-nothumbs" else "true"
        run = pipeline.npu_index(photos, home, bundle, workers, 16, thumbnails_while_indexing=thumbs)
        rate, cpu, own, n = run.rate, run.cpu_seconds, run.own_cpu_seconds, run.encoded
    # The measured stretch's CPU seconds per photo, the whole tree's (what the load disturbs least) and the
    # indexing process's own (its feeder, commits and the rest: what it takes from the decode workers).
    out.write_text(json.dumps({"rate": rate, "window_cpu_per_photo": cpu / n if n else None,
                               "own_cpu_per_photo": own / n if n else None}))


# --- the report ------------------------------------------------------------------------------


def _fmt_runs(runs: list[Run], memory: list[Run] | None = None) -> dict[str, float]:
    """Medians of timed runs; the peak memory of `memory`'s sampled runs (0 when there are none)."""
    out = {"wall": _median([r.wall for r in runs]), "cpu_percent": _median([r.cpu_percent for r in runs]),
           "cpu_s": _median([r.cpu for r in runs])}
    if memory:
        out.update(rss_max=max(r.rss_mib for r in memory), pss_max=max(r.pss_mib for r in memory))
    return out


def report(results: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    m, n = results["machine"], results["photos"]
    idx = results["index"]
    lines = [
        "# photoindex against rclip on rclip's own model",
        "",
        f"{m['when']} · {m['cpu']} · {m['cores']} cores (load average at start "
        f"{m['load'][0]:.1f}) · onnxruntime {m['onnxruntime']} · "
        f"rclip {results['rclip'] or 'not run: ' + results['rclip_why']}",
        "",
        f"Model: open_clip ViT-B-32-256 exported as rclip's convert script does (`visual.onnx` 256x256 fp32, "
        f"`textual.onnx`), random weights, the same files for both tools. Photos: {n} synthetic 4000x3000 JPEGs "
        f"(q90). Command: `python -m benchmarks.versus_rclip --photos {n} --rounds {results['rounds']}`. Every "
        "command offline, on a fresh home, A/B interleaved. Times and CPU: unsampled runs, the exact CPU of the "
        "whole process tree (`benchmarks.memory.exact_run`). Peak memory: separate runs whose process tree is "
        "sampled (not timed). Compare tools within this run, not with other runs: this machine's speed drifts.",
        "",
        "## Indexing from nothing (whole command, medians)",
        "",
        "| tool | seconds | photos/s | vs rclip | CPU s per photo (vs rclip) | CPU use (2 cores = 200%) "
        "| peak RSS tree | peak PSS tree |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = idx.get("rclip", {}).get("wall")
    base_cpu = idx.get("rclip", {}).get("cpu_s")
    for tool, label in (("rclip", "rclip -f -t 10 QUERY (index + one query)"), ("pi32", "photoindex index, fp32"),
                        ("pi8", "photoindex index, int8")):
        if tool not in idx:
            continue
        s = idx[tool]
        ratio = f"{base / s['wall']:.2f}x" if base else ""
        cpu = f"{s['cpu_s'] / n:.3f}" + (f" ({base_cpu / s['cpu_s']:.2f}x)" if base_cpu else "")
        lines.append(f"| {label} | {s['wall']:.2f} | {n / s['wall']:.1f} | {ratio} | {cpu} | "
                     f"{s['cpu_percent']:.0f}% | {s.get('rss_max', 0):.0f} MiB | {s.get('pss_max', 0):.0f} MiB |")
    per_round = results.get("index_ratio_per_round", {})
    if per_round:
        lines += ["", "Per-round ratios (each round's runs back to back): " + "; ".join(
            f"{k}: {', '.join(f'{x:.2f}x' for x in v)}" for k, v in per_round.items()) + "."]
    s = results["search"]
    lines += ["", "## Searching (whole command, medians)", "", "| what | seconds | CPU s |", "|---|---|---|"]
    for key, label in (("python", "the interpreter alone: python -c pass"),
                       ("floor", "the floor: import numpy + onnxruntime, load the text model, run it once"),
                       ("first_pi32", "photoindex search, first after indexing (fp32)"),
                       ("rclip", "rclip -n -f -t 10 QUERY (no re-scan)"), ("pi32", "photoindex search, cold, fp32"),
                       ("pi8", "photoindex search, cold, int8"),
                       ("daemon_pi32", "photoindex search served by the daemon, fp32"),
                       ("daemon_pi8", "photoindex search served by the daemon, int8")):
        if key in s:
            lines.append(f"| {label} | {s[key]['wall']:.3f} | {s[key]['cpu_s']:.3f} |")
    f = results["fidelity"]
    lines += ["", "## Same vectors", ""]
    if "photoindex_vs_rclip" in f:
        v = f["photoindex_vs_rclip"]
        lines.append(f"- photoindex fp32 vs rclip, stored image vectors of the same {v['n']} photos: cosine min "
                     f"{v['min']:.7f}, mean {v['mean']:.7f}.")
    v = f["int8_vs_fp32"]
    lines.append(f"- photoindex int8 vs fp32: cosine min {v['min']:.5f}, mean {v['mean']:.5f} ({v['n']} photos).")
    if "npu" in results:
        npu = results["npu"]
        d, p = _median([x["rate"] for x in npu["decode"]]), _median([x["rate"] for x in npu["npu"]])
        # Runs before the sampled memory run (2026-12-03 and earlier) carried each round's peaks.
        mem = results.get("npu_memory") or {k: max(x[k] for x in npu["npu"]) for k in ("rss_mib", "pss_mib")}
        rss, pss = mem["rss_mib"], mem["pss_mib"]
        lines += ["", "## On the board's budget (NPU stand-in, 4.2 ms per image, no CPU)", "",
                  f"Decoding alone (the indexer's decode pool, {m['cores']} workers): {d:.1f} photos/s; indexing "
                  f"with the NPU stand-in: {p:.1f} photos/s = **{p / d:.2f}** of decoding alone; whole tree peak "
                  f"RSS {rss:.0f} MiB, PSS {pss:.0f} MiB (rates: medians of {len(npu['npu'])} interleaved rounds)."]
        others = [(k, label) for k, label in (("decode-thumbs", "decoding with thumbnails (as the indexer's workers)"),
                                              ("npu-nothumbs", "NPU indexing without thumbnails")) if npu.get(k)]
        if others:
            lines += ["", "Beside them, in the same rounds: " + "; ".join(
                f"{label} {_median([x['rate'] for x in npu[k]]):.1f} photos/s "
                f"({_median([x['rate'] for x in npu[k]]) / d:.2f} of decoding alone)" for k, label in others) + "."]
        lines += _npu_cpu_lines(npu)
    return "\n".join(lines) + "\n"


def _npu_cpu_lines(npu: dict[str, Any]) -> list[str]:
    """The NPU stage's CPU per photo: with the NPU spending no CPU and decoding using both cores, the
    throughput ratio of two sides is their inverse ratio of CPU per photo; a loaded machine disturbs this
    far less than the rates."""
    cpu = {k: _median([x["window_cpu_per_photo"] for x in runs if x.get("window_cpu_per_photo")])
           for k, runs in npu.items() if any(x.get("window_cpu_per_photo") for x in runs)}
    if "decode" not in cpu or "npu" not in cpu:
        return []
    parts = [f"{k} {1000 * v:.1f} ms" for k, v in cpu.items()]
    pairs = [(a, b) for a, b in (("decode", "npu"), ("decode", "npu-nothumbs"), ("decode-thumbs", "npu"))
             if a in cpu and b in cpu]
    return ["", "CPU per photo over the measured stretch, whole process tree (medians): " + ", ".join(parts)
            + "; as CPU-bound ratios: " + ", ".join(f"{b} / {a} {cpu[a] / cpu[b]:.2f}" for a, b in pairs) + "."]


def rewrite_report(path: Path) -> None:
    """The Markdown report (beside `path`) of the results file of an earlier run."""
    results = json.loads(path.read_text())
    runs: dict[str, list[Run]] = {}
    for row in results.get("index_runs", []):
        runs.setdefault(row["tool"], []).append(Run(**row))
    if runs:
        results["index"] = {t: _fmt_runs(rs) for t, rs in runs.items()}
    path.with_suffix(".md").write_text(report(results))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--search-reps", type=int, default=5)
    ap.add_argument("--memory-rounds", type=int, default=1,
                    help="sampled runs per tool for the peak memory (not timed), after the timed rounds")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "photoindex-peers")
    ap.add_argument("--out", type=Path, default=HERE / "out")
    ap.add_argument("--no-rclip", action="store_true", help="photoindex only (rclip is not installed or run)")
    ap.add_argument("--only", default="index,search,fidelity,npu", help="comma-separated stages to run")
    ap.add_argument("--report", type=Path, metavar="JSON", help="only write the report of an earlier run's results")
    ap.add_argument("--child", nargs=5, metavar=("WHAT", "PHOTOS", "BUNDLE", "HOME", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        what, photos, bundle, home, out = args.child
        _child(what, Path(photos), Path(bundle), Path(home), Path(out))
        return
    if args.report:
        rewrite_report(args.report)
        return
    import onnxruntime

    stages_wanted = set(args.only.split(","))
    cache, out = args.cache, args.out
    work = out / "versus_rclip"
    work.mkdir(parents=True, exist_ok=True)
    say("set-up: rclip, the model, the photos, the bundles (cached)")
    venv, why = (None, "--no-rclip") if args.no_rclip else setup_rclip(cache)
    datadir = setup_model(cache, venv)
    all_photos = setup_photos(cache, args.photos)
    photos = work / "photos"  # exactly --photos of them (the cache may hold more): hard links
    shutil.rmtree(photos, ignore_errors=True)
    photos.mkdir()
    for i in range(args.photos):
        os.link(all_photos / f"IMG_{i:04d}.jpg", photos / f"IMG_{i:04d}.jpg")
    fp32, int8 = setup_bundles(work, datadir)
    state = work / "state"
    results: dict[str, Any] = {
        "machine": {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cores": os.cpu_count(),
                    "cpu": _cpu_model(), "load": os.getloadavg(), "onnxruntime": onnxruntime.__version__},
        "photos": args.photos, "rounds": args.rounds, "rclip": f"{RCLIP_VERSION}" if venv else "", "rclip_why": why,
    }

    def pi_index(tool: str, bundle: Path) -> Any:
        def go(r: int, memory: bool = False) -> Run:
            home = state / f"{tool}_r{r}"
            shutil.rmtree(home, ignore_errors=True)
            run, _ = timed(tool, "index", [*photoindex_cmd(), "index", str(photos), "--quiet"], pi_env(home, bundle),
                           memory=memory)
            if memory:
                shutil.rmtree(home, ignore_errors=True)  # ~0.6 GB of model copies, used by nothing after
            return run
        return go

    def rclip_index(r: int, memory: bool = False) -> Run:
        assert venv is not None
        d = rclip_datadir(state / f"rclip_r{r}", datadir)
        run, _ = timed("rclip", "index", [str(venv / "bin" / "rclip"), "-f", "-t", "10", QUERY], rclip_env(d),
                       cwd=photos, memory=memory)
        return run

    tools: dict[str, Any] = {}
    if venv is not None:
        tools["rclip"] = rclip_index
    tools["pi32"], tools["pi8"] = pi_index("pi32", fp32), pi_index("pi8", int8)
    last = args.rounds - 1
    if "index" in stages_wanted:
        say(f"indexing {args.photos} photos from nothing, {args.rounds} rounds interleaved")
        runs = index_rounds(args.rounds, tools, args.memory_rounds)
        by: dict[str, list[Run]] = {}
        mem: dict[str, list[Run]] = {}
        for run in runs:
            (mem if run.sampled else by).setdefault(run.tool, []).append(run)
        results["index"] = {t: _fmt_runs(rs, mem.get(t, [])) for t, rs in by.items()}
        results["index_runs"] = [asdict(r) for r in runs]
        if "rclip" in by:
            results["index_ratio_per_round"] = {
                t: [a.wall / b.wall for a, b in zip(by["rclip"], by[t], strict=True)] for t in ("pi32", "pi8")}
    if "search" in stages_wanted:
        say("searching: the first search after indexing, cold searches, daemon")
        s: dict[str, Any] = {}
        home32, home8 = state / f"pi32_r{last}", state / f"pi8_r{last}"
        first, _ = timed("pi32", "first search", [*photoindex_cmd(), "search", QUERY, "--limit", "10"],
                         pi_env(home32, fp32))
        s["first_pi32"] = _fmt_runs([first])
        cold: dict[str, list[Run]] = {}
        for r in range(args.search_reps):
            order = ["rclip", "pi32", "pi8"] if r % 2 == 0 else ["pi8", "pi32", "rclip"]
            for t in order:
                if t == "rclip":
                    if venv is None:
                        continue
                    run, _ = timed("rclip", "search", [str(venv / "bin" / "rclip"), "-n", "-f", "-t", "10", QUERY],
                                   rclip_env(state / f"rclip_r{last}"), cwd=photos)
                else:
                    home, bundle = (home32, fp32) if t == "pi32" else (home8, int8)
                    run, _ = timed(t, "search", [*photoindex_cmd(), "search", QUERY, "--limit", "10"],
                                   pi_env(home, bundle))
                cold.setdefault(t, []).append(run)
        s.update({t: _fmt_runs(rs) for t, rs in cold.items()})
        # What any Python command must pay before it can answer: the interpreter alone, and the
        # floor (numpy and ONNX Runtime imported, the same text model loaded as a one-shot search
        # loads it and run once on the query's tokens; nothing else).
        floor = _floor_script(home32, fp32)
        for key, cmd in (("python", [sys.executable, "-c", "pass"]), ("floor", [sys.executable, "-c", floor])):
            s[key] = _fmt_runs([timed("python", key, cmd, pi_env(home32, fp32))[0] for _ in range(args.search_reps)])
        for t, home, bundle in (("pi32", home32, fp32), ("pi8", home8, int8)):
            s[f"daemon_{t}"] = _fmt_runs(daemon_searches(bundle, home, args.search_reps))
        results["search"] = s
        say("  " + ", ".join(f"{k} {v['wall']:.3f} s" for k, v in s.items()))
    if "fidelity" in stages_wanted:
        rclip_db = state / f"rclip_r{last}" / "db.sqlite3" if venv is not None else None
        results["fidelity"] = fidelity(rclip_db, state / f"pi32_r{last}" / "photoindex.db", "openclip-vit-b32-256",
                                       state / f"pi8_r{last}" / "photoindex.db", "openclip-vit-b32-256-int8")
        say(f"  fidelity: {results['fidelity']}")
    if "npu" in stages_wanted:
        say("NPU stand-in against decoding alone, interleaved")
        results["npu"], results["npu_memory"] = npu, _ = npu_vs_decode(photos, fp32, work, args.rounds)
        d = _median([x["rate"] for x in npu["decode"]])
        say("  rates against decoding alone (medians): " + ", ".join(
            f"{k} {_median([x['rate'] for x in v]) / d:.2f}" for k, v in npu.items() if k != "decode"))
        for line in _npu_cpu_lines(npu)[1:]:
            say("  " + line)
    (out / "versus_rclip.json").write_text(json.dumps(results, indent=1))
    if {"index", "search", "fidelity"} <= stages_wanted:
        (out / "versus_rclip.md").write_text(report(results))
        say(f"report: {out / 'versus_rclip.md'}")


def _cpu_model() -> str:
    from benchmarks.machine import describe_machine

    return str(describe_machine().get("cpu", "?"))


if __name__ == "__main__":
    main()
