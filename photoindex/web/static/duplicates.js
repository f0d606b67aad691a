// photoindex duplicates page: groups side by side, the photo to keep first (see docs/web.md).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);

  function size(n) {
    return n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1e3))} kB`;
  }

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }

  function render(groups) {
    const box = $("groups");
    box.replaceChildren();
    const total = groups.reduce((sum, g) => sum + g.reclaimable, 0);
    $("message").textContent = groups.length
      ? `${groups.length} group${groups.length === 1 ? "" : "s"}; ${size(total)} in all but the first photo of each (nothing is deleted)`
      : "No duplicates.";
    for (const g of groups) {
      const section = el("section", null, "dup-group");
      section.append(
        el("h3", `${g.photos.length} ${g.exact ? "exact copies" : "near-duplicates"} · ${size(g.reclaimable)} in all but the first`),
      );
      const row = el("div", null, "dup-row");
      g.photos.forEach((p, i) => {
        const fig = el("figure", null, i === 0 ? "dup keep" : "dup");
        const link = el("a");
        link.href = `/api/photos/${p.id}/view`;
        link.target = "_blank";
        link.rel = "noopener";
        const img = el("img");
        img.src = p.thumbnail;
        img.alt = p.path.split("/").pop();
        img.loading = "lazy";
        link.append(img);
        const caption = el("figcaption");
        caption.append(
          el("span", i === 0 ? "keep" : p.same_content ? "copy" : p.score.toFixed(3), "dup-score"),
          el("span", `${p.width || "?"}×${p.height || "?"} · ${size(p.size)}`),
          el("span", p.path, "dup-path"),
        );
        fig.append(link, caption);
        row.append(fig);
      });
      section.append(row);
      box.append(section);
    }
  }

  async function find() {
    const p = new URLSearchParams();
    p.set("threshold", $("threshold").value || "0.95");
    if ($("folder").value) p.set("folder", $("folder").value);
    $("message").textContent = "Looking for duplicates…";
    try {
      const response = await fetch(`/api/duplicates?${p}`);
      const data = await response.json();
      if (!response.ok) throw new Error(data.hint ? `${data.error}: ${data.hint}` : data.error);
      render(data.groups);
    } catch (err) {
      $("message").textContent = `Could not look for duplicates: ${err.message}`;
    }
  }

  $("dup-form").addEventListener("submit", (e) => {
    e.preventDefault();
    find();
  });
  find();
})();
