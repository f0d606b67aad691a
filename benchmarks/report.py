"""The report: acceptance targets and rclip's figures beside ours, as markdown and JSON."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# rclip measured on this same machine with a same-architecture ONNX model (issue 6).
RCLIP = {"index_rate": 11.4, "cold_search_s": 0.85, "index_peak_mib": 900.0, "search_peak_mib": 436.0}


@dataclass(frozen=True)
class Check:
    """One acceptance line: what, our figure, rclip's, the target, whether it is met."""

    what: str
    ours: str
    rclip: str
    target: str
    met: bool | None  # None: reported, no target


def _get(results: dict[str, Any], *keys: str) -> Any:
    cur: Any = results
    for k in keys:
        if not isinstance(cur, dict) or k not in cur:
            return None
        cur = cur[k]
    return cur


def _below(limit: float) -> Callable[[Any], bool]:
    return lambda v: bool(v < limit)


def checks(r: dict[str, Any]) -> list[Check]:
    """Every acceptance target of issue 6 against this run's figures (missing figures are skipped)."""
    out: list[Check] = []

    def add(what: str, value: Any, fmt: Callable[[Any], str], rclip: str, target: str,
            ok: Callable[[Any], bool] | None) -> None:
        if value is None:
            return
        out.append(Check(what, fmt(value), rclip, target, ok(value) if ok else None))

    e2e = _get(r, "end_to_end")
    if e2e:
        for name in ("cpu_fp32", "cpu_int8", "npu_standin"):
            run = e2e.get(name)
            if not run:
                continue
            add(f"indexing photos/s: {run['label']}", run["rate"], lambda v: f"{v:.1f}",
                f"{RCLIP['index_rate']}" if name.startswith("cpu") else "", "", None)
            add(f"efficiency: {run['label']} / slowest stage alone ({run['slowest_stage']})", run["efficiency"],
                lambda v: f"{v:.2f}", "", ">= 0.90", lambda v: v >= 0.9)
            if "shared_cpu_efficiency" in run:
                add(f"efficiency: {run['label']} / shared-CPU bound ({run['shared_cpu_bound']:.1f}/s)",
                    run["shared_cpu_efficiency"], lambda v: f"{v:.2f}", "", "(see notes)", None)
            if "vs_naive" in run:
                add(f"speed-up: {run['label']} / naive baseline", run["vs_naive"], lambda v: f"{v:.1f}x", "",
                    ">= 3x", lambda v: v >= 3.0)
    size = f"{_get(r, 'warm_query', 'vectors') or 0:,}"
    add(f"warm text query at {size} photos, p50", _get(r, "warm_query", "total", "p50_ms"),
        lambda v: f"{v:.1f} ms", "", "<= 50 ms", lambda v: v <= 50)
    add("cold `photoindex search`, small library (median)", _get(r, "cold_search_small", "wall", "p50_ms"),
        lambda v: f"{v / 1000:.2f} s", f"{RCLIP['cold_search_s']} s", "<= 0.5 s", lambda v: v <= 500)
    add(f"cold `photoindex search`, {size} photos (median)", _get(r, "cold_search_large", "wall", "p50_ms"),
        lambda v: f"{v / 1000:.2f} s", "", "<= 1.5 s", lambda v: v <= 1500)
    add("`photoindex --help` (median)", _get(r, "help", "p50_ms"), lambda v: f"{v / 1000:.2f} s", "", "<= 0.3 s",
        lambda v: v <= 300)
    photos = _get(r, "plan", "photos")
    memory_rows = (("index", f"indexing {photos} photos", "index_peak_mib"),
                   ("search_small", f"search, {photos} photos", "search_peak_mib"),
                   ("search", f"search, {size} photos", "search_peak_mib"))
    for key, label, rclip_key in memory_rows:
        add(f"peak memory, {label}: all processes, RSS sum", _get(r, "memory", key, "rss_mib"),
            lambda v: f"{v:.0f} MiB", f"{RCLIP[rclip_key]:.0f} MB", f"< {RCLIP[rclip_key]:.0f} MB",
            _below(RCLIP[rclip_key]))
        add(f"peak memory, {label}: all processes, PSS sum", _get(r, "memory", key, "pss_mib"),
            lambda v: f"{v:.0f} MiB", "", "", None)
    for row in _get(r, "vector_search") or []:
        if row["index"].startswith("IVF") and row["size"] == max(x["size"] for x in r["vector_search"]):
            add(f"IVF recall@10 at {row['size']:,} vectors", row["recall_at_10"], lambda v: f"{v:.3f}", "", ">= 0.95",
                lambda v: v >= 0.95)
            add(f"IVF latency at {row['size']:,} vectors, p50 / p95", (row["p50_ms"], row["p95_ms"]),
                lambda v: f"{v[0]:.2f} / {v[1]:.2f} ms", "", "reported", None)
    add("int8 vs fp32 image vectors: mean / min cosine", _get(r, "encoder", "agreement"),
        lambda v: f"{v['mean']:.4f} / {v['min']:.4f}", "", "reported", None)
    return out


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _mark(met: bool | None) -> str:
    return "" if met is None else ("yes" if met else "**no**")


