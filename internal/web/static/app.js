// ferry's UI scripts: timing bars, live build state, and the log viewer.
// Log text is only ever inserted with textContent, never as HTML.
"use strict";

(function () {
  const final = new Set(["success", "failure", "error", "killed", "skipped", "declined"]);
  const icons = { success: "✔", failure: "✘", error: "✘", killed: "⊘", declined: "⊘", running: "◔", skipped: "↷", blocked: "◌" };

  // Destructive forms ask first.
  document.querySelectorAll("form.confirm").forEach(function (form) {
    form.addEventListener("submit", function (e) {
      if (!confirm(form.dataset.confirm || "Are you sure?")) e.preventDefault();
    });
  });

  // ---- live build state -------------------------------------------------
  // While the build runs, its state is polled; when any status changes,
  // the page's server-rendered parts (facts, buttons, graph, steps) are
  // fetched again and swapped in place. The log viewer is left alone.
  const build = document.getElementById("build");
  function setStatus(el, status) {
    if (!el) return;
    el.className = el.className.replace(/\bs-[a-z]+\b/g, "").trim() + " s-" + status;
    const text = el.querySelector(".text");
    if (text) text.textContent = status;
    const icon = el.querySelector(".icon");
    if (icon) icon.textContent = icons[status] || "○";
  }
  function bindPage(root) {
    root.querySelectorAll(".bar .fill").forEach(function (el) {
      el.style.setProperty("--o", el.dataset.o || "0");
      el.style.setProperty("--w", el.dataset.w || "0");
    });
    root.querySelectorAll("form.js-action").forEach(bindAction);
  }
  let pollTimer = null;
  let signature = null;
  function swapParts() {
    return fetch(location.href, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        const doc = new DOMParser().parseFromString(html, "text/html");
        ["build-head", "build-facts", "build-actions", "build-dag", "build-pipeline"].forEach(function (id) {
          const old = document.getElementById(id);
          const fresh = doc.getElementById(id);
          if (old && fresh) { old.replaceWith(fresh); bindPage(fresh); }
          else if (old && !fresh) old.remove();
        });
      });
  }
  function refreshBuild() {
    if (!build) return;
    fetch(build.dataset.api, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (b) {
        if (!b) return;
        build.dataset.status = b.status;
        setStatus(document.getElementById("build-status"), b.status);
        const sig = JSON.stringify([b.status, (b.pipelines || []).map(function (p) {
          return [p.status, (p.steps || []).map(function (s) { return s.status; })];
        })]);
        const changed = signature !== null && sig !== signature;
        signature = sig;
        if (changed) swapParts();
        if (final.has(b.status)) stopPolling();
      })
      .catch(function () {});
  }
  // Build actions run without leaving the page: the form is posted with
  // fetch, and the page follows the build's state as it changes.
  function bindAction(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
        headers: { "X-Ferry-Fetch": "1", Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
        .then(function (res) {
          if (!res.ok) { alert(res.body.error || "the action failed"); if (button) button.disabled = false; return; }
          const here = location.pathname.split("/").slice(0, 6).join("/");
          if (res.body.url && res.body.url !== here) { location.assign(res.body.url); return; }
          if (button) button.disabled = false;
          refreshBuild();
          if (!pollTimer && !events) followBuild();
        })
        .catch(function () { form.submit(); });
    });
  }
  function stopPolling() {
    if (pollTimer) { clearInterval(pollTimer); pollTimer = null; }
    if (events) { events.close(); events = null; }
  }
  // The page follows the build's event stream (GET …/builds/N/events):
  // each transition reads the build again, a few at once coalesced. When
  // the stream fails (an old proxy, a server restart) it polls instead.
  let events = null;
  const eventKinds = ["status", "resync", "build_created", "build_waiting", "build_started", "pipeline_queued",
    "pipeline_started", "step_started", "step_finished", "pipeline_finished", "build_finished"];
  function followBuild() {
    if (!window.EventSource) { pollTimer = setInterval(refreshBuild, 1000); return; }
    events = new EventSource(build.dataset.api + "/events");
    let queued = null;
    const refresh = function () {
      if (queued) return;
      queued = setTimeout(function () { queued = null; refreshBuild(); }, 50);
    };
    eventKinds.forEach(function (k) { events.addEventListener(k, refresh); });
    events.onopen = function () { build.dataset.live = "events"; };
    events.addEventListener("end", function () { if (events) { events.close(); events = null; } refreshBuild(); });
    events.onerror = function () {
      if (events) { events.close(); events = null; }
      build.dataset.live = "poll";
      if (!pollTimer) pollTimer = setInterval(refreshBuild, 1000);
    };
  }
  bindPage(document);
  if (build && !final.has(build.dataset.status)) {
    refreshBuild();
    followBuild();
  }

  // ---- deployments --------------------------------------------------------
  // Dashboard and deployment forms ask for confirmation (their reason
  // field is required by the form) and post with fetch; the matrix then
  // follows the deployment live. While a deployment runs, the matrix is
  // fetched again every second and swapped in, unless the user is busy
  // with one of its forms.
  function bindDeployForm(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      if (!confirm(form.dataset.confirm || "Are you sure?")) return;
      const button = form.querySelector("button");
      if (button) button.disabled = true;
      fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin",
        headers: { "X-Ferry-Fetch": "1", Accept: "application/json" } })
        .then(function (r) { return r.json().then(function (j) { return { ok: r.ok, body: j }; }); })
        .then(function (res) {
          if (button) button.disabled = false;
          const notice = document.getElementById("notice");
          const msg = res.ok ? res.body.notice : "Refused: " + (res.body.error || "the action failed");
          if (notice) { notice.hidden = false; notice.textContent = msg; notice.className = res.ok ? "notice" : "error"; }
          else if (!res.ok) alert(msg);
          if (res.ok) {
            const d = form.closest("details");
            if (d) d.open = false;
            refreshMatrix(true);
          }
        })
        .catch(function () { form.submit(); });
    });
  }
  document.querySelectorAll("form.js-deploy").forEach(bindDeployForm);
  let matrixTimer = null;
  function refreshMatrix(force) {
    const m = document.getElementById("matrix") || document.getElementById("dep-page");
    if (!m) return;
    const busy = m.querySelector("details[open]") || (document.activeElement && m.contains(document.activeElement) && document.activeElement.tagName === "INPUT");
    if (busy && !force) return;
    fetch(location.pathname, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (!html) return;
        const fresh = new DOMParser().parseFromString(html, "text/html").getElementById(m.id);
        if (!fresh) return;
        m.replaceWith(fresh);
        fresh.querySelectorAll("form.js-deploy").forEach(bindDeployForm);
        if (fresh.dataset.active === "true") { if (!matrixTimer) matrixTimer = setInterval(refreshMatrix, 1000); }
        else if (matrixTimer) { clearInterval(matrixTimer); matrixTimer = null; }
      })
      .catch(function () {});
  }
  const matrixEl = document.getElementById("matrix") || document.getElementById("dep-page");
  if (matrixEl && matrixEl.dataset.active === "true") matrixTimer = setInterval(refreshMatrix, 1000);

  // ---- ANSI colours -----------------------------------------------------
  // renderLine fills el with text, turning SGR escape sequences into
  // spans and dropping every other control sequence.
  const sgr = /\x1b\[([0-9;]*)m/g;
  function renderLine(el, text) {
    text = text.replace(/\x1b\[[0-9;?]*[A-La-ln-z]/g, "").replace(/\x1b\][^\x07\x1b]*(\x07|\x1b\\)/g, "");
    let classes = [];
    let last = 0;
    let m;
    sgr.lastIndex = 0;
    function emit(s) {
      if (!s) return;
      s = s.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, "");
      if (classes.length === 0) { el.appendChild(document.createTextNode(s)); return; }
      const span = document.createElement("span");
      span.className = classes.join(" ");
      span.textContent = s;
      el.appendChild(span);
    }
    while ((m = sgr.exec(text)) !== null) {
      emit(text.slice(last, m.index));
      last = sgr.lastIndex;
      const codes = m[1] === "" ? ["0"] : m[1].split(";");
      codes.forEach(function (c) {
        const n = parseInt(c, 10);
        if (n === 0) classes = [];
        else if (n === 1) classes.push("a-b");
        else if (n === 3) classes.push("a-i");
        else if (n === 4) classes.push("a-u");
        else if (n === 39) classes = classes.filter(function (k) { return !/^a\d/.test(k); });
        else if ((n >= 30 && n <= 37) || (n >= 90 && n <= 97)) {
          classes = classes.filter(function (k) { return !/^a\d/.test(k); });
          classes.push("a" + n);
        }
      });
    }
    emit(text.slice(last));
  }

  // ---- the log viewer ---------------------------------------------------
  // Only the lines in view (and a margin) are in the DOM; the log is read
  // in chunks of CHUNK lines as the view reaches them, so a log of a
  // million lines opens as fast as a short one.
  const log = document.getElementById("log");
  if (!log) return;
  const CHUNK = 1000;
  const view = document.getElementById("log-view");
  const space = document.getElementById("log-space");
  const count = document.getElementById("log-count");
  const follow = document.getElementById("log-follow");
  const api = log.dataset.api;
  const lh = parseFloat(getComputedStyle(view).getPropertyValue("--lh")) || 18;
  const chunks = new Map(); // chunk index -> array of lines (null while loading)
  let total = 0; // lines known: the highest sequence number + 1
  let highlight = -1;
  let matches = new Set();
  let scheduled = false;

  function setTotal(n) {
    if (n <= total) return;
    total = n;
    space.style.height = total * lh + "px";
    count.textContent = total.toLocaleString() + " lines";
  }
  function loadChunk(k) {
    if (chunks.has(k)) return Promise.resolve();
    chunks.set(k, null);
    return fetch(api + "?from=" + k * CHUNK + "&limit=" + CHUNK, { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        const lines = parseInt(r.headers.get("X-Log-Lines") || "0", 10);
        const lastSeq = parseInt(r.headers.get("X-Log-Last-Seq") || "-1", 10);
        setTotal(Math.max(lines, lastSeq + 1));
        return r.text();
      })
      .then(function (text) {
        const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
        const have = chunks.get(k);
        // Lines that arrived live while the chunk loaded are kept.
        if (have) have.forEach(function (l, i) { if (l !== undefined && lines[i] === undefined) lines[i] = l; });
        chunks.set(k, lines);
        setTotal(k * CHUNK + lines.length);
        schedule();
      })
      .catch(function () { chunks.delete(k); });
  }
  function lineAt(i) {
    const c = chunks.get(Math.floor(i / CHUNK));
    return c ? c[i % CHUNK] : undefined;
  }
  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(draw);
  }
  function draw() {
    scheduled = false;
    const first = Math.max(0, Math.floor(view.scrollTop / lh) - 20);
    const last = Math.min(total, Math.ceil((view.scrollTop + view.clientHeight) / lh) + 20);
    for (let k = Math.floor(first / CHUNK); k <= Math.floor(Math.max(first, last - 1) / CHUNK); k++) {
      if (k * CHUNK < total || k === 0) loadChunk(k);
    }
    const frag = document.createDocumentFragment();
    for (let i = first; i < last; i++) {
      const text = lineAt(i);
      const row = document.createElement("div");
      row.className = "log-line" + (i === highlight ? " hl" : "") + (matches.has(i) ? " match" : "");
      row.id = "L" + (i + 1);
      row.style.top = i * lh + "px";
      const a = document.createElement("a");
      a.href = "#L" + (i + 1);
      a.textContent = String(i + 1);
      row.appendChild(a);
      if (text !== undefined) renderLine(row, text);
      frag.appendChild(row);
    }
    space.replaceChildren(frag);
  }
  view.addEventListener("scroll", function () {
    const atEnd = view.scrollTop + view.clientHeight >= view.scrollHeight - lh * 2;
    if (!atEnd && follow) follow.checked = false;
    schedule();
  }, { passive: true });
  window.addEventListener("resize", schedule);

  function gotoLine(n) {
    highlight = n - 1;
    if (follow) follow.checked = false;
    view.scrollTop = Math.max(0, (n - 1) * lh - view.clientHeight / 3);
    schedule();
  }
  function fromHash() {
    const m = /^#L(\d+)$/.exec(location.hash);
    if (m) gotoLine(parseInt(m[1], 10));
  }
  window.addEventListener("hashchange", fromHash);

  // Search finds the next line holding the text, reading chunks ahead of
  // the current position as it goes.
  const search = document.getElementById("log-search");
  const found = document.getElementById("log-found");
  let searching = false;
  search.addEventListener("keydown", function (e) {
    if (e.key !== "Enter" || searching) return;
    e.preventDefault();
    const q = search.value;
    if (!q) return;
    searching = true;
    found.textContent = "searching…";
    const start = highlight + 1;
    (function step(i, scanned) {
      while (i < total && scanned < total) {
        const k = Math.floor(i / CHUNK);
        const c = chunks.get(k);
        if (!c) {
          loadChunk(k).then(function () { step(i, scanned); });
          return;
        }
        const t = c[i % CHUNK];
        if (t !== undefined && t.indexOf(q) >= 0) {
          matches = new Set([i]);
          found.textContent = "line " + (i + 1);
          searching = false;
          gotoLine(i + 1);
          return;
        }
        i++;
        scanned++;
        if (i >= total && start > 0 && scanned < total) i = 0;
      }
      found.textContent = "not found";
      searching = false;
    })(start < total ? start : 0, 0);
  });

  function scrollToEnd() {
    if (follow && follow.checked) view.scrollTop = view.scrollHeight;
  }

  // Live: while the step runs, follow its event stream from the last line
  // read; each event's id is the line's sequence number.
  function live(fromSeq) {
    const es = new EventSource(api + "/stream?from=" + fromSeq, { withCredentials: true });
    es.onmessage = function (e) {
      const seq = parseInt(e.lastEventId, 10);
      const k = Math.floor(seq / CHUNK);
      let c = chunks.get(k);
      if (!c) { c = []; chunks.set(k, c); }
      c[seq % CHUNK] = e.data;
      setTotal(seq + 1);
      scrollToEnd();
      schedule();
    };
    es.addEventListener("end", function (e) {
      es.close();
      try {
        const end = JSON.parse(e.data);
        const st = document.getElementById("step-status");
        if (st) { st.textContent = end.status + " (exit " + end.exit_code + ")"; setStatus(st, end.status, true); st.textContent = end.status + " (exit " + end.exit_code + ")"; }
      } catch (err) { /* keep the old status */ }
      refreshBuild();
    });
  }

  const running = !final.has(log.dataset.status);
  loadChunk(0).then(function () {
    if (location.hash) { fromHash(); } else if (running) { scrollToEnd(); }
    if (running) {
      // Read the tail chunk first so that following starts at the end.
      const k = Math.max(0, Math.floor((total - 1) / CHUNK));
      loadChunk(k).then(function () { scrollToEnd(); live(total); });
    } else if (follow) {
      follow.checked = false;
    }
    schedule();
  });
})();
