// The fleet page: reads the gateway's NDJSON feed (GET /v1/fleet/stream) with fetch(), so the
// read token travels in the Authorization header, never in the URL, and lays the snapshots out.
// Every value from the gateway is inserted as text (textContent / text nodes), never as HTML.
"use strict";

const TOKEN_KEY = "sie-fleet-token";
const WATCHDOG_MS = 25000; // the gateway sends at least an empty line every 10 s
const MAX_ROWS = 500;      // grid rows drawn at once; the filter narrows the rest

let snapshot = null;
let receivedAt = 0;        // performance.now() when `snapshot` arrived
let ageCells = [];         // [td, age_s at receipt]
let selected = null;       // model id shown in the detail panel

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("data-")) node.setAttribute(key, String(value));
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setText(id, text) { $(id).textContent = text === null || text === undefined ? "" : String(text); }

function token() { return sessionStorage.getItem(TOKEN_KEY) || ""; }

function headers() {
  const t = token();
  return t ? { Authorization: "Bearer " + t } : {};
}

function setConn(state, text) {
  const pill = $("conn");
  pill.dataset.state = state;
  pill.textContent = text;
}

function askToken(message) {
  setConn("auth", "token needed");
  setText("token-label", message);
  $("token-form").hidden = false;
  $("token-input").focus();
}

function fmtAge(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 1) return "now";
  if (seconds < 90) return Math.round(seconds) + " s ago";
  if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}

function elapsed() { return (performance.now() - receivedAt) / 1000; }

function short(hash) { return hash ? hash.slice(0, 12) : "–"; }

// ---- the feed ---------------------------------------------------------------------------------
let retryMs = 500;

async function connect() {
  const controller = new AbortController();
  let watchdog = null;
  const arm = () => {
    clearTimeout(watchdog);
    watchdog = setTimeout(() => controller.abort(), WATCHDOG_MS);
  };
  try {
    arm();
    const response = await fetch("/v1/fleet/stream", { headers: headers(), signal: controller.signal,
                                                        cache: "no-store" });
    if (response.status === 401) { clearTimeout(watchdog); askToken("This gateway needs a read token."); return; }
    if (response.status === 403) { clearTimeout(watchdog); askToken("That token was refused; try another."); return; }
    if (!response.ok || !response.body) throw new Error("HTTP " + response.status);
    setConn("live", "live");
    retryMs = 500;
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      arm();
      buffer += decoder.decode(value, { stream: true });
      let newline;
      while ((newline = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        if (line.trim()) onSnapshot(JSON.parse(line));
      }
    }
    throw new Error("stream ended");
  } catch (err) {
    clearTimeout(watchdog);
    setConn("reconnecting", "reconnecting…");
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  }
}

function onSnapshot(data) {
  if (data.type !== "snapshot") return;
  snapshot = data;
  receivedAt = performance.now();
  render();
}

// ---- rendering --------------------------------------------------------------------------------
function render() {
  renderHeader();
  renderGrid();
  renderWorkers();
  if (selected) loadDetail(selected, false);
}

