// photoindex search page: plain JavaScript, no build step, no other site (see docs/web.md).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const form = $("search");
  const q = $("q");
  const grid = $("grid");
  const message = $("message");
  const exampleBox = $("example");
  const exampleImg = $("example-img");
  const viewer = $("viewer");
  const viewImg = $("view-img");
  const viewMarks = $("view-marks");
  const SVG = viewMarks.namespaceURI; // the page names no address of any other site, not even the SVG namespace
  const drop = $("drop");

  let hits = [];
  let example = null; // an uploaded photo (Blob): searched by, never stored
  let exampleUrl = null;
  let like = null; // a photo id: "more like this"
  let current = -1; // the hit shown in the viewer
  let seq = 0; // the latest search; answers to older ones are dropped
  const FIRST = 20; // the first thumbnails timed from Enter (benchmarks/web.py reads the measure)
  const MAX_INLINE = 60; // the server's cap on thumbnails carried inline by a search answer

  const baseName = (path) => path.split("/").pop();
  const folderOf = (path) => path.slice(0, path.length - baseName(path).length - 1) || "/";

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("error", Boolean(isError));
  }

  function setExample(blob, thumbUrl) {
    if (exampleUrl) URL.revokeObjectURL(exampleUrl);
    example = blob || null;
    exampleUrl = blob ? URL.createObjectURL(blob) : null;
    const src = exampleUrl || thumbUrl || null;
    exampleBox.hidden = !src;
    if (src) exampleImg.src = src;
    else exampleImg.removeAttribute("src");
  }

  // The filters of `photoindex search`, by the id of their control and their API parameter.
  const FILTERS = [
    ["folder", "folder"],
    ["after", "after"],
    ["before", "before"],
    ["camera", "camera"],
    ["place", "place"],
    ["near", "near"],
    ["type", "type"],
  ];

  function params() {
    const p = new URLSearchParams();
    const text = q.value.trim();
    if (text) p.set("q", text);
    if (like !== null) p.set("like", String(like));
    for (const [id, name] of FILTERS) {
      const value = $(id).value.trim();
      if (value) p.set(name, value);
    }
    const minScore = $("min-score").value;
    if (minScore !== "") p.set("min_score", minScore);
    if ($("sort").value !== "score") p.set("sort", $("sort").value);
    p.set("limit", $("limit").value);
    return p;
  }

  const filtered = (p) => FILTERS.some(([, name]) => p.has(name));

  // How many cells the first screen shows: their thumbnails come inline in the search's answer
  // (data: URLs), so they paint without a request each (docs/web.md, "Speed"). Measured when the
  // page opens and when the window is resized, never on Enter: reading the layout there would make
  // the browser lay out the page before the search's request leaves.
  let firstScreen = 1;
  function measureScreen() {
    const gap = parseFloat(getComputedStyle(grid).rowGap) || 0;
    const width = grid.clientWidth / columns();
    const top = grid.getBoundingClientRect().top;
    const rows = Math.max(1, Math.ceil((window.innerHeight - top) / (width * 0.75 + gap)));
    firstScreen = Math.max(1, Math.min(MAX_INLINE, columns() * rows));
  }
  new ResizeObserver(measureScreen).observe(grid);

  // A pause in typing asks the server to encode the text now (its vector is then among the recent
  // query texts the library keeps), so that Enter after a pause waits only for the search
  // (docs/web.md, "Speed"). Enter while typing cancels it: the search encodes the text itself.
  const WARM_AFTER = 300; // ms without typing
  let warmTimer = 0;
  let warmed = "";
  function warm() {
    const text = q.value.trim();
    if (!text || text === warmed) return;
    warmed = text;
    fetch(`/api/warm?q=${encodeURIComponent(text)}`).catch(() => undefined);
  }
  q.addEventListener("input", () => {
    clearTimeout(warmTimer);
    warmTimer = setTimeout(warm, WARM_AFTER);
  });

  async function search(more) {
    clearTimeout(warmTimer);
    const mine = ++seq;
    const p = params();
    if (!p.has("q") && !p.has("like") && !example && !filtered(p)) {
      say("Type what you are looking for, drop a photo, or set a filter.");
      return;
    }
    if (more) p.set("offset", String(hits.length));
    performance.clearMarks();
    performance.clearMeasures();
    performance.clearResourceTimings();
    performance.mark("search-start");
    const shown = new URLSearchParams(p);
    shown.delete("limit");
    shown.delete("offset");
    const inlined = more ? 0 : Math.min(firstScreen, Number(p.get("limit")));
    if (inlined) p.set("inline", String(inlined));
    // The request leaves first; the address bar and the message are updated while the server works.
    const asked = example
      ? fetch(`/api/search?${p}`, {
          method: "POST",
          body: example,
          headers: { "Content-Type": example.type || "application/octet-stream" },
        })
      : fetch(`/api/search?${p}`);
    history.replaceState(null, "", shown.toString() ? `/?${shown}` : "/");
    say(more ? "Loading more…" : "Searching…");
    let response;
    let data;
    try {
      response = await asked;
      data = await response.json();
    } catch (err) {
      if (mine === seq) say(`The search failed: ${err.message}`, true);
      return;
    }
    if (mine !== seq) return;
    if (!response.ok) {
      say(data.hint ? `${data.error}: ${data.hint}` : data.error || `error ${response.status}`, true);
      return;
    }
    render(data.hits, data.inline_thumbnails || {}, mine, more, Number(p.get("limit")));
  }

  function render(list, inline, mine, more, limit) {
    const start = more ? hits.length : 0;
    hits = more ? hits.concat(list) : list;
    $("more").hidden = list.length < limit;
    const cells = document.createDocumentFragment();
    // Below the first screen: added once it is painted, so that its frame styles and lays out only
    // the cells it shows (docs/web.md, "Speed").
    const restCells = document.createDocumentFragment();
    const first = []; // the first thumbnails, timed from Enter to their paint
    const later = [];
    list.forEach((hit, n) => {
      const i = start + n;
      const cell = document.createElement("button");
      cell.type = "button";
      cell.className = "cell";
      cell.dataset.i = String(i);
      cell.setAttribute("role", "listitem");
      const name = baseName(hit.path);
      cell.title = hit.score === null ? name : `${name}  ·  score ${hit.score.toFixed(3)}`;
      const img = document.createElement("img");
      img.alt = name;
      img.decoding = "async";
      if (hit.width && hit.height) {
        img.width = hit.width;
        img.height = hit.height;
      }
      const data = inline[hit.id];
      if (n < (more ? FIRST : Math.min(FIRST, firstScreen))) {
        if (!more) img.setAttribute("elementtiming", `search-${mine}`); // on the first screen: its paint is seen
        first.push(img);
      }
      if (data) {
        // The first screenful came inline: no request. Decoded for the frame that first shows them,
        // together on the raster thread: "async" had Chromium decode them one at a time, each
        // showing in a later frame (docs/web.md, "Speed").
        img.decoding = "sync";
        img.src = data;
      } else if (n < FIRST) {
        // Not cached on the server yet: asked for at once. The rest waits until the first
        // screenful has arrived (the browser opens 6 connections: 60 requests at once would
        // delay the first ones), and then loads as it scrolls into view.
        img.fetchPriority = "high";
        img.src = hit.thumbnail;
      } else {
        img.loading = "lazy";
        later.push([img, hit.thumbnail]);
      }
      const score = document.createElement("span");
      score.className = "score";
      score.textContent = hit.score === null ? hit.taken_at || "" : hit.score.toFixed(3);
      cell.append(img, score);
      (more || n < firstScreen ? cells : restCells).append(cell);
    });
    if (more) grid.append(cells);
    else {
      grid.replaceChildren(cells);
      // New results start at the top (the box stays in view above them, sticky): their first
      // screen is what is shown, and timed.
      window.scrollTo(0, 0);
    }
    const order = hits.length && hits[0].score === null ? "newest first" : "best first";
    say(hits.length ? `${hits.length} photo${hits.length === 1 ? "" : "s"}, ${order}` : "No matching photos.");
    // The rest of the results load (as they scroll into view) once the first screen is painted,
    // so that nothing competes with it; or after a while, if it is not painted (a hidden tab).
    let rest = () => {
      rest = () => {};
      grid.append(restCells);
      for (const [img, src] of later) img.src = src;
    };
    setTimeout(() => mine === seq && rest(), 2000);
    painted(first, more ? null : `search-${mine}`).then((at) => {
      if (mine !== seq) return;
      // Enter to the first thumbnails painted (benchmarks/web.py reads it; docs/web.md, "Speed").
      const m = performance.measure("enter-to-thumbnails", { start: "search-start", end: at });
      document.body.dataset.searchMs = m.duration.toFixed(1);
      document.body.dataset.searches = String(mine);
      rest();
    });
  }

  // When these images are on the screen (a time on the performance clock). Chromium reports the
  // paint of the frame that first showed each image marked `elementtiming` = `id` (Element Timing;
  // only images on the screen are painted); elsewhere, or without an `id`, the frame after they are
  // decoded. An image that fails counts as shown.
  function painted(images, id) {
    if (!images.length) return new Promise((resolve) => requestAnimationFrame(resolve));
    if (id === null || !(PerformanceObserver.supportedEntryTypes || []).includes("element")) {
      const decoded = images.map((img) => img.decode().catch(() => undefined));
      return Promise.all(decoded).then(() => new Promise((resolve) => requestAnimationFrame(resolve)));
    }
    return new Promise((resolve) => {
      const waiting = new Set(images);
      let last = 0;
      const seen = (img, time) => {
        if (!waiting.delete(img)) return;
        last = Math.max(last, time);
        if (!waiting.size) {
          observer.disconnect();
          resolve(last);
        }
      };
      const observer = new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) {
          if (entry.identifier === id) seen(entry.element, entry.renderTime || entry.loadTime);
        }
      });
      observer.observe({ type: "element", buffered: true });
      for (const img of images) img.addEventListener("error", () => seen(img, performance.now()), { once: true });
    });
  }

  // ------------------------------------------------------------ keyboard in the grid

  function columns() {
    return getComputedStyle(grid).gridTemplateColumns.split(" ").filter(Boolean).length || 1;
  }

  function focusCell(i) {
    const cell = grid.children[Math.max(0, Math.min(i, grid.children.length - 1))];
    if (cell) {
      cell.focus();
      cell.scrollIntoView({ block: "nearest" });
    }
  }

  grid.addEventListener("keydown", (e) => {
    const cell = e.target.closest(".cell");
    if (!cell) return;
    const i = Number(cell.dataset.i);
    const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
    if (e.key in moves) {
      e.preventDefault();
      if (e.key === "ArrowUp" && i < columns()) q.focus();
      else focusCell(i + moves[e.key]);
    } else if (e.key === "Home") {
      e.preventDefault();
      focusCell(0);
    } else if (e.key === "End") {
      e.preventDefault();
      focusCell(hits.length - 1);
    }
  });

  grid.addEventListener("click", (e) => {
    const cell = e.target.closest(".cell");
    if (cell) openViewer(Number(cell.dataset.i));
  });

  q.addEventListener("keydown", (e) => {
    if (e.key === "ArrowDown" && hits.length) {
      e.preventDefault();
      focusCell(0);
    }
  });

  // ------------------------------------------------------------ the photo view

  function fact(list, label, value) {
    if (value === null || value === undefined || value === "") return;
    const dt = document.createElement("dt");
    dt.textContent = label;
    const dd = document.createElement("dd");
    if (value instanceof Node) dd.append(value);
    else dd.textContent = value;
    list.append(dt, dd);
  }

  function megabytes(n) {
    return n >= 1 << 20 ? `${(n / (1 << 20)).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
  }

  // A line read in the photo, with the words the search matched in it marked.
  function markedLine(text, words) {
    const line = document.createElement("div");
    const lower = text.toLowerCase();
    let at = 0;
    while (at < text.length) {
      let next = -1;
      let size = 0;
      for (const w of words) {
        const k = lower.indexOf(w.toLowerCase(), at);
        if (k >= 0 && (next < 0 || k < next)) {
          next = k;
          size = w.length;
        }
      }
      if (next < 0 || !size) {
        line.append(text.slice(at));
        break;
      }
      const mark = document.createElement("mark");
      mark.textContent = text.slice(next, next + size);
      line.append(text.slice(at, next), mark);
      at = next + size;
    }
    return line;
  }

  // The matched words' boxes over the photo, in its own (upright) pixels: the SVG is fitted like the image.
  function drawMarks(photo) {
    viewMarks.replaceChildren();
    const marks = photo.text ? photo.text.highlights : [];
    if (!marks.length || !photo.width || !photo.height) return;
    viewMarks.setAttribute("viewBox", `0 0 ${photo.width} ${photo.height}`);
    for (const mark of marks) {
      const box = document.createElementNS(SVG, "polygon");
      box.setAttribute("points", mark.box.map(([x, y]) => `${x},${y}`).join(" "));
      const title = document.createElementNS(SVG, "title");
      title.textContent = mark.word;
      box.append(title);
      viewMarks.append(box);
    }
  }

  async function openViewer(i) {
    if (i < 0 || i >= hits.length) return;
    current = i;
    const hit = hits[i];
    viewer.hidden = false;
    viewMarks.replaceChildren();
    viewImg.alt = baseName(hit.path);
    viewImg.src = `/api/photos/${hit.id}/view`;
    $("view-name").textContent = baseName(hit.path);
    $("view-download").href = `/api/photos/${hit.id}/original`;
    const meta = $("view-meta");
    meta.replaceChildren();
    if (hit.score !== null) fact(meta, "score", hit.score.toFixed(3));
    $("view-close").focus();
    let photo;
    try {
      const asked = new URLSearchParams();
      for (const word of hit.words || []) asked.append("word", word);
      const query = asked.toString();
      const response = await fetch(`/api/photos/${hit.id}${query ? `?${query}` : ""}`);
      photo = await response.json();
      if (!response.ok) throw new Error(photo.error || response.status);
    } catch (err) {
      fact(meta, "error", String(err.message || err));
      return;
    }
    if (current !== i) return;
    fact(meta, "taken", photo.taken_at ? photo.taken_at.replace("T", " ") : "unknown");
    fact(meta, "camera", photo.camera);
    fact(meta, "lens", photo.lens);
    fact(meta, "place", photo.place);
    if (photo.gps) {
      fact(meta, "position", `${photo.gps.lat.toFixed(5)}, ${photo.gps.lon.toFixed(5)}`);
    }
    if (photo.width && photo.height) fact(meta, "pixels", `${photo.width} × ${photo.height}`);
    fact(meta, "file", `${photo.format || "?"}, ${megabytes(photo.size)}`);
    fact(meta, "folder", photo.folder);
    if (photo.text) {
      const lines = document.createElement("div");
      lines.className = "view-text";
      for (const line of photo.text.lines) lines.append(markedLine(line.text, hit.words || []));
      fact(meta, "text read", lines);
    }
    drawMarks(photo);
  }

  function closeViewer() {
    if (viewer.hidden) return;
    viewer.hidden = true;
    viewImg.removeAttribute("src");
    viewMarks.replaceChildren();
    focusCell(current);
  }

  $("view-close").addEventListener("click", closeViewer);
  $("view-like").addEventListener("click", () => {
    const hit = hits[current];
    if (!hit) return;
    like = hit.id;
    q.value = "";
    setExample(null, hit.thumbnail);
    closeViewer();
    search();
  });

  document.addEventListener("keydown", (e) => {
    if (viewer.hidden) return;
    if (e.key === "Escape") {
      e.preventDefault();
      closeViewer();
    } else if (e.key === "ArrowRight") {
      e.preventDefault();
      openViewer(current + 1);
    } else if (e.key === "ArrowLeft") {
      e.preventDefault();
      openViewer(current - 1);
    }
  });

  // ------------------------------------------------------------ searching by an example photo

  function byExample(file) {
    if (!file || !file.type.startsWith("image/")) {
      say("That is not an image file.", true);
      return;
    }
    like = null;
    q.value = "";
    setExample(file);
    search();
  }

  $("example-clear").addEventListener("click", () => {
    like = null;
    setExample(null);
    q.focus();
  });

  $("file").addEventListener("change", (e) => {
    byExample(e.target.files[0]);
    e.target.value = "";
  });

  let dragDepth = 0;
  const carriesFiles = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  document.addEventListener("dragenter", (e) => {
    if (!carriesFiles(e)) return;
    dragDepth += 1;
    drop.hidden = false;
  });
  document.addEventListener("dragleave", () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) drop.hidden = true;
  });
  document.addEventListener("dragover", (e) => {
    if (carriesFiles(e)) e.preventDefault();
  });
  document.addEventListener("drop", (e) => {
    if (!carriesFiles(e)) return;
    e.preventDefault();
    dragDepth = 0;
    drop.hidden = true;
    byExample(e.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (e) => {
    const item = Array.from(e.clipboardData ? e.clipboardData.items : []).find((it) => it.type.startsWith("image/"));
    if (!item) return; // text pastes into the box as usual
    e.preventDefault();
    byExample(item.getAsFile());
  });

  // ------------------------------------------------------------ the form

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    search(); // text and an example photo together: their vectors are averaged, as in `photoindex search`
  });
  for (const id of ["folder", "type", "sort", "min-score", "limit"]) {
    $(id).addEventListener("change", () => {
      if (hits.length || example || like !== null || filtered(params())) search();
    });
  }
  $("more").addEventListener("click", () => search(true));

  const start = new URLSearchParams(location.search);
  if (start.get("q")) q.value = start.get("q");
  for (const [id, name] of FILTERS) if (start.get(name)) $(id).value = start.get(name);
  if (start.get("min_score")) $("min-score").value = start.get("min_score");
  if (start.get("sort") === "date") $("sort").value = "date";
  if (start.get("like") && /^\d+$/.test(start.get("like"))) {
    like = Number(start.get("like"));
    setExample(null, `/api/photos/${like}/thumbnail`);
  }
  measureScreen();
  if (q.value || like !== null || filtered(params())) search();
})();
