"""The benchmark suite's every code path, on tiny inputs, so it cannot rot between real runs.

Nothing here checks speed: the figures of a quick run on a shared machine mean nothing. It checks
that each measurement ran on the real parts and that the report states each acceptance target.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

# One quick benchmark run (a minute or two on a loaded 2-core machine) serves every test here.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """`python -m benchmarks.run --quick` as a user types it; (report.json, report.md)."""
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=480,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(out / "report.md")
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def _positive(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_every_stage_was_measured(quick_run: tuple[dict[str, Any], str]) -> None:
    r, _ = quick_run
    plan = r["plan"]
    assert plan["quick"] and r["machine"]["cores"] >= 1 and r["machine"]["cpu"]
    enc = r["encoder"]
    for model in ("fp32", "int8"):
        assert set(enc[model]) == {str(b) for b in {*plan["encoder_batches"], plan["batch_size"]}}
        assert all(_positive(v) for v in enc[model].values())
    assert 0.9 < enc["agreement"]["mean"] <= 1.0 + 1e-5 and enc["agreement"]["photos"] == plan["agreement_photos"]
    for row in r["decode"]:
        assert all(_positive(row[k]) for k in ("full", "draft", "decodepool"))


def test_indexing_runs_encoded_every_photo(quick_run: tuple[dict[str, Any], str]) -> None:
    r, _ = quick_run
    e2e = r["end_to_end"]
    for name in ("cpu_fp32", "cpu_int8"):
        run = e2e[name]
        assert run["encoded"] == r["plan"]["photos"]
        assert _positive(run["rate"]) and _positive(run["efficiency"]) and _positive(run["vs_naive"])
        assert run["wall_seconds"] >= run["seconds"]
    assert _positive(e2e["naive"]["rate"])
    assert e2e["npu_workers"] and all(_positive(x["rate"]) for x in e2e["npu_workers"])
    # The stand-in costs 4.2 ms per image: alone it cannot beat 1 / 4.2 ms.
    assert e2e["npu_standin"]["npu_alone"] <= 1 / 0.0042 + 1e-6
    index_memory = r["memory"]["index"]
    # The indexing command plus its decode workers were all sampled.
    assert index_memory["processes"] >= 2 and index_memory["rss_mib"] >= index_memory["pss_mib"] > 0


def test_search_figures_are_there(quick_run: tuple[dict[str, Any], str]) -> None:
    r, _ = quick_run
    kinds = {row["index"].split(" ")[0] for row in r["vector_search"]}
    assert kinds == {"exact", "numpy", "IVF"}
    ivf = [row for row in r["vector_search"] if row["index"].startswith("IVF")]
    assert all(0.0 <= row["recall_at_10"] <= 1.0 for row in ivf)
    assert r["warm_query"]["vectors"] == r["plan"]["catalog_photos"]
    assert r["warm_query"]["hits"] == 20 and r["warm_query"]["total"]["n"] == r["plan"]["warm_rounds"]
    for key in ("cold_search_small", "cold_search_large"):
        assert _positive(r[key]["wall"]["p50_ms"])
    assert _positive(r["help"]["p50_ms"]) and _positive(r["memory"]["search"]["rss_mib"])


def test_report_states_each_target(quick_run: tuple[dict[str, Any], str]) -> None:
    _, md = quick_run
    assert md.startswith("# photoindex benchmarks (quick smoke run")
    for target in (">= 0.90", ">= 3x", "<= 50 ms", "<= 0.5 s", "<= 1.5 s", "<= 0.3 s", "< 900 MB", "< 436 MB",
                   ">= 0.95"):
        assert f"| {target} |" in md, target
    assert "| 11.4 |" in md and "| 0.85 s |" in md  # rclip's figures beside ours


def test_filters_figures_are_there(quick_run: tuple[dict[str, Any], str]) -> None:
    r, md = quick_run
    f = r["filters"]
    assert f["photos"] == r["plan"]["catalog_photos"]
    for name, row in f["search"].items():
        if "p50_ms" in row:
            assert _positive(row["p50_ms"]), name
            if name != "no filter":  # the full --limit came back from the photos that pass
                assert row["min_hits"] == min(row["limit"], row["passing"]) and row["passing"] > 0, name
    assert f["backfill"]["backfilled"] == f["photos"] and f["backfill"]["encoded"] == 0
    assert _positive(f["duplicates"]["seconds"]) and _positive(f["metadata"]["per_photo_ms"])
    assert "<!-- filters: begin -->" in md and "| <= 50 ms, full --limit |" in md
