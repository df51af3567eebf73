/* The control room page: polls the JSON endpoints and draws them. Plain JS, no build step. */
"use strict";
const POLL_MS = 5000;
onTokenChange(() => {  // tokenInput, tokenNeeded, headers and api: auth.js
  imageCache.clear();
  refreshAll();
});

function text(tag, content, cls) {
  const node = document.createElement(tag);
  node.textContent = content;
  if (cls) node.className = cls;
  return node;
}

function table(rows) {
  const t = document.createElement("table");
  for (const [k, v] of rows) { const tr = t.insertRow(); tr.insertCell().textContent = k; tr.insertCell().textContent = v; }
  return t;
}

const pct = v => v === null || v === undefined ? "–" : (100 * v).toFixed(1) + "%";
const num = (v, d) => v === null || v === undefined ? "–" : Number(v).toFixed(d ?? 2);

/* Part images are read with the token (an <img src> cannot send it): fetched, then shown
   from an object URL. Archived images never change, so each is fetched once. */
const imageCache = new Map();
const IMAGE_CACHE_SIZE = 200;

function fetchImage(url) {
  if (!imageCache.has(url)) {
    const loading = fetch(url, { headers: headers(false) }).then(response => {
      if (response.status === 401) tokenNeeded(true);
      if (!response.ok) throw new Error(`${url}: ${response.status}`);
      return response.blob();
    }).then(blob => URL.createObjectURL(blob));
    loading.catch(() => imageCache.delete(url));
    imageCache.set(url, loading);
    if (imageCache.size > IMAGE_CACHE_SIZE) {
      const [oldest, old] = imageCache.entries().next().value;
      imageCache.delete(oldest);
      old.then(objectUrl => URL.revokeObjectURL(objectUrl)).catch(() => {});
    }
  }
  return imageCache.get(url);
}

function authorizedImage(url, alt, cls) {
  const img = document.createElement("img");
  img.alt = alt;
  if (cls) img.className = cls;
  img.dataset.src = url;
  fetchImage(url).then(objectUrl => { img.src = objectUrl; }).catch(() => { img.dataset.failed = "1"; });
  return img;
}

function partFrame(item) {
  const frame = document.createElement("div");
  frame.className = "frame";
  if (item.image_url) frame.appendChild(authorizedImage(item.image_url, item.part_id));
  if (item.heatmap_url) frame.appendChild(authorizedImage(item.heatmap_url, "heatmap", "heat"));
  return frame;
}

function partCard(item) {
  const card = document.createElement("div");
  card.className = "part";
  card.dataset.id = item.id;
  card.appendChild(partFrame(item));
  card.appendChild(text("div", item.verdict, "verdict-" + item.verdict));
  card.appendChild(text("div", `score ${num(item.score, 3)}` + (item.defect_types.length ? " · " + item.defect_types.join(", ") : "")));
  card.appendChild(text("div", item.part_id, "muted"));
  return card;
}

async function refreshFeed() {
  const feed = await api("/api/feed?limit=12");
  $("feed").replaceChildren(...feed.items.map(partCard));
}

async function refreshStats() {
  const s = await api("/api/stats");
  $("versions").textContent = `model ${s.in_use.model_version} · dataset ${s.in_use.dataset_version ?? "–"} · threshold ${num(s.in_use.threshold, 4)}`;
  const box = $("stats");
  box.dataset.ngRate = s.ng_rate ?? "";
  box.replaceChildren(table([
    ["parts", s.n], ["NG rate", pct(s.ng_rate)],
    ["OK / NG / UNSURE", `${s.verdicts.OK} / ${s.verdicts.NG} / ${s.verdicts.UNSURE}`],
    ["throughput", s.parts_per_minute === null ? "–" : num(s.parts_per_minute, 1) + " parts/min"],
    ["latency p50 / p95 / p99", `${num(s.latency_ms.p50, 1)} / ${num(s.latency_ms.p95, 1)} / ${num(s.latency_ms.p99, 1)} ms`],
    ["model versions", Object.entries(s.model_versions).map(([k, v]) => `${k} (${v})`).join(", ")],
    ["dataset versions", Object.entries(s.dataset_versions).map(([k, v]) => `${k} (${v})`).join(", ")],
  ]));
}

