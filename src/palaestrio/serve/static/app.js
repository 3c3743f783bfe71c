"use strict";
// The runs table (live through /api/events, re-read every few seconds for runs started
// elsewhere) and a run page (#/run/UID) with plots that update while the run executes.
const $ = id => document.getElementById(id);
const rows = new Map();  // instance_uid → row
let current = null;      // the instance uid the run page shows

async function api(path, options) {
  const response = await fetch(path, options);
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) throw Object.assign(new Error(body?.detail || response.statusText), {body});
  return body;
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

function seconds(s) {
  if (s == null) return "";
  s = Math.round(s);
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`
    : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s` : `${s}s`;
}

function cancelButton(uid) {
  const button = document.createElement("button");
  button.textContent = "Cancel";
  button.className = "cancel";
  button.onclick = async () => {
    button.disabled = true;
    try { merge(await api(`/api/runs/${uid}/cancel`, {method: "POST"})); }
    catch (e) { alert(e.message); button.disabled = false; }
  };
  return button;
}

// A row is updated in place (never replaced), so a Cancel button stays the element
// under the pointer while progress events arrive several times a second.
function renderRow(row, tr) {
  if (!tr) {
    tr = document.createElement("tr");
    tr.dataset.instance = row.instance_uid;
    const name = cell("", "run"), link = document.createElement("a");
    link.href = `#/run/${row.instance_uid}`;
    name.append(link);
    tr.append(name, cell(row.instance_uid.slice(0, 8), "dim"), ...Array.from({length: 7}, () => cell("")));
    for (const i of [5, 6, 7]) tr.cells[i].className = "num";
  }
  const live = row.live || {};
  const steps = live.total_steps ? `${row.steps}/${live.total_steps}` : row.steps;
  tr.dataset.status = row.status;
  tr.cells[0].firstChild.textContent = row.run_uid;
  tr.cells[2].className = `status ${row.status}`;
  [row.status, live.phase, live.episode, steps, live.steps_per_second, seconds(live.eta_seconds)]
    .forEach((text, i) => { tr.cells[i + 2].textContent = text ?? ""; });
  const button = tr.cells[8].querySelector("button.cancel");
  if (row.cancellable && !button) tr.cells[8].append(cancelButton(row.instance_uid));
  if (!row.cancellable && button) button.remove();
  tr.title = row.reason || "";
  return tr;
}

function merge(update) {
  const old = rows.get(update.instance_uid) || {};
  const live = update.phase !== undefined ? {
    phase: update.phase, episode: update.episode, total_steps: update.total_steps,
    steps_per_second: update.steps_per_second, eta_seconds: update.eta_seconds} : old.live;
  const row = {...old, ...update, live, steps: Math.max(update.steps ?? 0, old.steps ?? 0)};
  rows.set(row.instance_uid, row);
  const tbody = $("runs").tBodies[0];
  const existing = tbody.querySelector(`tr[data-instance="${row.instance_uid}"]`);
  const tr = renderRow(row, existing);
  if (!existing) tbody.prepend(tr);
  if (row.instance_uid === current) showFacts(row);
}

async function refreshList() {
  const page = await api("/api/runs?limit=200");
  for (const row of page.runs.reverse()) merge(row);
}

function connect() {
  const source = new EventSource("/api/events");
  source.onopen = () => { $("connection").textContent = "live"; };
  source.onerror = () => { $("connection").textContent = "reconnecting…"; };
  source.addEventListener("run", e => merge(JSON.parse(e.data)));
}

$("submit-form").onsubmit = async event => {
  event.preventDefault();
  const file = $("run-file").files[0];
  if (!file) return;
  $("problems").hidden = true;
  try {
    const name = encodeURIComponent(file.name);
    const done = await api(`/api/runs?name=${name}`, {method: "POST",
      headers: {"content-type": "application/yaml"}, body: await file.text()});
    $("submit-result").textContent = `scheduled ${done.run_uid} (${done.instance_uid.slice(0, 8)})`;
    refreshList();
  } catch (e) {
    $("submit-result").textContent = e.message;
    const problems = e.body?.problems || [];
    $("problems").textContent = problems.map(p =>
      `${p.source}${p.line ? ":" + p.line : ""}: ${p.place ? p.place + ": " : ""}${p.message}`).join("\n");
    $("problems").hidden = !problems.length;
  }
};

