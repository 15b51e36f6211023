"use strict";
// The shoal dashboard page: polls the JSON API once a second and updates the tables in place.
// Chart samples live here, in memory (two minutes per crawl); the server keeps none.
// Everything shown from the API is set as text, never parsed as HTML (items come from crawled sites).

const TICK_MS = 1000;
const SAMPLES = 120;
const LISTED = 12;
const ENDED = ["finished", "failed", "cancelled"];
const SVG = "http://www.w3.org/2000/svg";

const view = { token: "", write: false, selected: null, pinned: false, crawls: [], history: new Map() };

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// -- talking to the API ------------------------------------------------------------------------

function takeToken() {
  // A token comes in the address's fragment (#token=...), which browsers never send to a server.
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.has("token")) {
    sessionStorage.setItem("shoal-token", fragment.get("token"));
    history.replaceState(null, "", location.pathname + location.search);
  }
  view.token = sessionStorage.getItem("shoal-token") || "";
}

async function api(path, method = "GET") {
  const headers = view.token ? { Authorization: "Bearer " + view.token } : {};
  const response = await fetch(path, { method, headers, cache: "no-store" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new ApiError(response.status, body.error || response.statusText);
  return body;
}

async function steer(crawl, action) {
  if (action === "cancel" && !confirm(`Cancel ${crawl}? Nothing more is fetched; its items and stats are kept.`)) return;
  try {
    await api(`/api/crawls/${encodeURIComponent(crawl)}/${action}`, "POST");
    showProblem("");
  } catch (error) {
    showProblem(`${action} ${crawl}: ${error.message}`);
  }
}

// -- building the page ---------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "onclick") node.addEventListener("click", value);
    else node.setAttribute(name, value);
  }
  node.append(...children.map((child) => (child instanceof Node ? child : String(child))));
  return node;
}

const count = (n) => Number(n).toLocaleString("en-US");
const rate = (n) => Number(n).toFixed(1);
const num = (text, field) => ({ text, class: "num", field });

function age(seconds) {
  if (seconds < 120) return `${seconds.toFixed(0)}s`;
  return seconds < 7200 ? `${(seconds / 60).toFixed(0)}m` : `${(seconds / 3600).toFixed(0)}h`;
}

// Fill a cell from its spec: text (a string or number), or {text|nodes, class, field, sig}. A cell
// whose signature did not change is left alone, so a button is never replaced under the pointer.
function fill(td, cell) {
  const spec = typeof cell === "object" ? cell : { text: cell };
  const sig = spec.sig ?? `${spec.text}|${spec.class || ""}`;
  if (td.dataset.sig === sig) return;
  td.dataset.sig = sig;
  td.className = spec.class || "";
  if (spec.field) td.dataset.field = spec.field;
  if (spec.nodes) td.replaceChildren(...spec.nodes());
  else td.textContent = String(spec.text);
}

// Bring a table's rows in line with ``records``: one row per key, kept across updates.
function sync(table, records, keyOf, cellsOf, onNewRow) {
  const body = table.tBodies[0];
  const existing = new Map([...body.rows].map((row) => [row.dataset.key, row]));
  const rows = records.map((record) => {
    const key = keyOf(record);
    let row = existing.get(key);
    if (!row) {
      row = el("tr", { dataset: { key } });
      if (onNewRow) onNewRow(row, key);
    }
    const cells = cellsOf(record);
    while (row.cells.length < cells.length) row.append(el("td"));
    cells.forEach((cell, i) => fill(row.cells[i], cell));
    return row;
  });
  const same = rows.length === body.rows.length && rows.every((row, i) => body.rows[i] === row);
  if (!same) body.replaceChildren(...rows);
}

// A small time-series chart: one polyline per series ({values, class}), newest at the right edge.
function chart(series, width, height) {
  const values = series.flatMap((line) => line.values);
  const sig = series.map((line) => line.values.map(rate).join(",")).join(";");
  const draw = () => {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const top = Math.max(1, ...values);
    // The first 30 samples fill the width as they come; then the window widens to SAMPLES.
    const span = Math.max(30, ...series.map((line) => line.values.length));
    const step = width / (span - 1);
    for (const line of series) {
      if (line.values.length < 2) continue;
      const left = width - step * (line.values.length - 1);
      const points = line.values.map((v, i) => {
        const y = height - 2 - (v / top) * (height - 14);
        return `${(left + i * step).toFixed(1)},${y.toFixed(1)}`;
      });
      const polyline = document.createElementNS(SVG, "polyline");
      polyline.setAttribute("points", points.join(" "));
      polyline.setAttribute("class", line.class);
      svg.append(polyline);
    }
    const label = document.createElementNS(SVG, "text");
    label.setAttribute("x", 3);
    label.setAttribute("y", 10);
    label.textContent = `max ${top >= 10 ? count(Math.round(top)) : rate(top)}`;
    svg.append(label);
    return [svg];
  };
  return { nodes: draw, sig };
}