def markdown(r: dict[str, Any]) -> str:
    """The whole report as markdown."""
    m = r["machine"]
    lines = [f"# photoindex benchmarks{' (quick smoke run: not representative)' if r['plan']['quick'] else ''}", ""]
    lines += [f"{m['date']} · {m['cpu']} · {m['cores']} cores · {m['ram_gib']} GiB RAM · Python {m['python']} · "
              f"onnxruntime {m['versions']['onnxruntime']} · faiss {m['versions']['faiss']} · "
              f"numpy {m['versions']['numpy']} · load average at start {m['load_at_start']}"
              + (f" · BLAS env {m['blas_env']}" if m["blas_env"] else ""), ""]
    lines += [f"Model: `{r['plan']['bundle']}` bundle (generated, random weights, real compute); photos: "
              f"{r['plan']['photos']} synthetic {r['plan']['photo_size'][0]}x{r['plan']['photo_size'][1]} JPEGs, "
              f"quality 90. The machine is shared: ratios within this run matter more than absolute figures. "
              f"Run time {r.get('seconds', 0):.0f} s.", ""]
    lines += ["## Acceptance", ""]
    lines += _table(["measure", "photoindex", "rclip", "target", "met"],
                    [[c.what, c.ours, c.rclip, c.target, _mark(c.met)] for c in checks(r)])
    enc = r.get("encoder")
    if enc:
        lines += ["## Image encoder alone (images/s)", ""]
        batches = sorted({int(b) for b in enc["fp32"]})
        lines += _table(["model"] + [f"batch {b}" for b in batches],
                        [[name] + [f"{enc[name][str(b)]:.1f}" for b in batches] for name in ("fp32", "int8")])
        a = enc["agreement"]
        lines += [f"int8 vs fp32 on {a['photos']} photos: cosine mean {a['mean']:.4f}, min {a['min']:.4f}; "
                  f"each int8 vector's nearest fp32 vector is its own photo's for {a['self_top1']:.0%}. "
                  f"ONNX Runtime threads: {enc['threads'] or 'all cores'}.", ""]
    loading = r.get("model_loading")
    if loading:
        lines += ["## Loading an encoder (s)", ""]
        lines += _table(["model", "size MiB", "bundle's own file", "first load (makes the fast copy)",
                         "from the fast copy"],
                        [[f"{name} {which}", f"{x['mib']:.0f}", f"{x['original_s']:.3f}", f"{x['first_s']:.3f}",
                          f"{x['copy_s']:.3f}"]
                         for name, models in loading.items() for which, x in models.items()])
        lines += ["The fast copy holds the weights in a side file that ONNX Runtime memory-maps "
                  "(`[runtime] model_cache`); it is made once per model file.", ""]
    dec = r.get("decode")
    if dec:
        lines += ["## Decoding alone (photos/s)", ""]
        lines += _table(["workers", "full decode", "draft decode", "indexer's DecodePool (read + hash + draft + pipe)"],
                        [[str(d["workers"]), f"{d['full']:.1f}", f"{d['draft']:.1f}", f"{d['decodepool']:.1f}"]
                         for d in dec])
    e2e = r.get("end_to_end")
    if e2e:
        lines += ["## End-to-end indexing", ""]
        rows = []
        for name in ("naive", "cpu_fp32", "cpu_int8", "npu_standin"):
            x = e2e.get(name)
            if not x:
                continue
            rows.append([x["label"], f"{x['rate']:.1f}", f"{x.get('wall_rate', 0):.1f}" if "wall_rate" in x else "",
                         x.get("slowest_stage", ""), f"{x['efficiency']:.2f}" if "efficiency" in x else "",
                         f"{x['vs_naive']:.1f}x" if "vs_naive" in x else ""])
        lines += _table(["pipeline", "photos/s (run)", "photos/s (whole command)", "slowest stage alone",
                         "efficiency", "vs naive"], rows)
        for name in ("cpu_fp32", "cpu_int8"):
            x = e2e.get(name)
            if x and "repeats" in x:
                rep = x["repeats"]
                lines += [f"{x['label']}, each repeat right after its stages alone: "
                          + "; ".join(f"{r:.1f}/s (encode {e:.1f}, decode {d:.1f}, efficiency {f:.2f}, "
                                      f"vs shared-CPU bound {g:.2f})"
                                      for r, e, d, f, g in zip(rep["rate"], rep["encode"], rep["decode"],
                                                               rep["efficiency"], rep["shared_cpu_efficiency"],
                                                               strict=True)) + ".", ""]
        npu = e2e.get("npu_workers")
        if npu:
            lines += ["NPU stand-in (4.2 ms per image, no CPU) against decode workers:", ""]
            lines += _table(["decode workers", "decode alone (photos/s)", "indexing (photos/s)", "efficiency",
                             "NPU busy"],
                            [[str(x["workers"]), f"{x['decode']:.1f}", f"{x['rate']:.1f}", f"{x['efficiency']:.2f}",
                              f"{x['npu_busy']:.0%}"] for x in npu])
    vs = r.get("vector_search")
    if vs:
        lines += ["## Vector search, one query, top 10 (clustered synthetic unit vectors, 512-d)", ""]
        lines += _table(["vectors", "index", "p50 ms", "p95 ms", "recall@10", "build s"],
                        [[f"{x['size']:,}", x["index"], f"{x['p50_ms']:.2f}", f"{x['p95_ms']:.2f}",
                          f"{x['recall_at_10']:.3f}" if "recall_at_10" in x else "exact",
                          f"{x['build_s']:.1f}" if "build_s" in x else ""] for x in vs])
    wq = r.get("warm_query")
    if wq:
        lines += [f"## Queries at {wq['vectors']:,} photos", ""]
        rows = [["warm text query (tokenize, encode, search, metadata)", f"{wq['total']['p50_ms']:.1f} ms",
                 f"{wq['total']['p95_ms']:.1f} ms"],
                ["  of which text encoder", f"{wq['text_encode']['p50_ms']:.1f} ms",
                 f"{wq['text_encode']['p95_ms']:.1f} ms"]]
        for key, label in (("cold_search_small", "cold `photoindex search`, small library"),
                           ("cold_search_large", f"cold `photoindex search`, {wq['vectors']:,} photos"),
                           ("help", "`photoindex --help`")):
            x = r.get(key)
            if x:
                w = x.get("wall", x)
                rows.append([label, f"{w['p50_ms'] / 1000:.2f} s", f"{w['p95_ms'] / 1000:.2f} s"])
        lines += _table(["what", "p50 / median", "p95"], rows)
        lines += [f"Catalog of {wq['vectors']:,} photos filled in {r.get('catalog_fill_s', 0):.0f} s; index "
                  f"({wq['index_kind']}) built from SQLite in {wq['index_open_s']:.2f} s.", ""]
    notes = r.get("notes")
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(lines)