function renderHeader() {
  const s = snapshot;
  setText("gw-name", s.gateway.name);
  setText("gw-epoch", "epoch " + s.gateway.epoch);
  setText("gw-generation", (s.gateway.generation ? "generation " + s.gateway.generation.slice(0, 12) : "no generation")
          + (s.gateway.bootstrapped ? "" : " · not bootstrapped"));
  const cfg = s.config;
  if (!cfg.url) {
    setText("cfg-epoch", "not configured");
    setText("cfg-sub", "filesystem seed only");
  } else if (cfg.epoch === null) {
    setText("cfg-epoch", "not polled yet");
    setText("cfg-sub", cfg.url);
  } else {
    setText("cfg-epoch", "epoch " + cfg.epoch);
    const sub = $("cfg-sub");
    // no "polled n s ago": polls that change nothing send no snapshot, so an age would lie
    sub.replaceChildren(
      el("span", { class: cfg.in_sync ? "in-sync" : "drift" },
         cfg.in_sync ? "in sync with this gateway" : "differs from this gateway"));
  }
  const nats = $("nats");
  const natsState = !s.nats.configured ? "off" : (s.nats.connected ? "connected" : "disconnected");
  nats.dataset.state = natsState;
  nats.textContent = natsState === "off" ? "not configured" : natsState;
  setText("nats-sub", natsState === "disconnected" ? "deltas stop; the epoch poll catches up" : "");
  if (s.resync.last_cause) {
    setText("resync", s.resync.last_cause);
    setText("resync-sub", fmtAge(s.resync.age_s === null ? null : s.resync.age_s + elapsed())
            + " · " + s.resync.count + " in all");
  } else {
    setText("resync", "none");
    setText("resync-sub", "");
  }
  const silent = s.workers.filter((w) => w.state === "silent").length;
  setText("worker-count", s.gateway.healthy_workers + " / " + s.gateway.workers + " ready");
  setText("worker-sub", silent ? silent + " silent" : "");

  const peers = s.peers || [];
  $("peers-section").hidden = peers.length === 0;
  $("peers").replaceChildren(...peers.map((p) => {
    let verdict;
    if (p.error) verdict = el("span", { class: "drift" }, "unreachable: " + p.error);
    else if (p.epoch === null) verdict = el("span", { class: "muted" }, "not read yet");
    else if (p.epoch === s.gateway.epoch && (p.generation || "") === (s.gateway.generation || ""))
      verdict = el("span", { class: "in-sync" }, "same as this gateway");
    else if (p.epoch === s.gateway.epoch) verdict = el("span", { class: "drift" }, "another generation");
    else verdict = el("span", { class: "drift" }, p.epoch > s.gateway.epoch ? "ahead" : "behind");
    return el("li", { "data-peer": p.url }, el("code", {}, p.url), " · epoch ",
              p.epoch === null ? "–" : p.epoch, " · ", verdict);
  }));
}

function cellFor(model, bundle) {
  // per model and bundle: acked / pending / none, from the bundle's readiness
  const loaded = (bundle.loaded && bundle.loaded[model.model_id]) || 0;
  if (bundle.total_eligible_workers === 0) return { state: "none", text: "no eligible workers", loaded };
  if (bundle.acked) return { state: "acked", text: bundle.acked_count + "/" + bundle.total_eligible_workers + " acked", loaded };
  return { state: "pending", text: bundle.pending_count + " pending, " + bundle.acked_count + " acked", loaded };
}

function modelReady(model, byBundle) {
  return model.bundles.length > 0 && model.bundles.every((b) => byBundle[b] && byBundle[b].acked);
}

function renderGrid() {
  const s = snapshot;
  const byBundle = {};
  for (const b of s.bundles) byBundle[b.bundle_id] = b;
  const bundles = s.bundles.map((b) => b.bundle_id);
  const filter = $("model-filter").value.trim().toLowerCase();
  const sort = $("model-sort").value;
  let models = s.models.filter((m) => !filter || m.model_id.toLowerCase().includes(filter)
                                       || m.bundles.some((b) => b.toLowerCase().includes(filter)));
  const byName = (a, b) => (a.model_id < b.model_id ? -1 : a.model_id > b.model_id ? 1 : 0);
  if (sort === "newest") models.sort((a, b) => (b.rank - a.rank) || byName(a, b));
  else if (sort === "notready") models.sort((a, b) => (modelReady(a, byBundle) - modelReady(b, byBundle)) || byName(a, b));
  else models.sort(byName);
  const ready = s.models.filter((m) => modelReady(m, byBundle)).length;
  setText("model-count", ready + " of " + s.models.length + " ready");

  $("grid").tHead.replaceChildren(el("tr", {}, el("th", {}, "model"), ...bundles.map((b) => el("th", {}, b))));
  const rows = models.slice(0, MAX_ROWS).map((m) => {
    const cells = bundles.map((name) => {
      if (!m.bundles.includes(name)) return el("td", { class: "absent" }, "·");
      const c = cellFor(m, byBundle[name]);
      return el("td", { "data-bundle": name, "data-state": c.state },
                el("span", { class: "cell " + c.state }, c.text),
                c.loaded ? el("span", { class: "loaded" }, "loaded " + c.loaded) : null);
    });
    const row = el("tr", { "data-model": m.model_id, "data-ready": modelReady(m, byBundle) ? "yes" : "no",
                           tabIndex: 0 },
                   el("td", { class: "model" }, m.model_id), ...cells);
    row.addEventListener("click", () => loadDetail(m.model_id, true));
    row.addEventListener("keydown", (event) => { if (event.key === "Enter") loadDetail(m.model_id, true); });
    return row;
  });
  $("grid").tBodies[0].replaceChildren(...rows);
  setText("grid-note", models.length > MAX_ROWS ? "showing " + MAX_ROWS + " of " + models.length + " models; filter to see others" : "");
}