async function refreshSpc() {
  const spc = await api("/api/spc");
  controlChart($("pchart"), spc.p_chart, { percent: true, label: "NG rate per window" });
  controlChart($("ewma"), spc.ewma, { label: "EWMA of the mean score; grey: window means", extra: spc.individuals });
  $("alerts").replaceChildren(...spc.alerts.map(a => text("div", "SPC alert: " + a)));
}

async function refreshDrift() {
  const d = await api("/api/drift");
  const box = $("drift");
  box.dataset.status = d.status;
  const status = text("div", d.status, "status status-" + d.status);
  status.id = "drift-status";
  box.replaceChildren(status, table([
    ["PSI", num(d.psi, 3)], ["KS D (p)", `${num(d.ks_statistic, 3)} (${d.ks_pvalue === null ? "–" : Number(d.ks_pvalue).toExponential(1)})`],
    ["feature shift (sd)", num(d.feature_shift, 2)], ["reference", `${d.reference_source} (${d.n_reference})`],
    ["current", d.n_current], ["why", d.reasons.join("; ") || "within limits"],
  ]));
  histogram($("drift-hist"), d.reference_scores, d.current_scores);
}

async function refreshRoi() {
  const params = new URLSearchParams();
  for (const [id, key] of [["cost-fr", "false_reject"], ["cost-esc", "escape"], ["cost-man", "manual_inspection"]])
    if ($(id).value !== "") params.set(key, $(id).value);
  const r = await api("/api/roi?" + params);
  if ($("cost-fr").value === "") { $("cost-fr").value = r.costs.false_reject; $("cost-esc").value = r.costs.escape; $("cost-man").value = r.costs.manual_inspection; }
  $("roi").replaceChildren(table([
    ["parts inspected", r.parts], ["NG rate", pct(r.ng_rate)], ["escapes avoided (est.)", num(r.escapes_avoided, 1)],
    ["false rejects (est.)", num(r.false_rejects, 1)], ["escapes still passed (est.)", num(r.escapes, 1)],
    ["savings vs no inspection", num(r.savings, 2)], ["saved vs 100% manual", num(r.manual_saved, 2)],
  ]), ...r.assumptions.map(a => text("div", a, "muted")));
}

async function refreshEstimates() {
  const e = await api("/api/review/estimates");
  const show = r => r.value === null ? `– (n=${r.n})` : `${pct(r.value)} [${pct(r.low)}, ${pct(r.high)}] (${r.k}/${r.n})`;
  $("estimates").replaceChildren(table([["reviewed parts", e.reviewed], ["precision (95% Wilson)", show(e.precision)],
                                         ["recall (95% Wilson)", show(e.recall)]]));
}

/* A canvas at the image's own pixel size over the image: what is painted is the mask. */
function paintable(frame, img) {
  const canvas = document.createElement("canvas");
  canvas.className = "mask";
  const size = () => { canvas.width = img.naturalWidth || 1; canvas.height = img.naturalHeight || 1; };
  size();
  img.addEventListener("load", size);  // the image arrives later (fetched with the token)
  let down = false;
  canvas.dataset.painted = "0";
  const paint = event => {
    const rect = canvas.getBoundingClientRect();
    // the image is letterboxed by object-fit: contain; map the pointer into image pixels
    const s = Math.min(rect.width / canvas.width, rect.height / canvas.height);
    const ox = (rect.width - canvas.width * s) / 2, oy = (rect.height - canvas.height * s) / 2;
    const x = (event.clientX - rect.left - ox) / s, y = (event.clientY - rect.top - oy) / s;
    if (x < 0 || y < 0 || x >= canvas.width || y >= canvas.height) return;
    const ctx = canvas.getContext("2d");
    ctx.fillStyle = "rgb(255,0,0)";
    ctx.beginPath(); ctx.arc(x, y, Math.max(2, canvas.width / 30), 0, 2 * Math.PI); ctx.fill();
    canvas.dataset.painted = "1";
  };
  canvas.addEventListener("pointerdown", e => { down = true; paint(e); });
  canvas.addEventListener("pointermove", e => { if (down) paint(e); });
  window.addEventListener("pointerup", () => { down = false; });
  frame.appendChild(canvas);
  return canvas;
}