function showProblem(text) {
  const problem = document.getElementById("problem");
  problem.textContent = text;
  problem.hidden = !text;
}

// -- samples for the charts ------------------------------------------------------------------------

function record(crawls, now) {
  for (const crawl of crawls) {
    const samples = view.history.get(crawl.crawl) || [];
    const sids = {};
    for (const [sid, s] of Object.entries(crawl.sids)) sids[sid] = { frontier: s.frontier, queued: s.queued, pages: s.pages };
    samples.push({ t: now, pages: crawl.pages, sids });
    if (samples.length > SAMPLES) samples.shift();
    view.history.set(crawl.crawl, samples);
  }
  const listed = new Set(crawls.map((crawl) => crawl.crawl));
  for (const id of view.history.keys()) if (!listed.has(id)) view.history.delete(id);
}

// Per-second increase of ``pick(sample)`` between consecutive samples.
function perSecond(samples, pick) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const seconds = (samples[i].t - samples[i - 1].t) / 1000;
    out.push(seconds > 0 ? Math.max(0, pick(samples[i]) - pick(samples[i - 1])) / seconds : 0);
  }
  return out;
}

// -- the sections --------------------------------------------------------------------------------

function buttons(crawl) {
  if (!view.write || ENDED.includes(crawl.state)) return { text: "", sig: "none" };
  const actions = [crawl.state === "paused" ? "resume" : "pause", "cancel"];
  const press = (action) => (event) => {
    event.stopPropagation();
    steer(crawl.crawl, action);
  };
  return {
    sig: actions.join(","),
    nodes: () => actions.map((action) => el("button", { type: "button", dataset: { action }, onclick: press(action) }, action)),
  };
}

function select(crawl) {
  view.selected = crawl;
  view.pinned = true;
  renderCrawls(view.crawls);
  renderDetail(view.crawls.find((c) => c.crawl === crawl));
  renderLog("items", []);
  renderLog("errors", []);
}

function renderCrawls(crawls) {
  const table = document.getElementById("crawls");
  sync(
    table,
    crawls,
    (crawl) => crawl.crawl,
    (crawl) => [
      crawl.crawl,
      crawl.spider,
      { nodes: () => [el("span", { class: `state ${crawl.state}` }, crawl.state)], sig: crawl.state, field: "state" },
      num(count(crawl.pages), "pages"),
      num(count(crawl.items), "items"),
      num(count(crawl.errors), "errors"),
      num(rate(crawl.pages_per_second), "rate"),
      { text: crawl.owner || "-", class: "muted" },
      buttons(crawl),
    ],
    (row, key) => row.addEventListener("click", () => select(key)),
  );
  for (const row of table.tBodies[0].rows) row.classList.toggle("selected", row.dataset.key === view.selected);
  document.getElementById("no-crawls").hidden = crawls.length > 0;
}

