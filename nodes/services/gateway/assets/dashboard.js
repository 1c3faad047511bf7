// The evospike dashboard: services and their health, nodes, a chart of each
// node's steps per second, alerts, training jobs with their curves, and a live
// spike raster of any topic, streamed from the bus by the gateway. No library,
// nothing loaded from elsewhere: the gateway serves this file from its binary.
"use strict";

const params = new URLSearchParams(location.search);
// With API keys on, open the page as /?key=KEY.
const key = params.get("key");
const headers = key ? { "x-api-key": key } : {};
const $ = (id) => document.getElementById(id);
const history = new Map(); // node -> [steps/s]
const HISTORY = 120;
const COLORS = ["#6ab0ff", "#ffb86b", "#7ee787", "#ff7b9c", "#d2a8ff", "#f9e2af", "#89dceb"];

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(table, rows) {
  const body = $(table).querySelector("tbody");
  body.replaceChildren(...rows.map((cells) => {
    const tr = document.createElement("tr");
    tr.append(...cells);
    return tr;
  }));
}

async function getJson(path) {
  const response = await fetch(path, { headers });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function fixed(x, digits = 1) {
  return typeof x === "number" ? x.toFixed(digits) : "-";
}

function renderServices(health, dashboard) {
  const traffic = new Map((dashboard?.services ?? []).map((s) => [s.name, s]));
  fill("services", (health.services ?? []).map((s) => {
    const t = traffic.get(s.service);
    return [
      cell(s.service), cell(s.instance),
      cell(s.status === "healthy" ? "healthy" : `${s.status}: ${s.error}`, s.status === "healthy" ? "ok" : "bad"),
      cell(`${fixed(s.latency_ms)} ms`),
      cell(fixed(t?.request_rate)), cell(fixed(t?.error_rate)), cell(fixed(t?.mean_latency_ms)),
    ];
  }));
}

function renderNodes(nodes) {
  fill("nodes", nodes.map((n) => [
    cell(n.name, "node-name"),
    cell(n.alive ? "alive" : "gone", n.alive ? "ok" : "bad"),
    cell(fixed(n.steps_per_s)), cell(fixed(n.spikes_per_s)), cell(fixed(n.gaps_total, 0)),
    cell(n.last_seen_s < 0 ? "-" : `${fixed(n.last_seen_s)} s ago`),
  ]));
  for (const n of nodes) {
    const series = history.get(n.name) ?? [];
    series.push(n.alive ? n.steps_per_s : 0);
    if (series.length > HISTORY) series.shift();
    history.set(n.name, series);
  }
}

function drawChart() {
  const canvas = $("chart");
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const all = [...history.values()].flat();
  const top = Math.max(1, ...all);
  const legend = [];
  [...history.entries()].forEach(([name, series], i) => {
    const color = COLORS[i % COLORS.length];
    g.strokeStyle = color;
    g.beginPath();
    series.forEach((v, x) => {
      const px = (x / (HISTORY - 1)) * canvas.width;
      const py = canvas.height - 4 - (v / top) * (canvas.height - 8);
      x === 0 ? g.moveTo(px, py) : g.lineTo(px, py);
    });
    g.stroke();
    const label = document.createElement("span");
    label.style.color = color;
    label.textContent = `${name} ${fixed(series[series.length - 1])}/s`;
    legend.push(label);
  });
  $("legend").replaceChildren(...legend);
}

function renderAlerts(alerts) {
  const items = alerts.map((a) => {
    const li = document.createElement("li");
    li.className = a.state;
    li.textContent = `${a.state}: ${a.rule} on ${a.node} — ${a.message}`;
    return li;
  });
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = "none";
    items.push(li);
  }
  $("alerts").replaceChildren(...items);
}

function curve(values) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "curve");
  svg.setAttribute("viewBox", "0 0 100 20");
  if (values.length > 1) {
    const lo = Math.min(...values), hi = Math.max(...values);
    const points = values.map((v, i) =>
      `${(i / (values.length - 1)) * 100},${18 - ((v - lo) / (hi - lo || 1)) * 16}`).join(" ");
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points);
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#3b6fd8");
    svg.append(line);
  }
  return svg;
}

function renderJobs(jobs) {
  fill("jobs", jobs.map((j) => {
    const p = j.progress ?? {};
    const curves = document.createElement("td");
    curves.append(curve(p.loss_curve ?? []), curve(p.accuracy_curve ?? []));
    return [
      cell(j.job_id), cell(j.state, j.state === "FAILED" ? "bad" : ""),
      cell(`${p.epoch ?? 0}/${p.epochs ?? "?"}`), cell(fixed(p.loss, 3)),
      cell(fixed((p.test_accuracy ?? p.train_accuracy ?? 0) * 100)), curves,
    ];
  }));
}

async function refresh() {
  try {
    const health = await getJson("/services/health");
    const hasMonitoring = (health.services ?? []).some((s) => s.service === "monitoring" && s.status === "healthy");
    const dashboard = hasMonitoring ? await getJson("/monitoring/dashboard") : null;
    renderServices(health, dashboard);
    if (dashboard) {
      renderNodes(dashboard.nodes ?? []);
      drawChart();
      renderAlerts(dashboard.alerts ?? []);
      renderJobs(dashboard.training_jobs ?? []);
    }
    $("status").textContent = `updated ${new Date().toLocaleTimeString()}` +
      (dashboard ? "" : " (no monitoring service: nodes, alerts and jobs need one)");
  } catch (err) {
    $("status").textContent = `cannot reach the gateway: ${err.message}`;
  }
}

// The raster: one column per step, scrolling left; a dot per active neuron.
let source = null;
let spikes = 0;
function watch(topic) {
  if (source) source.close();
  const canvas = $("raster");
  const g = canvas.getContext("2d");
  g.fillStyle = "#0f1320";
  g.fillRect(0, 0, canvas.width, canvas.height);
  $("raster-info").textContent = `waiting for ${topic}…`;
  const url = `/events/spikes?topic=${encodeURIComponent(topic)}` + (key ? `&key=${encodeURIComponent(key)}` : "");
  source = new EventSource(url);
  source.onmessage = (event) => {
    const t = JSON.parse(event.data);
    spikes += t.active.length;
    $("raster-spikes").textContent = String(spikes);
    $("raster-info").textContent = `${topic}: ${t.neurons} neurons, step ${t.step}`;
    g.drawImage(canvas, -2, 0);
    g.fillStyle = "#0f1320";
    g.fillRect(canvas.width - 2, 0, 2, canvas.height);
    g.fillStyle = "#7ee787";
    for (const i of t.active) {
      const y = Math.floor((i / Math.max(1, t.neurons)) * canvas.height);
      g.fillRect(canvas.width - 2, y, 2, Math.max(1, canvas.height / Math.max(1, t.neurons)));
    }
  };
  source.addEventListener("problem", (event) => {
    $("raster-info").textContent = event.data;
    source.close();
  });
}

$("raster-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const topic = $("topic").value.trim();
  if (topic) watch(topic);
});

const initial = params.get("topic");
if (initial) {
  $("topic").value = initial;
  watch(initial);
}
refresh();
setInterval(refresh, 1000);