function reviewCard(item) {
  const card = partCard(item);
  card.classList.add("review");
  const img = card.querySelector("img:not(.heat)");
  const canvas = img ? paintable(card.querySelector(".frame"), img) : null;
  const type = document.createElement("input");
  type.type = "text"; type.placeholder = "defect type (for NG)"; type.className = "defect-type";
  type.value = item.defect_types[0] || "";
  const ok = text("button", "Confirm OK", "confirm-ok");
  const ng = text("button", "Confirm NG", "confirm-ng");
  const clearBtn = text("button", "Clear mask", "clear-mask");
  const send = async verdict => {
    const body = { verdict, reviewer: "dashboard" };
    if (verdict === "NG") {
      body.defect_type = type.value;
      if (canvas && canvas.dataset.painted === "1") body.mask_png = canvas.toDataURL("image/png");
    }
    try {
      await api(`/api/review/parts/${item.id}`, { method: "POST", body: JSON.stringify(body) });
      await Promise.allSettled([refreshQueue(), refreshEstimates(), refreshRoi()]);
      $("review-msg").textContent = `part ${item.part_id} confirmed ${verdict}`;
    } catch (error) { $("review-msg").textContent = `part ${item.part_id}: ${error.message}`; }
  };
  ok.addEventListener("click", () => send("OK"));
  ng.addEventListener("click", () => send("NG"));
  clearBtn.addEventListener("click", () => { if (canvas) { canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height); canvas.dataset.painted = "0"; } });
  card.append(type, ok, ng, clearBtn);
  return card;
}

async function refreshQueue() {
  const q = await api("/api/review/queue?limit=12");
  const box = $("queue");
  // keep cards being painted: only rebuild when the queue's parts changed
  const ids = q.items.map(i => i.id).join(",");
  if (box.dataset.ids === ids) return;
  box.dataset.ids = ids;
  box.replaceChildren(...q.items.map(reviewCard));
  if (!q.items.length) box.appendChild(text("div", "nothing waits for review", "muted"));
}

async function refreshVersions() {
  const v = await api("/api/review/versions");
  $("export").disabled = !v.enabled;
  $("dataset-versions").replaceChildren(...v.items.slice().reverse().map(item => {
    const li = text("li", `${item.version_id} ← parent ${item.parent_version ?? "none"} · ${item.samples} samples (+${item.added}) · ${item.created}`);
    li.className = "dataset-version"; li.dataset.version = item.version_id;
    return li;
  }));
  if (!v.enabled) $("export-msg").textContent = "export is off (no datasets folder configured)";
}

$("export").addEventListener("click", async () => {
  try {
    const r = await api("/api/review/export", { method: "POST" });
    $("export-msg").textContent = `new version ${r.version_id} (+${r.added} parts)`;
  } catch (error) { $("export-msg").textContent = error.message; }
  await refreshVersions();
});
for (const id of ["cost-fr", "cost-esc", "cost-man"]) $(id).addEventListener("change", () => refreshRoi());

async function refreshAll() {
  const parts = [refreshFeed, refreshStats, refreshSpc, refreshDrift, refreshRoi, refreshEstimates, refreshQueue, refreshVersions];
  const results = await Promise.allSettled(parts.map(f => f()));
  const failed = results.filter(r => r.status === "rejected").map(r => r.reason.message);
  if (!failed.length) tokenNeeded(false);
  document.body.dataset.loaded = failed.length ? "partial" : "1";
  if (failed.length) $("versions").textContent = "some panels failed: " + failed.join("; ");
}

refreshAll();
setInterval(refreshAll, POLL_MS);