function renderDetail(crawl) {
  document.getElementById("detail").hidden = !crawl;
  if (!crawl) return;
  const samples = view.history.get(crawl.crawl) || [];
  const pagesPerSecond = perSecond(samples, (s) => s.pages);
  document.getElementById("detail-title").textContent = `${crawl.crawl} · ${crawl.spider} · ${crawl.state}`;
  document.getElementById("fig-pages").textContent = count(crawl.pages);
  document.getElementById("fig-items").textContent = count(crawl.items);
  document.getElementById("fig-errors").textContent = count(crawl.errors);
  document.getElementById("fig-rate").textContent = rate(pagesPerSecond.at(-1) || 0);
  const failure = document.getElementById("crawl-error");
  failure.textContent = crawl.error;
  failure.hidden = !crawl.error;
  document.getElementById("failed-count").textContent = `(${count(crawl.errors)} failed requests)`;
  const box = document.getElementById("rate-chart");
  const big = chart([{ values: pagesPerSecond, class: "rate" }], 360, 64);
  if (box.dataset.sig !== big.sig) {
    box.dataset.sig = big.sig;
    box.replaceChildren(...big.nodes());
  }
  sync(
    document.getElementById("sids"),
    Object.values(crawl.sids),
    (sid) => sid.sid,
    (sid) => {
      const of = (pick) => samples.map((s) => (s.sids[sid.sid] ? pick(s.sids[sid.sid]) : 0));
      return [
        sid.sid,
        sid.kind,
        num(count(sid.frontier), "frontier"),
        num(count(sid.queued), "queued"),
        num(count(sid.inflight), "inflight"),
        { text: sid.workers, class: sid.workers ? "num" : "num zero", field: "workers" },
        num(count(sid.pages), "pages"),
        num(rate(sid.pages_per_second), "rate"),
        chart(
          [
            { values: of((s) => s.frontier), class: "frontier" },
            { values: of((s) => s.queued), class: "queued" },
          ],
          200,
          36,
        ),
        chart([{ values: perSecond(samples, (s) => (s.sids[sid.sid] ? s.sids[sid.sid].pages : 0)), class: "rate" }], 140, 36),
      ];
    },
  );
}

function renderLog(id, lines) {
  const shown = lines.length ? lines.map((line) => el("li", {}, ...line)) : [el("li", { class: "muted" }, "none yet")];
  document.getElementById(id).replaceChildren(...shown);
}

function renderWorkers(workers) {
  sync(
    document.getElementById("workers"),
    workers,
    (worker) => worker.id,
    (worker) => [
      worker.id,
      worker.kind,
      worker.sids.join(", ") || "all",
      { text: worker.alive ? "live" : "dead", class: worker.alive ? "" : "dead" },
      num(`${worker.held} / ${worker.capacity}`, "held"),
      num(count(worker.fetched), "fetched"),
      num(count(Math.round(worker.rss / 2 ** 20)), "rss"),
      num(`${age(worker.heartbeat_age)} ago`, "heartbeat"),
    ],
  );
  document.getElementById("no-workers").hidden = workers.length > 0;
}

// -- the loop --------------------------------------------------------------------------------------

async function tick() {
  try {
    const [crawls, workers] = await Promise.all([api("/api/crawls"), api("/api/workers")]);
    view.crawls = crawls;
    record(crawls, Date.now());
    if (!crawls.some((crawl) => crawl.crawl === view.selected) || !view.pinned) {
      view.pinned = false;
      const live = crawls.find((crawl) => !ENDED.includes(crawl.state)) || crawls[0];
      view.selected = live ? live.crawl : null;
    }
    renderCrawls(crawls);
    renderWorkers(workers);
    const chosen = crawls.find((crawl) => crawl.crawl === view.selected);
    renderDetail(chosen);
    if (chosen) {
      const path = `/api/crawls/${encodeURIComponent(chosen.crawl)}`;
      const [items, errors] = await Promise.all([api(`${path}/items?n=${LISTED}`), api(`${path}/errors?n=${LISTED}`)]);
      renderLog("items", items.map((item) => [JSON.stringify(item)]));
      const when = (time) => new Date(time * 1000).toLocaleTimeString();
      renderLog(
        "errors",
        errors.map((e) => [`${when(e.time)} ${e.sid} ${e.url} `, el("span", { class: "reason" }, e.reason)]),
      );
    }
    document.getElementById("login").hidden = true;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    showProblem("");
  } catch (error) {
    if (error.status === 401) document.getElementById("login").hidden = false;
    else showProblem(error.message || "the dashboard does not answer");
  }
  setTimeout(tick, TICK_MS);
}

// Whether this token may steer crawls: the buttons show only then.
async function checkAccess() {
  try {
    view.write = (await api("/api/access")).write;
  } catch (error) {
    view.write = false;
  }
  const mode = document.getElementById("mode");
  mode.textContent = view.write ? "can pause, resume, cancel" : "read-only";
  mode.classList.toggle("write", view.write);
}

document.getElementById("login").addEventListener("submit", (event) => {
  event.preventDefault();
  view.token = document.getElementById("token").value;
  sessionStorage.setItem("shoal-token", view.token);
  checkAccess();
});
takeToken();
checkAccess().then(tick);
