// The CDM dashboard: one GraphQL request with the caller's key, then Plotly charts.
// The key stays in this tab (sessionStorage); `#key=...` in the address fills it in.
"use strict";

const QUERY = `query Dashboard($from: DateTime!, $to: DateTime!, $cohortsFrom: DateTime!) {
  kpis(from: $from, to: $to) { customers revenue orders activeCustomers averageOrderValue }
  revenue(granularity: MONTH, from: $from, to: $to) { period revenue orders activeCustomers }
  cohortRetention(from: $cohortsFrom, to: $to, months: 12) { month size retention }
  rfmSummary { asOf customers segments { segment customers monetary } }
  churnRiskDistribution(bins: 20) { from to customers }
  models { task state version primaryMetric metrics { name value } }
}`;
const RANGE = "{ purchaseTimeRange { first last } }";

function message(text, isError = false) {
  const node = document.getElementById("message");
  node.textContent = text;
  node.className = isError ? "error" : "";
}

async function graphql(key, query, variables) {
  const response = await fetch("/graphql", {
    method: "POST",
    headers: {
      "Content-Type": "application/json",
      "Accept": "application/graphql-response+json",
      "Authorization": `Bearer ${key}`,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors && body.errors.length) {
    throw new Error(body.errors.map((e) => e.message).join("; "));
  }
  return body.data;
}

function monthsBefore(date, months) {
  const d = new Date(Date.UTC(date.getUTCFullYear(), date.getUTCMonth() - months, 1));
  return d.toISOString();
}

function money(value) {
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: 0 });
}

function showKpis(k) {
  const figures = [
    ["Customers", Number(k.customers).toLocaleString()],
    ["Revenue (12 months)", money(k.revenue)],
    ["Orders", Number(k.orders).toLocaleString()],
    ["Active customers", Number(k.activeCustomers).toLocaleString()],
    ["Average order", k.averageOrderValue === null ? "–" : Number(k.averageOrderValue).toFixed(2)],
  ];
  const box = document.getElementById("kpis");
  box.replaceChildren(...figures.map(([label, value]) => {
    const card = document.createElement("div");
    card.className = "kpi";
    const l = document.createElement("div");
    l.className = "label";
    l.textContent = label;
    const v = document.createElement("div");
    v.className = "value";
    v.textContent = value;
    card.append(l, v);
    return card;
  }));
}

const LAYOUT = { margin: { t: 10, r: 40, b: 40, l: 50 }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" };
const CONFIG = { displaylogo: false, responsive: true };

function showRevenue(points) {
  const x = points.map((p) => p.period.slice(0, 7));
  Plotly.newPlot("revenue", [
    { type: "bar", name: "revenue", x, y: points.map((p) => Number(p.revenue)) },
    { type: "scatter", mode: "lines+markers", name: "orders", yaxis: "y2", x,
      y: points.map((p) => p.orders) },
  ], { ...LAYOUT, yaxis2: { overlaying: "y", side: "right" }, legend: { orientation: "h" } }, CONFIG);
}

function showCohorts(cohorts) {
  const z = cohorts.map((c) => c.retention.map((r) => (r === null ? null : Math.round(r * 1000) / 10)));
  Plotly.newPlot("cohorts", [{
    type: "heatmap", colorscale: "Blues", reversescale: true, hoverongaps: false,
    x: cohorts.length ? cohorts[0].retention.map((_, i) => `+${i}`) : [],
    y: cohorts.map((c) => `${c.month.slice(0, 7)} (${c.size})`), z,
    colorbar: { ticksuffix: "%" },
  }], { ...LAYOUT, margin: { ...LAYOUT.margin, l: 110 }, yaxis: { autorange: "reversed" } }, CONFIG);
}

function showRfm(summary) {
  const segments = summary.segments.filter((s) => s.customers > 0);
  Plotly.newPlot("rfm", [{
    type: "bar", orientation: "h", y: segments.map((s) => s.segment.toLowerCase().replaceAll("_", " ")),
    x: segments.map((s) => s.customers), text: segments.map((s) => money(s.monetary)),
    hovertemplate: "%{y}: %{x} customers, spent %{text}<extra></extra>",
  }], { ...LAYOUT, margin: { ...LAYOUT.margin, l: 140 } }, CONFIG);
}

function showChurn(bins) {
  Plotly.newPlot("churn", [{
    type: "bar", x: bins.map((b) => (b.from + b.to) / 2), y: bins.map((b) => b.customers),
    width: bins.map((b) => b.to - b.from), marker: { color: "#d64545" },
  }], { ...LAYOUT, xaxis: { title: { text: "churn probability" }, range: [0, 1] } }, CONFIG);
}

function showModels(models) {
  const body = document.querySelector("#models tbody");
  body.replaceChildren(...models.map((m) => {
    const row = document.createElement("tr");
    const metrics = m.metrics.map((x) => `${x.name} ${x.value.toFixed(3)}`).join(", ");
    for (const text of [m.task, m.state, m.version ?? "–", metrics || "–"]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    return row;
  }));
}

async function load(key) {
  document.body.dataset.state = "loading";
  message("Loading…");
  try {
    const range = (await graphql(key, RANGE, {})).purchaseTimeRange;
    const end = range.last ? new Date(new Date(range.last).getTime() + 1000) : new Date();
    const data = await graphql(key, QUERY, {
      from: monthsBefore(end, 11), to: end.toISOString(), cohortsFrom: monthsBefore(end, 11),
    });
    showKpis(data.kpis);
    showRevenue(data.revenue);
    showCohorts(data.cohortRetention);
    showRfm(data.rfmSummary);
    showChurn(data.churnRiskDistribution);
    showModels(data.models);
    const asOf = data.rfmSummary.asOf ? `RFM as of ${data.rfmSummary.asOf.slice(0, 10)}` : "no RFM snapshot yet (run `cdm rfm`)";
    message(`Twelve months to ${end.toISOString().slice(0, 10)}; ${asOf}.`);
    document.body.dataset.state = "ready";
  } catch (error) {
    message(`Could not load the dashboard: ${error.message}`, true);
    document.body.dataset.state = "failed";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("key");
  const fromHash = new URLSearchParams(location.hash.slice(1)).get("key");
  if (fromHash) {
    sessionStorage.setItem("cdm-key", fromHash);
    history.replaceState(null, "", location.pathname);  // keep the key out of the address bar
  }
  const saved = sessionStorage.getItem("cdm-key");
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("cdm-key", input.value.trim());
    load(input.value.trim());
  });
  if (saved) {
    input.value = saved;
    load(saved);
  } else {
    document.body.dataset.state = "waiting";
  }
});
