/* Small SVG charts for the dashboard: no library, no network. Each chart records what it drew
   in data-* attributes (number of points, center line, rule hits) so tests can read it back. */
"use strict";
const SVGNS = "http://www.w3.org/2000/svg";

function el(name, attrs, parent) {
  const node = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }

function scale(values, lo, hi) {
  const finite = values.filter(Number.isFinite);
  let min = Math.min(...finite), max = Math.max(...finite);
  if (!finite.length) { min = 0; max = 1; }
  if (max === min) { max += 0.5; min -= 0.5; }
  const pad = (max - min) * 0.08;
  return v => hi - (v - (min - pad)) / ((max + pad) - (min - pad)) * (hi - lo);
}

function fmt(v, digits) { return v === null || v === undefined ? "–" : Number(v).toFixed(digits ?? 3); }

/* chart: {points, center, ucl, lcl, hits:[{index, rule, description}]}; extra: a second series */
function controlChart(svg, chart, options) {
  clear(svg);
  const opts = Object.assign({ percent: false, label: "" }, options || {});
  if (!chart || !chart.points.length) {
    el("text", { x: 20, y: 30 }, svg).textContent = "not enough data yet";
    svg.dataset.points = "0";
    return;
  }
  const W = 520, H = 220, left = 46, right = 10, top = 12, bottom = 26;
  const n = chart.points.length;
  const extra = opts.extra ? opts.extra.points : [];
  const y = scale([...chart.points, ...chart.ucl, ...chart.lcl, ...extra], top, H - bottom);
  const x = i => left + (n === 1 ? (W - left - right) / 2 : i * (W - left - right) / (n - 1));
  const show = v => opts.percent ? (100 * v).toFixed(1) + "%" : fmt(v, 3);
  el("line", { x1: left, y1: top, x2: left, y2: H - bottom, stroke: "#9ca3af" }, svg);
  el("line", { x1: left, y1: H - bottom, x2: W - right, y2: H - bottom, stroke: "#9ca3af" }, svg);
  const path = values => values.map((v, i) => `${x(i)},${y(v)}`).join(" ");
  el("polyline", { points: path(chart.ucl), class: "limit ucl" }, svg);
  el("polyline", { points: path(chart.lcl), class: "limit lcl" }, svg);
  el("line", { x1: left, x2: W - right, y1: y(chart.center), y2: y(chart.center), class: "center" }, svg);
  if (opts.extra) el("polyline", { points: path(extra), class: "secondary" }, svg);
  el("polyline", { points: path(chart.points), class: "series" }, svg);
  const hits = {};
  for (const h of chart.hits) (hits[h.index] = hits[h.index] || []).push(h);
  chart.points.forEach((v, i) => {
    const hit = hits[i];
    const c = el("circle", { cx: x(i), cy: y(v), r: hit ? 5 : 3, class: hit ? "point hit" : "point",
                             "data-index": i, "data-value": v }, svg);
    if (hit) c.setAttribute("data-rules", hit.map(h => h.rule).join(","));
    el("title", {}, c).textContent = `${i}: ${show(v)}` + (hit ? " — " + hit.map(h => "rule " + h.rule + ": " + h.description).join("; ") : "");
  });
  el("text", { x: 2, y: y(chart.center) + 3 }, svg).textContent = show(chart.center);
  el("text", { x: 2, y: y(chart.ucl[n - 1]) + 3 }, svg).textContent = "UCL";
  el("text", { x: left + 4, y: H - 8 }, svg).textContent = opts.label + ` (${n} points, ${chart.hits.length} rule hits)`;
  svg.dataset.points = String(n);
  svg.dataset.center = String(chart.center);
  svg.dataset.hits = String(chart.hits.length);
}

/* Two score histograms on shared bins: reference (grey) and current (blue). */
function histogram(svg, reference, current) {
  clear(svg);
  const all = [...reference, ...current];
  if (!all.length) { el("text", { x: 20, y: 30 }, svg).textContent = "no scores yet"; return; }
  const W = 520, H = 160, bins = 20, bottom = 18;
  let lo = Math.min(...all), hi = Math.max(...all);
  if (hi === lo) hi = lo + 1;
  const count = values => {
    const c = new Array(bins).fill(0);
    for (const v of values) c[Math.min(bins - 1, Math.floor((v - lo) / (hi - lo) * bins))] += 1;
    return c.map(k => k / Math.max(values.length, 1));
  };
  const r = count(reference), c = count(current), top = Math.max(...r, ...c, 1e-9);
  const bw = (W - 20) / bins;
  for (let i = 0; i < bins; i++) {
    const hr = r[i] / top * (H - bottom - 8), hc = c[i] / top * (H - bottom - 8);
    el("rect", { x: 10 + i * bw, y: H - bottom - hr, width: bw / 2 - 1, height: hr, fill: "#9ca3af" }, svg);
    el("rect", { x: 10 + i * bw + bw / 2, y: H - bottom - hc, width: bw / 2 - 1, height: hc, fill: "#2563eb" }, svg);
  }
  el("text", { x: 10, y: H - 4 }, svg).textContent = `${fmt(lo)} … ${fmt(hi)}  grey: reference (${reference.length}), blue: current (${current.length})`;
}