function renderWorkers() {
  const filter = $("worker-filter").value.trim().toLowerCase();
  const base = elapsed();
  ageCells = [];
  const rows = snapshot.workers
    .filter((w) => !filter || [w.name, w.bundle, w.pool, w.state, w.url].some((v) => (v || "").toLowerCase().includes(filter)))
    .map((w) => {
      const age = el("td", { class: "age" }, w.last_frame_age_s === null ? "–" : fmtAge(w.last_frame_age_s + base));
      if (w.last_frame_age_s !== null) ageCells.push([age, w.last_frame_age_s]);
      return el("tr", { "data-worker": w.name, "data-state": w.state },
        el("td", { title: w.url }, w.name),
        el("td", {}, w.bundle || "–"),
        el("td", {}, w.pool || "–"),
        el("td", {}, el("code", { title: w.bundle_config_hash }, short(w.bundle_config_hash)),
           w.bundle_config_hash ? (w.acked ? " ✓" : " ≠") : ""),
        el("td", {}, w.ready ? "yes" : "no"),
        el("td", {}, el("span", { class: "state " + w.state },
                        w.state === "silent" ? (w.connected ? "silent" : "silent (disconnected)") : w.state.replace("_", " "))),
        age,
        el("td", {}, w.loaded_models.length ? w.loaded_models.join(", ") : "–"));
    });
  $("workers").tBodies[0].replaceChildren(...rows);
}

function tickAges() {
  if (!snapshot) return;
  const base = elapsed();
  for (const [cell, age] of ageCells) cell.textContent = fmtAge(age + base);
  renderHeader();
}

// ---- model detail -----------------------------------------------------------------------------
async function loadDetail(modelId, scroll) {
  selected = modelId;
  let body;
  try {
    const response = await fetch("/v1/fleet/models/" + modelId.split("/").map(encodeURIComponent).join("/"),
                                 { headers: headers(), cache: "no-store" });
    if (response.status === 401 || response.status === 403) { askToken("This gateway needs a read token."); return; }
    if (response.status === 404) { closeDetail(); return; }
    if (!response.ok) throw new Error("HTTP " + response.status);
    body = await response.json();
  } catch (err) {
    return; // the feed's own state shows connection trouble
  }
  if (selected !== modelId) return;
  setText("detail-id", body.model_id);
  const profiles = el("ul", {}, ...body.profiles.map((p) =>
    el("li", { "data-profile": p.name }, el("strong", {}, p.name),
       p.adapter_path ? " · " + p.adapter_path : "", p.extends ? " · extends " + p.extends : "")));
  const bundles = body.bundles.map((b) => el("div", { "data-bundle": b.bundle_id },
    el("h3", {}, b.bundle_id, " ", el("span", { class: "cell " + (b.total_eligible_workers === 0 ? "none" : b.acked ? "acked" : "pending") },
                                    b.total_eligible_workers === 0 ? "no eligible workers" : b.acked ? "acked" : "pending")),
    el("div", {}, "expected hash ", el("code", {}, b.expected_bundle_config_hash || "–")),
    el("div", {}, "acked: ", b.acked_workers.length ? b.acked_workers.join(", ") : "none"),
    el("div", {}, "pending: ", b.pending_workers.length ? b.pending_workers.join(", ") : "none")));
  $("detail-body").replaceChildren(el("h3", {}, "profiles"), profiles, ...bundles,
                                   el("h3", {}, "YAML (from this gateway's mirror)"), el("pre", {}, body.yaml));
  $("detail").hidden = false;
  if (scroll) $("detail").scrollIntoView({ behavior: "smooth", block: "start" });
}

function closeDetail() {
  selected = null;
  $("detail").hidden = true;
}

// ---- wiring -----------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
    $("token-input").value = "";
    $("token-form").hidden = true;
    setConn("connecting", "connecting…");
    connect();
  });
  $("model-filter").addEventListener("input", () => snapshot && renderGrid());
  $("model-sort").addEventListener("change", () => snapshot && renderGrid());
  $("worker-filter").addEventListener("input", () => snapshot && renderWorkers());
  $("detail-close").addEventListener("click", closeDetail);
  setInterval(tickAges, 1000);
  connect();
});