function showFacts(row) {
  $("run-title").textContent = row.run_uid;
  $("run-title").className = row.status;
  const live = row.live || {};
  $("run-facts").textContent = [`instance ${row.instance_uid}`, `experiment ${row.experiment_uid}`,
    `status ${row.status}`, live.phase, live.episode && `episode ${live.episode}`,
    `${row.steps} steps`, row.reason].filter(Boolean).join(" · ");
  $("run-facts").dataset.status = row.status;
  const cancel = $("run-cancel");
  cancel.hidden = !row.cancellable;
  cancel.onclick = cancelButton(row.instance_uid).onclick;
}

function figure(id, title) {
  let fig = document.getElementById(id);
  if (!fig) {
    fig = document.createElement("figure");
    fig.id = id;
    fig.innerHTML = `<figcaption></figcaption><canvas width="420" height="200"></canvas>
      <div class="legend"></div>`;
    $("plots").append(fig);
  }
  fig.querySelector("figcaption").textContent = title;
  return [fig.querySelector("canvas"), fig.querySelector(".legend")];
}

function drawSeries(data) {
  // Episodes counted on across phases, so a test phase follows its training phase.
  let offset = 0;
  const first = data.phases.map(ph => {
    const start = offset;
    const episodes = ph.episode_lengths.flatMap(l => l.episode);
    offset += episodes.length ? Math.max(...episodes) + 1 : 0;
    return start;
  });
  const byAgent = key => data.phases.flatMap((ph, i) => ph.agents.map(a => ({
    label: `${a.agent}${a.worker ? " w" + a.worker.slice(0, 6) : ""} (${ph.name})`,
    x: a.episode.map(e => e + first[i]), y: a[key]})));
  lineChart(...figure("plot-objective", "objective per episode"), byAgent("objective"), "episode");
  lineChart(...figure("plot-reward", "reward per episode"), byAgent("reward"), "episode");
  lineChart(...figure("plot-length", "episode length (steps)"), data.phases.flatMap((ph, i) =>
    ph.episode_lengths.map(l => ({label: `${ph.name} w${l.worker.slice(0, 6)}`,
      x: l.episode.map(e => e + first[i]), y: l.steps}))), "episode");
  lineChart(...figure("plot-rate", "steps/s"), data.phases.map(ph => ({label: ph.name,
    x: ph.throughput.seconds, y: ph.throughput.steps_per_second})), "seconds since start");
}

async function showRun(uid) {
  const run = await api(`/api/runs/${uid}`);
  if (current !== uid) return;
  merge(run);
  const tbody = $("phases").tBodies[0];
  tbody.replaceChildren(...(run.phase_list || []).map(p => {
    const tr = document.createElement("tr");
    tr.append(cell(p.name), cell(p.mode), cell(p.episodes, "num"), cell(p.steps, "num"),
      cell(p.agents.join(", ")));
    return tr;
  }));
  $("run-document").href = `/api/runs/${uid}/document`;
  $("run-export").href = `/api/runs/${uid}/export?format=csv`;
  try { drawSeries(await api(`/api/runs/${uid}/series`)); } catch (e) { /* not stored yet */ }
  const brains = await api(`/api/runs/${uid}/brains`).catch(() => []);
  $("brains").replaceChildren(...brains.map(b => {
    const li = document.createElement("li"), a = document.createElement("a");
    a.href = `/api/brains/${b.id}`;
    a.textContent = `brain dump: ${b.agent}, phase ${b.phase} ${b.tag || ""}`;
    li.append(a);
    return li;
  }));
  const active = !["finished", "error", "cancelled"].includes(run.status);
  if (active) setTimeout(() => current === uid && showRun(uid), 1500);
}

function route() {
  const match = location.hash.match(/^#\/run\/([\w-]+)/);
  current = match ? match[1] : null;
  $("list-view").hidden = !!current;
  $("run-view").hidden = !current;
  if (current) { $("plots").replaceChildren(); showRun(current); }
}

window.onhashchange = route;
connect();
refreshList();
setInterval(refreshList, 5000);
route();
