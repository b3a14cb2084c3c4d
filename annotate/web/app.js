// demotape review: the page. No framework, no build step: served as is by
// `demotape review serve`. Keyboard first; every change is a correction appended to the
// episode's review history on the server (the same one `demotape review correct` writes).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const OUTCOMES = ["success", "slip", "drop", "miss"];
const COLORS = {
  idle: "#3a3f4b", reach: "#2f6690", grasp: "#3a7d44", lift: "#7a9e3a", transport: "#9e8a3a",
  place: "#9e5f3a", release: "#8a3a6b", retreat: "#5a4a8a", segment: "#607080",
};

const S = {
  queue: [], sel: 0, author: null,
  ep: null,           // the episode document from /api/episode
  cur: -1,            // index in the queue of the open episode
  t: 0, playing: false, lastTick: 0,
  camera: 0, shown: -1, loading: false,
  undo: [],           // corrections to apply to undo, most recent last
  drag: null,
};

const $ = (id) => document.getElementById(id);

function withToken(url) {
  if (!token) return url;
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

async function api(url, opts = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers["x-demotape-token"] = token;
  const r = await fetch(withToken(url), { ...opts, headers });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (!r.ok) {
    const e = new Error((body && body.error) || r.statusText);
    e.status = r.status;
    throw e;
  }
  return body;
}

function banner(text, ok = false) {
  const b = $("banner");
  if (!text) { b.hidden = true; return; }
  b.textContent = text;
  b.className = ok ? "ok" : "";
  b.hidden = false;
}

function author() {
  if (S.author) return S.author;
  let a = localStorage.getItem("demotape.author");
  if (!a) {
    a = (prompt("Your name, for the review history:") || "").trim();
    if (!a) return null;
    localStorage.setItem("demotape.author", a);
  }
  S.author = a;
  $("who").textContent = "reviewer: " + a;
  return a;
}

// ---------------------------------------------------------------- queue

async function loadQueue() {
  const q = await api("/api/queue");
  S.queue = q.episodes;
  if (q.author) { S.author = q.author; $("who").textContent = "reviewer: " + q.author; }
  else if (localStorage.getItem("demotape.author")) {
    S.author = localStorage.getItem("demotape.author");
    $("who").textContent = "reviewer: " + S.author;
  }
  $("where").textContent = q.dir;
  const tb = document.querySelector("#queue tbody");
  tb.innerHTML = "";
  S.queue.forEach((e, i) => {
    const tr = document.createElement("tr");
    tr.dataset.i = i;
    if (e.reviewed > 0) tr.classList.add("done");
    tr.innerHTML = `<td>${i + 1}</td><td class="id"></td><td>${e.outcome || "—"}</td>` +
      `<td>${e.confidence.toFixed(2)}</td><td>${e.reviewed}</td><td class="why"></td>`;
    tr.querySelector(".id").textContent = e.id;
    tr.querySelector(".why").textContent = e.why || "—";
    tr.onclick = () => openEpisode(i);
    tb.appendChild(tr);
  });
  markQueue();
}

function markQueue() {
  document.querySelectorAll("#queue tbody tr").forEach((tr) =>
    tr.classList.toggle("sel", Number(tr.dataset.i) === S.sel));
}

function showQueue() {
  S.playing = false;
  $("episode-view").hidden = true;
  $("queue-view").hidden = false;
  history.replaceState(null, "", withToken("/"));
  loadQueue().catch((e) => banner(e.message));
}

// ---------------------------------------------------------------- episode

async function openEpisode(i) {
  if (i < 0 || i >= S.queue.length) return;
  banner(null);
  S.cur = i; S.sel = i;
  S.playing = false;
  const id = S.queue[i].id;
  let ep;
  try {
    ep = await api("/api/episode?id=" + encodeURIComponent(id));
  } catch (e) {
    banner(`${id}: ${e.message}`);
    return;
  }
  S.ep = ep;
  S.undo = [];
  S.t = 0; S.shown = -1;
  $("queue-view").hidden = true;
  $("episode-view").hidden = false;
  history.replaceState(null, "", withToken("/?episode=" + encodeURIComponent(id)));
  const sel = $("camera");
  sel.innerHTML = "";
  ep.cameras.forEach((c, k) => {
    const o = document.createElement("option");
    o.value = k; o.textContent = `${c.topic} (${c.t.length})`;
    sel.appendChild(o);
  });
  // an RGB camera first, if there is one
  const rgb = ep.cameras.findIndex((c) => !/depth/.test(c.topic));
  S.camera = rgb >= 0 ? rgb : 0;
  sel.value = S.camera;
  $("ep-name").textContent = ep.episode;
  $("ep-task").textContent = [ep.task, ep.operator].filter(Boolean).join(" · ");
  renderLabels();
  renderSide();
  drawPlots();
  showFrame();
}

function duration() {
  const ph = S.ep.labels_layer.effective.phases;
  const last = ph.length ? ph[ph.length - 1][2] : 0;
  const sig = S.ep.signals && S.ep.signals.t ? S.ep.signals.t[S.ep.signals.t.length - 1] : 0;
  return Math.max(last, sig || 0, 0.001);
}

// phase keys as the server addresses them: "idle", then "idle#2", ...
function phaseKeys(phases) {
  const seen = {};
  return phases.map((p) => {
    seen[p[0]] = (seen[p[0]] || 0) + 1;
    return seen[p[0]] === 1 ? p[0] : `${p[0]}#${seen[p[0]]}`;
  });
}

function renderLabels() {
  const L = S.ep.labels_layer;
  const eff = L.effective;
  const o = $("outcome");
  o.textContent = eff.outcome;
  o.className = eff.outcome;
  $("source").textContent = eff.source === "human" ? "(human)" : "(automatic)";
  const c = L.auto.confidence;
  $("confidence").textContent = typeof c === "number" ? `confidence ${c.toFixed(2)}` : "";
  $("revision").textContent = `${L.revision} correction${L.revision === 1 ? "" : "s"}`;
  renderPhases();
  const h = $("history");
  h.innerHTML = "";
  L.history.forEach((c) => {
    const li = document.createElement("li");
    const parts = [];
    if (c.outcome) parts.push("outcome " + c.outcome);
    Object.entries(c.moves || {}).forEach(([k, v]) => parts.push(`${k} → ${v.toFixed(3)} s`));
    if (c.note) parts.push("note: " + c.note);
    li.textContent = `${c.author}: ${parts.join(", ") || "—"}${c.reason ? " (" + c.reason + ")" : ""}`;
    h.appendChild(li);
  });
}

function list(id, items, fmt) {
  const ul = $(id);
  ul.innerHTML = "";
  if (!items || !items.length) { ul.innerHTML = "<li>—</li>"; return; }
  items.forEach((x) => {
    const li = document.createElement("li");
    const [text, fail] = fmt(x);
    li.textContent = text;
    if (fail) li.className = "fail";
    ul.appendChild(li);
  });
}

function renderSide() {
  const A = S.ep.labels_layer.auto;
  list("evidence", A.evidence, (e) => [e, false]);
  const num = (x) => (typeof x === "number" ? Number(x.toPrecision(4)) : x);
  list("gates", A.gates, (g) => [`${g.pass ? "✓" : "✗"} ${g.name}: ${num(g.value)} (limit ${num(g.limit)}) ${g.detail || ""}`, !g.pass]);
  const labels = S.ep.labels ? Object.entries(S.ep.labels).map(([k, v]) => `${k} = ${v}`) : [];
  list("labels", labels, (x) => [x, false]);
  const t0 = S.ep.start_ns;
  const ev = (S.ep.events || []).filter((e) => e.kind !== "start" && e.kind !== "stop");
  list("events", ev, (e) => [`${((e.t_ns - t0) / 1e9).toFixed(2)} s ${e.kind} ${e.topic} ${e.detail}`, false]);
}

// ---------------------------------------------------------------- timeline

const PLOTS = [
  ["EE speed (m/s)", "t", "ee_speed"],
  ["gripper aperture (m)", "t", "aperture"],
  ["wrench |F| (N)", "wrench_t", "wrench"],
  ["touch (kPa)", "touch_t", "touch"],
];

function xOf(t, w) { return (t / duration()) * w; }
function tOf(x, w) { return Math.max(0, Math.min(duration(), (x / w) * duration())); }

function drawPlots() {
  const cv = $("plots");
  const w = cv.clientWidth;
  cv.width = w;
  const g = cv.getContext("2d");
  g.clearRect(0, 0, w, cv.height);
  const sig = S.ep.signals || {};
  const rows = PLOTS.filter(([, tk, vk]) => sig[tk] && sig[vk]);
  const rh = cv.height / Math.max(rows.length, 1);
  g.font = "11px system-ui";
  if (sig.error) {
    g.fillStyle = "#ff8a80";
    g.fillText("signals: " + sig.error, 8, 16);
  }
  rows.forEach(([name, tk, vk], r) => {
    const ts = sig[tk], vs = sig[vk];
    let lo = Infinity, hi = -Infinity;
    vs.forEach((v) => { if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } });
    if (!(hi > lo)) { hi = lo + 1; }
    const y0 = r * rh;
    g.strokeStyle = "#2c3038";
    g.beginPath(); g.moveTo(0, y0 + rh - 0.5); g.lineTo(w, y0 + rh - 0.5); g.stroke();
    g.strokeStyle = "#64b5f6";
    g.beginPath();
    ts.forEach((t, i) => {
      const x = xOf(t, w), y = y0 + rh - 4 - ((vs[i] - lo) / (hi - lo)) * (rh - 12);
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
    g.fillStyle = "#9aa0aa";
    g.fillText(`${name}  [${lo.toFixed(2)} … ${hi.toFixed(2)}]`, 6, y0 + 12);
  });
  // boundaries across the plots, cursor
  g.strokeStyle = "rgba(255,255,255,.25)";
  S.ep.labels_layer.effective.phases.slice(1).forEach((p) => {
    const x = Math.round(xOf(p[1], w)) + 0.5;
    g.beginPath(); g.moveTo(x, 0); g.lineTo(x, cv.height); g.stroke();
  });
  const x = Math.round(xOf(S.t, w)) + 0.5;
  g.strokeStyle = "#ffd54f";
  g.beginPath(); g.moveTo(x, 0); g.lineTo(x, cv.height); g.stroke();
}

function renderPhases() {
  const bar = $("phases");
  const w = bar.clientWidth || $("plots").clientWidth;
  bar.innerHTML = "";
  const phases = S.ep.labels_layer.effective.phases;
  const keys = phaseKeys(phases);
  phases.forEach((p, i) => {
    const d = document.createElement("div");
    d.className = "phase";
    d.style.left = xOf(p[1], w) + "px";
    d.style.width = Math.max(0, xOf(p[2], w) - xOf(p[1], w)) + "px";
    d.style.background = COLORS[p[0]] || "#444";
    d.textContent = p[0];
    d.title = `${keys[i]}: ${p[1].toFixed(3)} – ${p[2].toFixed(3)} s`;
    bar.appendChild(d);
    if (i > 0) {
      const h = document.createElement("div");
      h.className = "handle";
      h.dataset.i = i;
      h.dataset.key = keys[i];
      h.style.left = xOf(p[1], w) + "px";
      h.title = `drag to move the start of ${keys[i]}`;
      h.addEventListener("mousedown", startDrag);
      bar.appendChild(h);
    }
  });
  const c = document.createElement("div");
  c.className = "cursor";
  c.id = "phase-cursor";
  c.style.left = xOf(S.t, w) + "px";
  bar.appendChild(c);
}

function startDrag(ev) {
  ev.preventDefault();
  ev.stopPropagation();
  const h = ev.currentTarget;
  const i = Number(h.dataset.i);
  const ph = S.ep.labels_layer.effective.phases;
  S.drag = { h, i, key: h.dataset.key, from: ph[i][1], lo: ph[i - 1][1], hi: ph[i][2], t: ph[i][1] };
  h.classList.add("drag");
}

function moveDrag(ev) {
  if (!S.drag) return;
  const bar = $("phases");
  const r = bar.getBoundingClientRect();
  const eps = 0.001;
  const t = Math.min(S.drag.hi - eps, Math.max(S.drag.lo + eps, tOf(ev.clientX - r.left, r.width)));
  S.drag.t = t;
  S.drag.h.style.left = xOf(t, r.width) + "px";
  seek(t);
}

async function endDrag() {
  if (!S.drag) return;
  const d = S.drag;
  S.drag = null;
  d.h.classList.remove("drag");
  if (Math.abs(d.t - d.from) < 1e-4) { renderPhases(); return; }
  const t = Math.round(d.t * 1000) / 1000;
  await submit({ moves: { [d.key]: t }, reason: "boundary moved in review" },
    { moves: { [d.key]: d.from }, reason: "undo" });
}

// ---------------------------------------------------------------- corrections

async function submit(change, inverse) {
  const a = author();
  if (!a) { banner("no reviewer name: nothing recorded"); return false; }
  const body = { base: S.ep.labels_layer.revision, author: a, ...change };
  try {
    const layer = await api("/api/correct?id=" + encodeURIComponent(S.ep.id), {
      method: "POST", body: JSON.stringify(body),
    });
    S.ep.labels_layer = layer;
    if (inverse) S.undo.push(inverse);
    banner(null);
  } catch (e) {
    banner(e.message);
    if (e.status === 409) {
      // show what the other reviewer did; keep nothing of ours
      const fresh = await api("/api/episode?id=" + encodeURIComponent(S.ep.id));
      S.ep.labels_layer = fresh.labels_layer;
    }
  }
  renderLabels();
  drawPlots();
  return true;
}

async function setOutcome(o) {
  const prev = S.ep.labels_layer.effective.outcome;
  if (o === prev) return;
  await submit({ outcome: o, reason: "outcome set in review" }, { outcome: prev, reason: "undo" });
}

async function accept() {
  const eff = S.ep.labels_layer.effective;
  const ok = await submit({ outcome: eff.outcome, reason: "accepted" }, null);
  if (ok) next(1);
}

async function undo() {
  const inv = S.undo.pop();
  if (!inv) { banner("nothing to undo"); return; }
  await submit(inv, null);
}

function next(step) {
  const i = S.cur + step;
  if (i >= 0 && i < S.queue.length) openEpisode(i);
  else showQueue();
}

// ---------------------------------------------------------------- playback

function frames() { return S.ep && S.ep.cameras[S.camera] ? S.ep.cameras[S.camera].t : []; }

// index of the frame at or before t
function frameAt(t) {
  const ts = frames();
  let lo = 0, hi = ts.length - 1;
  if (hi < 0) return -1;
  while (lo < hi) {
    const m = (lo + hi + 1) >> 1;
    if (ts[m] <= t) lo = m; else hi = m - 1;
  }
  return lo;
}

function showFrame() {
  $("clock").textContent = S.t.toFixed(3) + " s";
  const c = $("phase-cursor");
  if (c) c.style.left = xOf(S.t, $("phases").clientWidth) + "px";
  const i = frameAt(S.t);
  if (i < 0 || i === S.shown || S.loading) return;
  S.loading = true;
  S.shown = i;
  const cam = S.ep.cameras[S.camera];
  const img = $("frame");
  img.dataset.want = i;
  img.src = withToken(`/api/frame?id=${encodeURIComponent(S.ep.id)}&topic=${encodeURIComponent(cam.topic)}&i=${i}`);
}

$("frame").addEventListener("load", () => {
  S.loading = false;
  $("frame").dataset.shown = $("frame").dataset.want;
  showFrame(); // catch up if the time moved on meanwhile
});
$("frame").addEventListener("error", () => { S.loading = false; });

function seek(t) {
  S.t = Math.max(0, Math.min(duration(), t));
  drawPlots();
  showFrame();
}

function stepFrame(k) {
  const ts = frames();
  if (!ts.length) return seek(S.t + k / 30);
  const i = Math.max(0, Math.min(ts.length - 1, frameAt(S.t) + k));
  seek(ts[i]);
}

function jumpBoundary(dir) {
  const b = S.ep.labels_layer.effective.phases.slice(1).map((p) => p[1]);
  const t = dir > 0 ? b.find((x) => x > S.t + 1e-6) : [...b].reverse().find((x) => x < S.t - 1e-6);
  if (t !== undefined) seek(t);
}

function tick(now) {
  if (S.playing && S.ep) {
    const dt = S.lastTick ? (now - S.lastTick) / 1000 : 0;
    S.t += dt;
    if (S.t >= duration()) { S.t = duration(); S.playing = false; $("play").textContent = "▶"; }
    drawPlots();
    showFrame();
  }
  S.lastTick = now;
  requestAnimationFrame(tick);
}

function togglePlay() {
  S.playing = !S.playing;
  $("play").textContent = S.playing ? "❚❚" : "▶";
}

// ---------------------------------------------------------------- input

function seekFromEvent(ev, el) {
  const r = el.getBoundingClientRect();
  seek(tOf(ev.clientX - r.left, r.width));
}

$("plots").addEventListener("mousedown", (ev) => seekFromEvent(ev, $("plots")));
$("phases").addEventListener("mousedown", (ev) => { if (!S.drag) seekFromEvent(ev, $("phases")); });
window.addEventListener("mousemove", moveDrag);
window.addEventListener("mouseup", endDrag);
$("back").onclick = showQueue;
$("play").onclick = togglePlay;
$("camera").onchange = (e) => { S.camera = Number(e.target.value); S.shown = -1; showFrame(); };
window.addEventListener("resize", () => { if (S.ep && !$("episode-view").hidden) { renderPhases(); drawPlots(); } });

document.addEventListener("keydown", (ev) => {
  if (ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") return;
  if (!$("queue-view").hidden) {
    if (ev.key === "ArrowDown") { S.sel = Math.min(S.queue.length - 1, S.sel + 1); markQueue(); }
    else if (ev.key === "ArrowUp") { S.sel = Math.max(0, S.sel - 1); markQueue(); }
    else if (ev.key === "Enter") openEpisode(S.sel);
    else return;
    ev.preventDefault();
    return;
  }
  if (!S.ep) return;
  const k = ev.key;
  if (k === " ") togglePlay();
  else if (k === "ArrowRight") ev.shiftKey ? seek(S.t + 1) : stepFrame(1);
  else if (k === "ArrowLeft") ev.shiftKey ? seek(S.t - 1) : stepFrame(-1);
  else if (k === "]") jumpBoundary(1);
  else if (k === "[") jumpBoundary(-1);
  else if (k >= "1" && k <= "4") setOutcome(OUTCOMES[Number(k) - 1]);
  else if (k === "a") accept();
  else if (k === "n") next(1);
  else if (k === "p") next(-1);
  else if (k === "u" || (k === "z" && (ev.ctrlKey || ev.metaKey))) undo();
  else if (k === "c") {
    if (S.ep.cameras.length) {
      S.camera = (S.camera + 1) % S.ep.cameras.length;
      $("camera").value = S.camera; S.shown = -1; showFrame();
    }
  } else if (k === "Escape") showQueue();
  else return;
  ev.preventDefault();
});

// ---------------------------------------------------------------- start

(async () => {
  try {
    await loadQueue();
    const want = new URLSearchParams(location.search).get("episode");
    const i = want ? S.queue.findIndex((e) => e.id === want) : -1;
    if (i >= 0) await openEpisode(i);
  } catch (e) {
    banner(e.message);
  }
  requestAnimationFrame(tick);
})();
