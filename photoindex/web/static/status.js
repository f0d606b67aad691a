// photoindex status page: polls /api/status every second (see docs/web.md).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const PERIOD = 1000;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function facts(list, pairs) {
    list.replaceChildren();
    for (const [label, value] of pairs) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", label), el("dd", value));
    }
  }

  function rows(table, items, cells) {
    const body = table.tBodies[0];
    body.replaceChildren(
      ...items.map((item) => {
        const tr = document.createElement("tr");
        for (const [value, cls] of cells(item)) tr.append(el("td", value, cls));
        return tr;
      }),
    );
  }

  function when(iso) {
    return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/\+00:00$/, " UTC") : "never";
  }

  function progress(writer) {
    const box = $("progress");
    box.replaceChildren();
    if (!writer) {
      box.append(el("p", "No indexing is running.", "muted"));
      return;
    }
    const p = writer.progress;
    const who = `${writer.purpose || "a writer"}${writer.pid ? ` (pid ${writer.pid})` : ""}, since ${when(writer.since)}`;
    box.append(el("p", who));
    if (!p) return;
    const known = p.total !== null && p.total !== undefined && p.total > 0;
    const line = el(
      "p",
      `${p.stage}: ${p.done}${known ? ` of ${p.total}` : ""} photos` + (p.rate ? `, ${p.rate.toFixed(1)} photos/s` : ""),
    );
    line.id = "progress-line";
    const meter = el("div", null, known ? "meter" : "meter unknown");
    const bar = el("div");
    if (known) bar.style.width = `${Math.min(100, (100 * p.done) / p.total).toFixed(1)}%`;
    meter.append(bar);
    meter.setAttribute("role", "progressbar");
    if (known) {
      meter.setAttribute("aria-valuemin", "0");
      meter.setAttribute("aria-valuemax", String(p.total));
      meter.setAttribute("aria-valuenow", String(p.done));
    }
    box.append(line, meter);
  }

  function render(s) {
    progress(s.writer);
    const d = s.daemon;
    facts($("daemon"), [
      ["state", d.running ? "running" : "not running"],
      ["pid", d.running ? d.pid : null],
      ["since", d.running ? when(d.since) : null],
      ["queue", d.running ? d.queue : null],
      ["last batch", d.last_batch],
      ["watching", d.watching],
      ["searches", d.serving ? `answered on ${d.serving}` : null],
      ["web page", d.web],
      ["last error", d.last_error],
    ]);
    rows($("roots"), s.roots, (r) => [
      [r.path, "path"],
      [r.photos, "num"],
      [when(r.last_scan_at)],
      [r.present ? "present" : "not present (unplugged?)", r.present ? "" : "bad"],
    ]);
    $("counts").textContent = Object.entries(s.counts)
      .map(([k, n]) => `${n} ${k}`)
      .join(" · ");
    rows($("models"), s.models || [], (m) => [
      [m.model_id, "path"],
      [m.photos, "num"],
      [m.vectors, "num"],
      [m.configured ? "configured" : ""],
    ]);
    facts($("library"), [
      ["home", s.home],
      ["bundle", `${s.model}${s.model_present ? "" : " (not installed)"}`],
      ["index", `${s.vectors} vectors, generation ${s.generation}`],
      ["not encoded yet", s.not_encoded ? `${s.not_encoded} photos (run photoindex reindex, or let the daemon)` : null],
    ]);
    rows($("failures"), s.last_failures, (f) => [[f.path, "path"], [f.error], [f.hint || ""]]);
    $("no-failures").hidden = s.last_failures.length > 0;
    $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  async function poll() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (response.ok) render(await response.json());
      else $("updated").textContent = `the status could not be read (${response.status})`;
    } catch (err) {
      $("updated").textContent = `the status could not be read: ${err.message}`;
    }
    setTimeout(poll, PERIOD);
  }

  poll();
})();
