// The live charts of a run: an anywidget module, delivered over the kernel's comm with the widget itself
// (no CDN, no JupyterLab extension of ours). Plain DOM and SVG, no dependencies.
//
// Data: the model's `data` trait holds every series in full (sent when a view is first built, when a
// series is re-bucketed, and every few seconds); between those the kernel sends `delta` messages with
// the buckets that changed. A bucket is [idx, s0, s1, t0, t1, first, last, lo, hi, n, sum]: the steps,
// wall times (ms) and values it covers. All views of one model share one store.
// View settings (x axis, log scale, smoothing, filter, closed sections) live in the `view` trait, so
// every view and the kernel's final snapshot agree.

const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];
const SVG = "http://www.w3.org/2000/svg";
const MIN_TILE = 300; // px: columns are as many as fit
const HEIGHT = 190;
const EXPANDED_HEIGHT = 380;
const PAD = { left: 52, right: 12, top: 10, bottom: 34 };

// ---------------------------------------------------------------------------------------- numbers

export function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = Math.pow(10, Math.floor(Math.log10(raw)));
  const unit = raw / power;
  // the nearest of 1, 2, 5, 10 on a log scale (as d3 picks): about `count` intervals, never far more
  const nice = unit >= Math.sqrt(50) ? 10 : unit >= Math.sqrt(10) ? 5 : unit >= Math.sqrt(2) ? 2 : 1;
  return nice * power;
}

// Round ticks covering [lo, hi]; the domain is widened to the outer ticks so the grid fills the box.
export function niceTicks(lo, hi, count) {
  if (!(hi > lo)) {
    const pad = Math.abs(lo) * 0.1 || 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, count);
  const start = Math.floor(lo / step + 1e-9) * step;
  const stop = Math.ceil(hi / step - 1e-9) * step;
  const ticks = [];
  for (let v = start; v <= stop + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { lo: start, hi: stop, ticks, step };
}

// Powers of ten (and 2, 5 between them when the span is short) for a log axis.
export function logTicks(lo, hi) {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const ticks = [];
  const mantissas = b - a <= 2 ? [1, 2, 5] : [1];
  for (let e = a; e <= b; e++) for (const m of mantissas) ticks.push(m * Math.pow(10, e));
  return { lo: Math.pow(10, a), hi: Math.pow(10, b), ticks: ticks.filter((t) => t >= Math.pow(10, a) && t <= Math.pow(10, b)) };
}

export function formatNumber(v) {
  if (v === null || v === undefined) return "—";
  if (!isFinite(v)) return String(v);
  const m = Math.abs(v);
  if (m === 0) return "0";
  if (m >= 1e6 || m < 1e-3) return v.toExponential(2).replace("e+", "e");
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Number(v.toPrecision(4)).toString();
}

export function formatTick(v, step) {
  const m = Math.abs(v);
  if (m === 0) return "0";
  if (m >= 1e9) return +(v / 1e9).toPrecision(3) + "G";
  if (m >= 1e6) return +(v / 1e6).toPrecision(3) + "M";
  if (m >= 1e4) return +(v / 1e3).toPrecision(3) + "k";
  if (m < 1e-3) return v.toExponential(0).replace("e+", "e");
  const decimals = step ? Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) : 3;
  return v.toFixed(Math.min(decimals, 6));
}

export function formatDuration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (seconds < 1 && seconds > 0) return `${Math.round(seconds * 1000)}ms`;
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

// Round time ticks: seconds, minutes, hours, days.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];
export function timeTicks(lo, hi, count) {
  const span = (hi - lo) / 1000;
  let step = TIME_STEPS.find((s) => span / s <= count);
  if (step === undefined) step = niceStep(span / 86400, count) * 86400;
  if (span / count < 1) return niceTicks(lo, hi, count); // under a second: plain ms ticks
  const ms = step * 1000;
  const start = Math.floor(lo / ms) * ms;
  const stop = Math.ceil(hi / ms) * ms;
  const ticks = [];
  for (let v = start; v <= stop; v += ms) ticks.push(v);
  return { lo: start, hi: stop, ticks, step: ms };
}

function clockLabel(ms, step) {
  const d = new Date(ms);
  const pad = (x) => String(x).padStart(2, "0");
  if (step >= 86400000) return `${d.getMonth() + 1}/${d.getDate()}`;
  if (step >= 60000) return `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ------------------------------------------------------------------------------------ the series

// The points of a series on an x axis: per bucket its first, extremes and last (as drawn before
// smoothing), and its mean for the smoothed line.
export function bucketPoints(buckets, axis, origin, xOf = null) {
  const raw = [];
  const means = [];
  for (const b of buckets) {
    const [, s0, s1, t0, t1, first, last, lo, hi, n, sum] = b;
    let x0 = s0, x1 = s1;
    if (xOf) { x0 = xOf(s0); x1 = xOf(s1); }
    else if (axis === "time") { x0 = t0; x1 = t1; }
    else if (axis === "relative") { x0 = (t0 - origin) / 1000; x1 = (t1 - origin) / 1000; }
    raw.push([x0, first, b]);
    if (n > 2) {
      const mid = (x0 + x1) / 2;
      const pair = hi - first < first - lo ? [hi, lo] : [lo, hi];
      raw.push([mid, pair[0], b], [mid, pair[1], b]);
    }
    if (n > 1) raw.push([x1, last, b]);
    means.push([(x0 + x1) / 2, sum / n, b]);
  }
  return { raw, means };
}

// Debiased exponential moving average (the one TensorBoard and wandb draw); a bucket of n points
// weighs as n steps of the raw series would, so the line does not change shape as buckets merge.
export function smooth(means, weight) {
  if (!(weight > 0)) return means;
  let acc = 0, norm = 0;
  return means.map(([x, y, b]) => {
    const n = b ? b[9] : 1;
    const w = Math.pow(weight, n);
    acc = acc * w + (1 - w) * y;
    norm = norm * w + (1 - w);
    return [x, acc / norm, b];
  });
}

// The value of a step metric (define_metric(step_metric=...)) at a step, from its buckets: within a
// bucket between its first and last values, between buckets between one's last and the next's first,
// beyond the ends the end's value (as display/scales.py step_lookup).
export function stepLookup(buckets) {
  const b = [...buckets].sort((p, q) => p[1] - q[1]);
  return (step) => {
    if (!b.length) return step;
    if (step <= b[0][1]) return b[0][5];
    if (step >= b[b.length - 1][2]) return b[b.length - 1][6];
    let lo = 0, hi = b.length - 1;
    while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (b[mid][1] <= step) lo = mid; else hi = mid - 1; }
    const [, s0, s1, , , first, last] = b[lo];
    if (step >= s1) { const next = b[lo + 1]; return last + (next[5] - last) * (step - s1) / ((next[1] - s1) || 1); }
    return s1 === s0 ? first : first + (last - first) * (step - s0) / (s1 - s0);
  };
}

function sortedBuckets(series) {
  return [...series.buckets.values()].sort((a, b) => a[0] - b[0]);
}

// ------------------------------------------------------------------------------------------- store

const STORES = new Map();

// The data of a model, shared by its views (exported for the tests, which feed it recorded messages).
export function storeFor(model) {
  const uid = model.get("uid");
  let store = STORES.get(uid);
  if (store) return store;
  store = { seq: -1, series: new Map(), views: new Set(), origin: null };
  STORES.set(uid, store);
  const full = () => {
    const data = model.get("data") || {};
    store.seq = data.seq ?? -1;
    store.asked = false;
    store.origin = data.origin ?? null;
    store.series = new Map();
    for (const [name, s] of Object.entries(data.series || {})) store.series.set(name, fromWire(s, 0));
    store.views.forEach((v) => v.changed(null));
  };
  full();
  model.on("change:data", full);
  model.on("msg:custom", (msg) => {
    if (!msg || msg.type !== "delta" || msg.seq <= store.seq) return;
    if (msg.seq !== store.seq + 1 && !store.asked) {
      // deltas were missed (this page was loaded after they were sent): ask for the whole state
      store.asked = true;
      model.send({ type: "resync" });
    }
    store.seq = msg.seq;
    if (msg.origin !== undefined && msg.origin !== null) store.origin = msg.origin;
    const touched = new Set();
    for (const [name, s] of Object.entries(msg.series || {})) {
      const old = store.series.get(name);
      if (old && s.h && old.g + s.h === s.g) {
        for (let i = 0; i < s.h; i++) old.buckets = halve(old.buckets);
        old.g = s.g;
      }
      if (!old || old.g !== s.g) store.series.set(name, fromWire(s, 0));
      else {
        for (const b of s.b) old.buckets.set(b[0], b);
        Object.assign(old, { last: s.last, count: s.count, skipped: s.skipped, min: s.min, max: s.max });
        old.version++;
      }
      touched.add(name);
    }
    store.views.forEach((v) => v.changed(touched));
  });
  return store;
}

// Neighbouring buckets merged pairwise, exactly as MinMaxSeries._halve and _combine do in the kernel.
export function combine(a, b) {
  if (b[1] < a[1]) [a, b] = [b, a];
  const later = b[2] >= a[2] ? b : a;
  return [a[0], a[1], later[2], a[3], later[4], a[5], later[6], Math.min(a[7], b[7]), Math.max(a[8], b[8]), a[9] + b[9], a[10] + b[10]];
}

export function halve(buckets) {
  const merged = new Map();
  for (const idx of [...buckets.keys()].sort((x, y) => x - y)) {
    const bucket = buckets.get(idx);
    const into = merged.get(Math.floor(idx / 2));
    const half = Math.floor(idx / 2);
    merged.set(half, into === undefined ? [half, ...bucket.slice(1)] : combine(into, bucket));
  }
  for (const [idx, bucket] of merged) bucket[0] = idx;
  return merged;
}

function fromWire(s, version) {
  return {
    g: s.g, buckets: new Map(s.b.map((b) => [b[0], b])), last: s.last, count: s.count,
    skipped: s.skipped, min: s.min, max: s.max, version,
  };
}

// ----------------------------------------------------------------------------------------- helpers

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c); // strings become text nodes: user text is never markup
  return node;
}

function s(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

export function sectionOf(name) {
  const i = name.indexOf("/");
  return i > 0 ? name.slice(0, i) : "";
}

export function matcher(text) {
  const q = (text || "").trim();
  if (!q) return () => true;
  try {
    const re = new RegExp(q, "i");
    return (name) => re.test(name);
  } catch (_) {
    const low = q.toLowerCase();
    return (name) => name.toLowerCase().includes(low);
  }
}

function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// A y axis's tick labels left of `box` at `ticks` (and, with `grid`, its gridlines); an x axis's below.
function yAxis(g, box, sy, ticks, text, grid = true) {
  for (const t of ticks) {
    const y = sy(t);
    if (grid) g.append(s("line", { x1: box.left, x2: box.left + box.width, y1: y, y2: y, class: "tj-grid" }));
    const label = s("text", { x: box.left - 6, y: y + 3.5, "text-anchor": "end", class: "tj-tick" });
    label.textContent = text(t);
    g.append(label);
  }
}

function xAxis(g, box, sx, ticks, text) {
  for (const t of ticks) {
    const x = sx(t);
    g.append(s("line", { x1: x, x2: x, y1: box.top, y2: box.top + box.height, class: "tj-grid" }));
    const label = s("text", { x, y: box.top + box.height + 14, "text-anchor": "middle", class: "tj-tick" });
    label.textContent = text(t);
    g.append(label);
  }
}

// A small text button (`BOXED`: with a border, for the toolbars and pagers that stand apart).
const BOXED = "tj-btn tj-btn-boxed";
function button(label, tip, onclick, cls = "tj-btn") {
  return h("button", { class: cls, title: tip, "aria-label": tip, onclick }, label);
}

function swatch(color) {
  const node = h("span", { class: "tj-swatch", "aria-hidden": "true" });
  node.style.background = color; // a palette colour of ours, set as a property: never markup
  return node;
}

// Metrics of one quantity on train and validation data, to overlay on request: `train/loss` with
// `val/loss` (any of the prefixes below, with "/" or "_"), and Keras' `loss` with `val_loss`.
// Returns id -> {title, members}; only groups of two or more.
const PAIR_PREFIX = /^(train|training|val|valid|validation|eval|test)([/_])(.+)$/i;
export const PAIR_SECTION = "train · val";

export function pairGroups(names) {
  const groups = new Map();
  const present = new Set(names);
  for (const name of names) {
    const m = PAIR_PREFIX.exec(name);
    if (!m) continue;
    const id = m[2] + m[3];
    if (!groups.has(id)) groups.set(id, { title: m[3], members: [] });
    groups.get(id).members.push(name);
  }
  for (const [id, group] of groups) {
    if (id[0] === "_" && present.has(id.slice(1))) group.members.unshift(id.slice(1));
    if (group.members.length < 2) groups.delete(id);
  }
  return groups;
}

// In the runs dashboard a series is one metric of one run: "<run id>\u001f<metric>".
export const RUN_SEP = "\u001f";

const safeName = (name) => name.replace(/[^A-Za-z0-9._-]+/g, "_") || "metric";

// ------------------------------------------------------------------------------------------- chart

class Chart {
  // One tile: the lines of its spec ({title, section, lines: [{key, label, color, origin}]}), each a series
  // of the store. A run's widget has one line a tile; train/val pairs and the runs dashboard have several.
  constructor(view, id) {
    this.view = view;
    this.id = id;
    this.zoom = null; // [x0, x1] while zoomed
    this.expanded = false;
    this.drawn = null; // what was last drawn: key of inputs
    const title = this.spec().title;
    this.title = h("span", { class: "tj-title", title }, title);
    this.legend = h("div", { class: "tj-legend" });
    this.stats = h("span", { class: "tj-stats" });
    this.reset = button("reset", "reset zoom (or double-click)", () => { this.zoom = null; this.draw(true); });
    this.reset.style.display = "none";
    const tools = h("span", { class: "tj-tools" },
      this.reset,
      button("⤢", "expand / shrink", () => this.toggleExpand()),
      button("PNG", "save this chart as PNG", () => this.exportPng()),
      button("CSV", "save this chart's data as CSV", () => this.exportCsv()),
    );
    this.svg = s("svg", { class: "tj-svg", role: "img", "aria-label": `chart of ${title}` });
    this.tip = h("div", { class: "tj-tip" });
    this.tip.style.display = "none";
    this.plot = h("div", { class: "tj-plot" }, this.svg, this.tip);
    this.el = h("div", { class: "tj-tile", "data-metric": id }, h("div", { class: "tj-head" }, this.title, tools), this.legend, this.plot, this.stats);
    this.attachPointer();
  }

  get name() { return this.spec().title; }

  spec() {
    return this.view.specs.get(this.id) || { title: this.id, section: "", lines: [] };
  }

  toggleExpand() {
    this.expanded = !this.expanded;
    this.el.classList.toggle("tj-expanded", this.expanded);
    this.draw(true);
  }

  // The spec's lines that have a series in the store, with it.
  lines() {
    const out = [];
    for (const line of this.spec().lines) {
      const series = this.view.store.series.get(line.key);
      if (series && series.buckets.size) out.push({ ...line, series });
    }
    return out;
  }

  // Everything the drawing depends on, to skip redraws that would change nothing.
  key(width) {
    const v = this.view.settings;
    const lines = this.spec().lines.map((l) => {
      const s = this.view.store.series.get(l.key);
      return [l.key, l.color, l.label, s ? s.version : -1, s ? s.g : -1, s ? s.buckets.size : 0].join(":");
    });
    return [lines.join(","), width, v.x, v.log, v.smoothing, this.expanded, this.zoom && this.zoom.join()].join("|");
  }

  draw(force = false) {
    const width = Math.max(200, Math.floor(this.plot.clientWidth || MIN_TILE));
    const key = this.key(width);
    if (!force && key === this.drawn) return false;
    this.drawn = key;
    const height = this.expanded ? EXPANDED_HEIGHT : HEIGHT;
    this.svg.setAttribute("width", width);
    this.svg.setAttribute("height", height);
    this.svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.svg.replaceChildren();
    this.layout = null;
    const lines = this.lines();
    this.drawLegend(lines);
    if (!lines.length) {
      this.svg.append(Object.assign(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tj-muted" }), { textContent: "no data yet" }));
      this.stats.textContent = "";
      return true;
    }
    const settings = this.view.settings;
    // system metrics are sampled in time, not at the run's steps: on a step axis they go by time
    const axis = this.spec().section === "system" && (settings.x === "step" || settings.x.startsWith("metric:")) ? "relative" : settings.x;
    let dropped = 0;
    const positive = (p) => p[1] > 0;
    const stepAxis = this.view.stepAxis(this.spec(), axis);
    const drawn = lines.map((line) => {
      const origin = line.origin ?? this.view.store.origin ?? 0;
      const xOf = stepAxis ? this.view.lookup(line.key, stepAxis) : null;
      const { raw, means } = bucketPoints(sortedBuckets(line.series), stepAxis ? "step" : axis, origin, xOf);
      let smoothed = smooth(means, settings.smoothing);
      let shown = raw;
      if (settings.log) {
        shown = raw.filter(positive);
        dropped += raw.length - shown.length;
        smoothed = smoothed.filter(positive);
      }
      return { ...line, origin, raw, shown, smoothed };
    });
    const box = { left: PAD.left, top: PAD.top, width: width - PAD.left - PAD.right, height: height - PAD.top - PAD.bottom };
    let xlo = Infinity, xhi = -Infinity;
    for (const d of drawn) { xlo = Math.min(xlo, d.raw[0][0]); xhi = Math.max(xhi, d.raw[d.raw.length - 1][0]); }
    if (this.zoom) [xlo, xhi] = this.zoom;
    const inX = (p) => p[0] >= xlo && p[0] <= xhi;
    let ymin = Infinity, ymax = -Infinity;
    for (const d of drawn) {
      d.visible = d.shown.filter(inX);
      d.smoothedVisible = d.smoothed.filter(inX);
      for (const p of d.visible) { if (p[1] < ymin) ymin = p[1]; if (p[1] > ymax) ymax = p[1]; }
    }
    if (!(xhi > xlo)) xhi = xlo + (axis === "time" ? 1000 : 1);
    // the x domain is the data's (or the zoom's) ends: steps 0..137 end at 137, not at a round 200
    const xcount = Math.max(2, Math.floor(box.width / 90));
    let xt;
    if (stepAxis) xt = niceTicks(xlo, xhi, xcount);
    else if (axis === "time") xt = timeTicks(xlo, xhi, xcount);
    else if (axis === "relative") { // round durations: 30 s, 1 min, 5 min, ...
      const ms = timeTicks(xlo * 1000, xhi * 1000, xcount);
      xt = { lo: ms.lo / 1000, hi: ms.hi / 1000, ticks: ms.ticks.map((t) => t / 1000), step: ms.step / 1000 };
    } else xt = niceTicks(xlo, xhi, xcount);
    const eps = (xhi - xlo) * 1e-9;
    const xticks = { lo: xlo, hi: xhi, step: xt.step, ticks: xt.ticks.filter((t) => t >= xlo - eps && t <= xhi + eps) };
    let yt;
    if (!(ymax >= ymin)) yt = settings.log ? logTicks(1, 10) : niceTicks(0, 1, 4);
    else if (settings.log) yt = logTicks(ymin, ymax);
    else yt = niceTicks(ymin, ymax, Math.max(2, Math.floor(box.height / 36)));
    const fy = settings.log ? (v) => Math.log10(v) : (v) => v;
    const [ylo, yhi] = [fy(yt.lo), fy(yt.hi)];
    const sx = (x) => box.left + ((x - xticks.lo) / (xticks.hi - xticks.lo || 1)) * box.width;
    const sy = (y) => box.top + box.height - ((fy(y) - ylo) / (yhi - ylo || 1)) * box.height;
    this.layout = { box, sx, sy, xticks, axis: stepAxis ? "step" : axis, stepAxis, lines: drawn, log: settings.log };
    const g = s("g", { class: "tj-axes" });
    g.append(s("rect", { x: box.left, y: box.top, width: box.width, height: box.height, class: "tj-frame" }));
    yAxis(g, box, sy, yt.ticks, (t) => (settings.log ? formatTick(t, t) : formatTick(t, yt.step)));
    xAxis(g, box, sx, xticks.ticks, (t) => (stepAxis ? formatTick(t, xticks.step) : axis === "time" ? clockLabel(t, xticks.step) : axis === "relative" ? formatDuration(t) : formatTick(t, xticks.step)));
    const xTitle = s("text", { x: box.left + box.width / 2, y: height - 4, "text-anchor": "middle", class: "tj-axis-title" });
    xTitle.textContent = (stepAxis || { step: "step", time: "wall time", relative: "relative time" }[axis]) + (this.zoom ? " (zoomed: double-click to reset)" : "");
    g.append(xTitle);
    const yTitle = s("text", { transform: `translate(12 ${box.top + box.height / 2}) rotate(-90)`, "text-anchor": "middle", class: "tj-axis-title" });
    const name = this.name;
    const shortName = name.length > 28 ? name.slice(0, 27) + "…" : name;
    yTitle.textContent = shortName + (settings.log ? " (log)" : "");
    g.append(yTitle);
    this.svg.append(g);
    const clip = `tj-clip-${this.view.uid}-${this.view.charts.size}-${Math.random().toString(36).slice(2, 8)}`;
    const defs = s("defs");
    const cp = s("clipPath", { id: clip });
    cp.append(s("rect", { x: box.left, y: box.top - 1, width: box.width, height: box.height + 2 }));
    defs.append(cp);
    this.svg.append(defs);
    const group = s("g", { "clip-path": `url(#${clip})` });
    const path = (points) => points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const smoothing = settings.smoothing > 0;
    for (const d of drawn) {
      if (!d.visible.length) continue;
      group.append(s("path", { d: path(d.shown), fill: "none", stroke: d.color, "stroke-width": smoothing ? 1 : 1.6, "stroke-opacity": smoothing ? 0.3 : 1, class: "tj-raw", "stroke-linejoin": "round", "data-line": d.key }));
      if (smoothing) group.append(s("path", { d: path(d.smoothed), fill: "none", stroke: d.color, "stroke-width": 2, class: "tj-smooth", "stroke-linejoin": "round", "data-line": d.key }));
      if (d.shown.length === 1) group.append(s("circle", { cx: sx(d.shown[0][0]), cy: sy(d.shown[0][1]), r: 2.5, fill: d.color }));
    }
    this.svg.append(group);
    this.cursor = s("g", { class: "tj-cursor", visibility: "hidden" });
    this.cursorLine = s("line", { y1: box.top, y2: box.top + box.height, class: "tj-rule" });
    this.cursorDots = drawn.map((d) => s("circle", { r: 3.5, fill: d.color, class: "tj-dot" }));
    this.cursor.append(this.cursorLine, ...this.cursorDots);
    this.svg.append(this.cursor);
    this.band = s("rect", { y: box.top, height: box.height, class: "tj-band", visibility: "hidden" });
    this.svg.append(this.band);
    if (dropped) {
      const note = s("text", { x: box.left + box.width - 4, y: box.top + 12, "text-anchor": "end", class: "tj-muted tj-note" });
      note.textContent = `${dropped} point(s) ≤ 0 not on the log scale`;
      this.svg.append(note);
    }
    this.reset.style.display = this.zoom ? "" : "none";
    if (drawn.length === 1) {
      const series = drawn[0].series;
      let text = `last ${formatNumber(series.last)} · min ${formatNumber(series.min)} · max ${formatNumber(series.max)}`;
      if (series.skipped) text += ` · ${series.skipped.toLocaleString("en-US")} non-finite`;
      this.stats.textContent = text;
    } else this.stats.textContent = "";
    return true;
  }

  // A tile of several lines names them: a swatch of each line's colour, its label and last value.
  drawLegend(lines) {
    if (this.spec().lines.length < 2) { this.legend.replaceChildren(); return; }
    this.legend.replaceChildren(...lines.map((l) => h("span", { class: "tj-legend-item", title: l.label },
      swatch(l.color), " ", l.label, " ", h("span", { class: "tj-value" }, formatNumber(l.series.last)))));
  }

  // ----- pointer: hover readout, drag to zoom, shift-drag to pan, double-click to reset
  attachPointer() {
    const svg = this.svg;
    let drag = null;
    const xOf = (ev) => ev.clientX - svg.getBoundingClientRect().left;
    const invert = (px) => {
      const { box, xticks } = this.layout;
      return xticks.lo + ((px - box.left) / box.width) * (xticks.hi - xticks.lo);
    };
    svg.addEventListener("pointermove", (ev) => {
      if (!this.layout) return;
      const px = xOf(ev);
      if (drag) {
        if (drag.pan) {
          const dx = invert(drag.px) - invert(px);
          this.zoom = [drag.zoom[0] + dx, drag.zoom[1] + dx];
          this.draw();
        } else {
          const a = Math.min(drag.px, px), b = Math.max(drag.px, px);
          Object.entries({ x: a, width: b - a, visibility: "visible" }).forEach(([k, v]) => this.band.setAttribute(k, v));
        }
        return;
      }
      this.hover(px, ev);
    });
    svg.addEventListener("pointerleave", () => {
      if (this.cursor) this.cursor.setAttribute("visibility", "hidden");
      this.tip.style.display = "none";
    });
    svg.addEventListener("pointerdown", (ev) => {
      if (!this.layout || ev.button !== 0) return;
      const pan = ev.shiftKey && this.zoom;
      drag = { px: xOf(ev), pan, zoom: this.zoom && [...this.zoom] };
      svg.setPointerCapture?.(ev.pointerId);
      ev.preventDefault();
    });
    svg.addEventListener("pointerup", (ev) => {
      if (!drag) return;
      const px = xOf(ev);
      const was = drag;
      drag = null;
      this.band.setAttribute("visibility", "hidden");
      if (!was.pan && Math.abs(px - was.px) > 5) {
        const a = invert(Math.min(px, was.px)), b = invert(Math.max(px, was.px));
        if (b > a) { this.zoom = [a, b]; this.draw(true); }
      }
    });
    svg.addEventListener("dblclick", () => { this.zoom = null; this.draw(true); });
  }

  hover(px) {
    const { box, sx, sy, lines, axis } = this.layout;
    const hide = () => { this.cursor.setAttribute("visibility", "hidden"); this.tip.style.display = "none"; };
    if (px < box.left - 4 || px > box.left + box.width + 4) return hide();
    const nearest = (points, x) => {
      let best = null;
      for (const p of points) if (best === null || Math.abs(sx(p[0]) - x) < Math.abs(sx(best[0]) - x)) best = p;
      return best;
    };
    // the point nearest the pointer over all lines fixes the x; each line shows its point nearest that x
    let anchor = null;
    for (const d of lines) {
      const p = nearest(d.visible, px);
      if (p && (anchor === null || Math.abs(sx(p[0]) - px) < Math.abs(sx(anchor[0]) - px))) anchor = p;
    }
    if (anchor === null) return hide();
    const x = sx(anchor[0]);
    this.cursorLine.setAttribute("x1", x);
    this.cursorLine.setAttribute("x2", x);
    const picks = lines.map((d, i) => {
      const p = nearest(d.visible, x);
      const dot = this.cursorDots[i];
      if (p) { dot.setAttribute("cx", sx(p[0])); dot.setAttribute("cy", sy(p[1])); dot.setAttribute("visibility", "visible"); }
      else dot.setAttribute("visibility", "hidden");
      return { d, p };
    });
    this.cursor.setAttribute("visibility", "visible");
    const rows = lines.length === 1 ? this.readoutOne(picks[0], axis) : this.readoutMany(picks, axis);
    this.tip.replaceChildren(...rows);
    this.tip.style.display = "block";
    const right = x > box.left + box.width / 2;
    this.tip.style.left = right ? "" : `${x + 12}px`;
    this.tip.style.right = right ? `${this.plot.clientWidth - x + 12}px` : "";
    this.tip.style.top = `${box.top + 4}px`;
  }

  readoutOne({ d, p }, axis) {
    const b = p[2];
    const [, s0, s1, t0, t1, first, last, lo, hi, n] = b;
    const rows = [["run", d.label], ["step", s0 === s1 ? formatNumber(s0) : `${formatNumber(s0)}–${formatNumber(s1)}`]];
    if (this.layout.stepAxis) rows.push([this.layout.stepAxis, formatNumber(p[0])]);
    rows.push(["value", n > 1 ? `${formatNumber(last)} (min ${formatNumber(lo)}, max ${formatNumber(hi)} over ${n} steps)` : formatNumber(first)]);
    if (this.view.settings.smoothing > 0) {
      const sm = d.smoothed.find((q) => q[2] === b);
      if (sm) rows.push(["smoothed", formatNumber(sm[1])]);
    }
    rows.push(["wall time", new Date(t1).toLocaleString()]);
    if (axis === "relative" || axis === "step") rows.push(["relative", formatDuration((t1 - (d.origin ?? t1)) / 1000)]);
    return rows.map(([k, v]) => h("div", {}, h("span", { class: "tj-tip-key" }, k), " ", String(v)));
  }

  readoutMany(picks, axis) {
    const smoothing = this.view.settings.smoothing > 0;
    const out = [];
    const first = picks.find((pick) => pick.p);
    if (first) {
      const [, s0, s1, , t1] = first.p[2];
      const stepAxis = this.layout.stepAxis;
      const at = stepAxis ? formatNumber(first.p[0]) : axis === "time" ? new Date(t1).toLocaleString() : axis === "relative" ? formatDuration((t1 - (first.d.origin ?? t1)) / 1000) : (s0 === s1 ? formatNumber(s0) : `${formatNumber(s0)}–${formatNumber(s1)}`);
      out.push(h("div", {}, h("span", { class: "tj-tip-key" }, stepAxis || { step: "step", time: "wall time", relative: "relative" }[axis]), " ", at));
    }
    for (const { d, p } of picks) {
      if (!p) continue;
      const b = p[2];
      let value = formatNumber(b[9] > 1 ? b[6] : b[5]);
      if (smoothing) {
        const sm = d.smoothed.find((q) => q[2] === b);
        if (sm) value += ` (smoothed ${formatNumber(sm[1])})`;
      }
      out.push(h("div", { class: "tj-tip-line" }, swatch(d.color), " ", h("span", { class: "tj-tip-label" }, d.label), " ", value, axis !== "step" ? ` · step ${formatNumber(b[2])}` : ""));
    }
    return out;
  }

  // ----- export
  standaloneSvg() {
    const clone = this.svg.cloneNode(true);
    const source = this.svg.querySelectorAll("*");
    const copies = clone.querySelectorAll("*");
    source.forEach((node, i) => {
      const style = getComputedStyle(node);
      for (const prop of ["fill", "stroke", "stroke-opacity", "stroke-dasharray", "font-size", "font-family", "opacity"]) {
        copies[i].style.setProperty(prop, style.getPropertyValue(prop));
      }
    });
    clone.querySelectorAll(".tj-cursor, .tj-band").forEach((node) => node.remove());
    clone.setAttribute("xmlns", SVG);
    return clone;
  }

  exportPng() {
    const clone = this.standaloneSvg();
    const width = +this.svg.getAttribute("width");
    const height = +this.svg.getAttribute("height");
    const background = getComputedStyle(this.view.el).getPropertyValue("--tj-bg").trim() || "#ffffff";
    const image = new Image();
    const data = new XMLSerializer().serializeToString(clone);
    image.onload = () => {
      const canvas = document.createElement("canvas");
      canvas.width = width * 2;
      canvas.height = height * 2;
      const ctx = canvas.getContext("2d");
      ctx.fillStyle = background;
      ctx.fillRect(0, 0, canvas.width, canvas.height);
      ctx.scale(2, 2);
      ctx.drawImage(image, 0, 0);
      canvas.toBlob((blob) => blob && download(`${safeName(this.name)}.png`, blob), "image/png");
    };
    image.src = "data:image/svg+xml;charset=utf-8," + encodeURIComponent(data);
  }

  csv() {
    const lines = this.lines();
    const several = this.spec().lines.length > 1;
    const quote = (text) => `"${String(text).replace(/"/g, '""')}"`;
    const out = [(several ? "series," : "") + "step_first,step_last,time_first,time_last,first,last,min,max,mean,count"];
    for (const line of lines) {
      for (const b of sortedBuckets(line.series)) {
        const [, s0, s1, t0, t1, first, last, lo, hi, n, sum] = b;
        out.push((several ? quote(line.label) + "," : "") + [s0, s1, new Date(t0).toISOString(), new Date(t1).toISOString(), first, last, lo, hi, sum / n, n].join(","));
      }
    }
    return out.join("\n") + "\n";
  }

  exportCsv() {
    download(`${safeName(this.name)}.csv`, new Blob([this.csv()], { type: "text/csv" }));
  }
}

// -------------------------------------------------------------------------------------------- view

class View {
  // The charts of a model, in sections by prefix, with a toolbar. `kind` "run" (a run's widget: one
  // line a tile, train/val pairs overlaid on request) or "runs" (the runs dashboard: each tile one
  // metric, a line per selected run in the run's own colour).
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.uid = model.get("uid");
    this.kind = model.get("kind") === "runs" ? "runs" : "run";
    this.store = storeFor(model);
    this.charts = new Map();
    this.sections = new Map();
    this.specs = new Map();
    this.lookups = new Map();
    this.runName = model.get("run_name") || "";
    this.color = model.get("color") || PALETTE[0];
    this.settings = this.readSettings();
    this.pending = null;
    this.build();
    this.store.views.add(this);
    this.onView = () => { this.settings = this.readSettings(); this.syncControls(); this.schedule(true); };
    model.on("change:view", this.onView);
    this.onRuns = () => this.schedule(true);
    if (this.kind === "runs") model.on("change:runs", this.onRuns);
    else model.on("change:steps_of", this.onRuns);
    this.resize = new ResizeObserver(() => this.schedule(false));
    this.resize.observe(this.root);
    this.schedule(true);
  }

  // The step metric a tile is drawn against: the one chosen (x: metric:<name>), or on the step axis the
  // one every line's metric was defined with (define_metric(step_metric=...)); null for steps or time.
  stepAxis(spec, axis) {
    if (axis.startsWith("metric:")) return axis.slice(7);
    if (axis !== "step" || this.kind === "runs") return null;
    const stepsOf = this.model.get("steps_of") || {};
    const found = new Set(spec.lines.map((l) => stepsOf[l.key] || ""));
    return found.size === 1 && !found.has("") ? [...found][0] : null;
  }

  // The x of a step on a step metric's axis, for the series `key` (a run's own, in the runs dashboard).
  lookup(key, metric) {
    const cut = this.kind === "runs" ? key.indexOf(RUN_SEP) : -1;
    const name = cut >= 0 ? key.slice(0, cut + 1) + metric : metric;
    const series = this.store.series.get(name);
    if (!series) return null;
    const cached = this.lookups.get(name);
    if (cached && cached.version === series.version && cached.g === series.g) return cached.fn;
    const fn = stepLookup(series.buckets.values());
    this.lookups.set(name, { version: series.version, g: series.g, fn });
    return fn;
  }

  stepMetricNames() {
    if (this.kind === "runs") {
      const names = new Set();
      for (const key of this.store.series.keys()) names.add(key.slice(key.indexOf(RUN_SEP) + 1));
      return [...names].sort();
    }
    return [...new Set(Object.values(this.model.get("steps_of") || {}))].sort();
  }

  readSettings() {
    const v = this.model.get("view") || {};
    return {
      x: ["step", "time", "relative"].includes(v.x) || (typeof v.x === "string" && v.x.startsWith("metric:")) ? v.x : "step",
      log: !!v.log,
      smoothing: Math.min(0.99, Math.max(0, +v.smoothing || 0)),
      filter: typeof v.filter === "string" ? v.filter : "",
      closed: Array.isArray(v.closed) ? v.closed : [],
      pair: !!v.pair,
    };
  }

  save(patch) {
    const next = { ...this.settings, ...patch };
    this.model.set("view", next);
    this.model.save_changes();
  }

  build() {
    this.filter = h("input", { type: "search", class: "tj-filter", placeholder: "filter metrics (text or regex)", "aria-label": "filter metrics" });
    this.filter.addEventListener("input", () => this.save({ filter: this.filter.value }));
    this.xSelect = h("select", { class: "tj-select", "aria-label": "x axis" },
      h("option", { value: "step" }, "x: step"), h("option", { value: "relative" }, "x: relative time"), h("option", { value: "time" }, "x: wall time"));
    this.xSelect.addEventListener("change", () => this.save({ x: this.xSelect.value }));
    this.logBox = h("input", { type: "checkbox", class: "tj-log", "aria-label": "log scale" });
    this.logBox.addEventListener("change", () => this.save({ log: this.logBox.checked }));
    this.smoothing = h("input", { type: "range", min: "0", max: "0.99", step: "0.01", class: "tj-smoothing", "aria-label": "smoothing" });
    this.smoothingLabel = h("span", { class: "tj-value" });
    this.smoothing.addEventListener("input", () => {
      this.smoothingLabel.textContent = (+this.smoothing.value).toFixed(2);
      this.save({ smoothing: +this.smoothing.value });
    });
    this.pairBox = h("input", { type: "checkbox", class: "tj-pair", "aria-label": "overlay train and validation" });
    this.pairBox.addEventListener("change", () => this.save({ pair: this.pairBox.checked }));
    this.pairControl = h("label", { class: "tj-control", title: "draw train/x and val/x (or x and val_x) in one chart" }, this.pairBox, " overlay train/val");
    this.pairControl.style.display = "none";
    this.count = h("span", { class: "tj-count" });
    this.toolbar = h("div", { class: "tj-toolbar" },
      this.filter, this.xSelect,
      h("label", { class: "tj-control" }, this.logBox, " log y"),
      h("label", { class: "tj-control" }, "smoothing ", this.smoothing, this.smoothingLabel),
      this.pairControl,
      this.count);
    this.body = h("div", { class: "tj-sections" });
    this.root = h("div", { class: "tj-charts" }, this.toolbar, this.body);
    this.el.append(this.root);
    this.syncControls();
  }

  // The x axis choices: steps, times, and the step metrics there are (metric:<name>).
  syncAxes() {
    const names = this.stepMetricNames();
    const want = ["step", "relative", "time", ...names.map((n) => `metric:${n}`)];
    if (this.settings.x.startsWith("metric:") && !want.includes(this.settings.x)) want.push(this.settings.x);
    const have = [...this.xSelect.options].map((o) => o.value);
    if (want.join("\n") !== have.join("\n")) {
      const labels = { step: "x: step", relative: "x: relative time", time: "x: wall time" };
      this.xSelect.replaceChildren(...want.map((v) => h("option", { value: v }, labels[v] || `x: ${v.slice(7)}`)));
    }
    this.xSelect.value = this.settings.x;
  }

  syncControls() {
    const v = this.settings;
    if (document.activeElement !== this.filter) this.filter.value = v.filter;
    this.syncAxes();
    this.logBox.checked = v.log;
    this.smoothing.value = String(v.smoothing);
    this.smoothingLabel.textContent = v.smoothing.toFixed(2);
    this.pairBox.checked = v.pair;
  }

  changed() {
    this.schedule(false);
  }

  schedule(force) {
    this.force = this.force || force;
    if (this.pending !== null) return;
    this.pending = requestAnimationFrame(() => {
      this.pending = null;
      const force = this.force;
      this.force = false;
      try { this.render(force); } catch (err) { console.error("tracker_jupyter charts:", err); }
    });
  }

  section(name) {
    let section = this.sections.get(name);
    if (section) return section;
    const title = name || "charts";
    const grid = h("div", { class: "tj-grid-tiles" });
    const count = h("span", { class: "tj-count" });
    const summary = h("summary", { class: "tj-summary" }, title, " ", count);
    const details = h("details", { class: "tj-section", "data-section": title }, summary, grid);
    details.open = !this.settings.closed.includes(title);
    details.addEventListener("toggle", () => {
      const closed = new Set(this.settings.closed);
      if (details.open) closed.delete(title); else closed.add(title);
      if (closed.size !== this.settings.closed.length || details.open === this.settings.closed.includes(title)) this.save({ closed: [...closed] });
      if (details.open) this.schedule(true);
    });
    section = { details, grid, count, title };
    this.sections.set(name, section);
    // unprefixed first, then train/val pairs, then by name, system metrics last
    const rank = (k) => (k === "" ? 0 : k === PAIR_SECTION ? 1 : k === "system" ? 3 : 2);
    const order = [...this.sections.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
    this.body.replaceChildren(...order.map((k) => this.sections.get(k).details));
    return section;
  }

  // What the tiles are: id -> {title, section, names (to filter by), lines}.
  computeSpecs(names) {
    const specs = new Map();
    if (this.kind === "runs") {
      const runs = this.model.get("runs") || [];
      const order = new Map(runs.map((r, i) => [r.id, i]));
      for (const key of names) {
        const cut = key.indexOf(RUN_SEP);
        const i = order.get(key.slice(0, cut));
        if (cut < 0 || i === undefined) continue;
        const metric = key.slice(cut + 1);
        let spec = specs.get(metric);
        if (!spec) specs.set(metric, (spec = { title: metric, section: sectionOf(metric), names: [metric], lines: [] }));
        spec.lines.push({ key, label: runs[i].name, color: runs[i].color, origin: runs[i].origin ?? null, order: i });
      }
      for (const spec of specs.values()) spec.lines.sort((a, b) => a.order - b.order);
      return specs;
    }
    const groups = pairGroups(names);
    this.pairControl.style.display = groups.size ? "" : "none";
    const pairOf = new Map();
    if (this.settings.pair) for (const [id, g] of groups) for (const name of g.members) pairOf.set(name, id);
    for (const name of names) {
      const id = pairOf.get(name);
      if (id === undefined) {
        specs.set(name, { title: name, section: sectionOf(name), names: [name], lines: [{ key: name, label: this.runName, color: this.color, origin: null }] });
      } else if (!specs.has(`pair:${id}`)) {
        const g = groups.get(id);
        const lines = g.members.map((n, i) => ({ key: n, label: n, color: PALETTE[i % PALETTE.length], origin: null }));
        specs.set(`pair:${id}`, { title: g.title, section: PAIR_SECTION, names: g.members, lines });
      }
    }
    return specs;
  }

  render(force) {
    const names = [...this.store.series.keys()];
    this.specs = this.computeSpecs(names);
    this.syncAxes();
    for (const [id, chart] of this.charts) {
      if (!this.specs.has(id)) { chart.el.remove(); this.charts.delete(id); }
    }
    const match = matcher(this.settings.filter);
    let shown = 0;
    for (const [id, spec] of this.specs) {
      let chart = this.charts.get(id);
      if (!chart) {
        chart = new Chart(this, id);
        this.charts.set(id, chart);
        this.section(spec.section).grid.append(chart.el);
      }
      const visible = match(spec.title) || spec.names.some(match);
      chart.el.style.display = visible ? "" : "none";
      shown += visible;
    }
    for (const section of this.sections.values()) {
      const inSection = [...section.grid.children];
      const visible = inSection.filter((c) => c.style.display !== "none").length;
      section.count.textContent = `(${visible}${visible !== inSection.length ? ` of ${inSection.length}` : ""})`;
      section.details.style.display = visible ? "" : "none";
      const open = !this.settings.closed.includes(section.title);
      if (section.details.open !== open) section.details.open = open;
      if (!open || !visible) continue;
      for (const tile of inSection) {
        if (tile.style.display !== "none") this.charts.get(tile.dataset.metric).draw(force);
      }
    }
    const total = this.specs.size;
    if (this.kind === "runs") {
      const runs = (this.model.get("runs") || []).length;
      this.count.textContent = runs ? `${shown} of ${total} metrics · ${runs} run${runs === 1 ? "" : "s"}` : "select runs in the table to compare their metrics";
    } else this.count.textContent = names.length ? `${shown} of ${total} charts` : "no metrics logged yet";
    this.root.dataset.redraws = String((+this.root.dataset.redraws || 0) + 1);
  }

  destroy() {
    this.store.views.delete(this);
    this.model.off("change:view", this.onView);
    this.model.off("change:runs", this.onRuns);
    this.model.off("change:steps_of", this.onRuns);
    this.resize.disconnect();
    if (this.pending !== null) cancelAnimationFrame(this.pending);
  }
}

// ---------------------------------------------------------------------------------- runs dashboard

// The runs table of the runs dashboard: the kernel filters and sorts (`query`), sends the rows shown
// (`rows`, cells already formatted) and reads the selection back (`selected`, in the order chosen).
// A run's colour comes with its row and stays the same whatever is selected, filtered or sorted.
class RunsTable {
  constructor(model, el) {
    this.model = model;
    const query = model.get("query") || {};
    this.filter = h("input", { type: "search", class: "tj-filter tj-run-filter", placeholder: "filter runs: text, or key=value (lr=0.01)", "aria-label": "filter runs" });
    this.filter.value = query.filter || "";
    this.filter.addEventListener("input", () => this.saveQuery({ filter: this.filter.value }));
    this.count = h("span", { class: "tj-count" });
    this.toolbar = h("div", { class: "tj-toolbar" }, this.filter,
      button("select shown", "select every run the filter shows", () => this.select([...this.selected(), ...this.shownIds()]), BOXED),
      button("clear", "deselect every run", () => this.select([]), BOXED),
      this.count);
    this.table = h("table", { class: "tj-runs-table" });
    this.root = h("div", { class: "tj-runs" }, this.toolbar, h("div", { class: "tj-table-wrap" }, this.table));
    el.append(this.root);
    this.onChange = () => this.render();
    for (const name of ["rows", "columns", "selected", "query"]) model.on(`change:${name}`, this.onChange);
    this.render();
  }

  selected() { return this.model.get("selected") || []; }
  shownIds() { return (this.model.get("rows") || []).map((r) => r.id); }

  saveQuery(patch) {
    this.model.set("query", { ...(this.model.get("query") || {}), ...patch });
    this.model.save_changes();
  }

  select(ids) {
    this.model.set("selected", [...new Set(ids)]);
    this.model.save_changes();
  }

  toggle(id) {
    const now = this.selected();
    this.select(now.includes(id) ? now.filter((x) => x !== id) : [...now, id]);
  }

  render() {
    const columns = this.model.get("columns") || [];
    const rows = this.model.get("rows") || [];
    const selected = new Set(this.selected());
    const query = this.model.get("query") || {};
    if (document.activeElement !== this.filter) this.filter.value = query.filter || "";
    const groupRow = h("tr", {}, h("th", { class: "tj-th-group" }));
    let last = null;
    for (const column of columns) {
      if (last && last.group === column.group) { last.cell.colSpan += 1; continue; }
      const cell = h("th", { class: "tj-th-group", scope: "colgroup" }, column.group || "");
      groupRow.append(cell);
      last = { group: column.group, cell };
    }
    const titleRow = h("tr", {}, h("th", { class: "tj-th-pick", scope: "col", title: "compare" }, "✓"));
    for (const column of columns) {
      const sorted = query.sort === column.key;
      const arrow = sorted ? (query.descending ? " ▼" : " ▲") : "";
      const th = h("th", { scope: "col", class: column.numeric ? "tj-num" : "", title: `sort by ${column.key}`, "data-column": column.key,
        "aria-sort": sorted ? (query.descending ? "descending" : "ascending") : "none" }, column.title, arrow);
      th.addEventListener("click", () => this.saveQuery({ sort: column.key, descending: sorted ? !query.descending : column.key !== "name" }));
      titleRow.append(th);
    }
    const body = h("tbody");
    for (const row of rows) {
      const box = h("input", { type: "checkbox", "aria-label": `compare ${row.name}` });
      box.checked = selected.has(row.id);
      box.addEventListener("change", () => this.toggle(row.id));
      const tr = h("tr", { "data-run": row.id, class: box.checked ? "tj-picked" : "" }, h("td", { class: "tj-td-pick" }, box, " ", swatch(row.color)));
      row.cells.forEach((text, i) => {
        const column = columns[i] || {};
        const td = h("td", { class: column.numeric ? "tj-num" : "" });
        if (column.key === "state") td.append(h("span", { class: `tj-state tj-state-${text}` }, text));
        else td.append(text);
        if (text.length > 40) td.title = text;
        tr.append(td);
      });
      tr.addEventListener("click", (ev) => { if (ev.target !== box) this.toggle(row.id); });
      body.append(tr);
    }
    this.table.replaceChildren(h("thead", {}, groupRow, titleRow), body);
    const total = this.model.get("total") || rows.length;
    const hidden = [...selected].filter((id) => !rows.some((r) => r.id === id)).length;
    this.count.textContent = `${rows.length} of ${total} runs · ${selected.size} selected` + (hidden ? ` (${hidden} hidden by the filter)` : "");
  }

  destroy() {
    for (const name of ["rows", "columns", "selected", "query"]) this.model.off(`change:${name}`, this.onChange);
  }
}

// ------------------------------------------------------------------------------------------- media

// The run widget's media, below its charts: `media` = {key: {kind, steps: [{step, ...}]}}, made by
// display/media_panel.py. Images at their natural size (small ones scaled up by whole pixels, never
// blurred), a step slider through the kept steps, galleries, histograms as a heatmap over steps, tables
// paged and sortable, plot.* charts drawn as charts. Every user text is set as text, never markup.
const MEDIA_PAGE = 10;

function scaleFor(w) {
  if (!(w > 0)) return 1;
  return w >= 160 ? 1 : Math.max(1, Math.min(4, Math.floor(320 / w)));
}

function imageNode(item) {
  const box = h("figure", { class: "tj-figure" });
  if (item.src) {
    const img = h("img", { class: "tj-image", src: item.src, alt: item.caption || item.name || "image" });
    const scale = scaleFor(item.w);
    if (item.w && item.h) { img.width = item.w * scale; img.height = item.h * scale; }
    if (scale > 1) img.classList.add("tj-pixelated");
    box.append(img);
  } else box.append(h("div", { class: "tj-muted-text" }, `${item.name || "image"}${item.skipped ? ` (${item.skipped})` : ""}`));
  const meta = [item.w && item.h ? `${item.w}×${item.h}` : "", item.name || ""].filter(Boolean).join(" · ");
  if (item.caption) box.append(h("figcaption", { class: "tj-caption" }, item.caption));
  if (meta) box.append(h("div", { class: "tj-media-meta" }, meta));
  return box;
}

function heatmap(steps, width) {
  const cols = steps.filter((s) => Array.isArray(s.values) && Array.isArray(s.bins) && s.bins.length === s.values.length + 1);
  const svg = s("svg", { class: "tj-svg", width, height: 170, viewBox: `0 0 ${width} 170`, role: "img", "aria-label": "histogram over steps" });
  if (!cols.length) return svg;
  let lo = Infinity, hi = -Infinity;
  for (const c of cols) { lo = Math.min(lo, c.bins[0]); hi = Math.max(hi, c.bins[c.bins.length - 1]); }
  if (!(hi > lo)) hi = lo + 1;
  const box = { left: PAD.left, top: 6, width: width - PAD.left - PAD.right, height: 130 };
  const yt = niceTicks(lo, hi, 4);
  const sy = (v) => box.top + box.height - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * box.height;
  const colW = box.width / cols.length;
  const g = s("g");
  g.append(s("rect", { x: box.left, y: box.top, width: box.width, height: box.height, class: "tj-frame" }));
  cols.forEach((c, i) => {
    const peak = Math.max(...c.values) || 1;
    c.values.forEach((n, j) => {
      if (!(n > 0)) return;
      const y0 = sy(c.bins[j + 1]), y1 = sy(c.bins[j]);
      g.append(s("rect", { x: box.left + i * colW, y: y0, width: Math.max(1, colW - 0.5), height: Math.max(0.5, y1 - y0), fill: PALETTE[0], "fill-opacity": (0.12 + 0.88 * n / peak).toFixed(3) }));
    });
  });
  yAxis(g, box, sy, yt.ticks.filter((t) => t >= yt.lo && t <= yt.hi), (t) => formatTick(t, yt.step), false);
  const first = s("text", { x: box.left, y: box.top + box.height + 14, class: "tj-tick" });
  first.textContent = `step ${formatNumber(cols[0].step)}`;
  const last = s("text", { x: box.left + box.width, y: box.top + box.height + 14, "text-anchor": "end", class: "tj-tick" });
  last.textContent = `step ${formatNumber(cols[cols.length - 1].step)}`;
  const title = s("text", { x: box.left + box.width / 2, y: box.top + box.height + 28, "text-anchor": "middle", class: "tj-axis-title" });
  title.textContent = `${cols.length} step${cols.length === 1 ? "" : "s"} · darker: more values in the bin`;
  g.append(first, last, title);
  svg.append(g);
  return svg;
}

function dataTable(entry) {
  const columns = entry.columns || [];
  const rows = (entry.data || []).map((r, i) => ({ r, i }));
  const state = { sort: -1, desc: false, page: 0 };
  const numeric = columns.map((_, k) => rows.some(({ r }) => typeof r[k] === "number") && rows.every(({ r }) => r[k] === null || r[k] === undefined || typeof r[k] === "number"));
  const wrap = h("div", { class: "tj-media-table" });
  const render = () => {
    let shown = rows;
    if (state.sort >= 0) {
      const k = state.sort;
      const key = (v) => (v === null || v === undefined ? [2, 0] : typeof v === "number" ? [0, v] : [1, String(v).toLowerCase()]);
      shown = [...rows].sort((a, b) => {
        const [ka, va] = key(a.r[k]), [kb, vb] = key(b.r[k]);
        const c = ka - kb || (va < vb ? -1 : va > vb ? 1 : 0);
        return state.desc && ka === kb && ka < 2 ? -c : c;
      });
    }
    const pages = Math.max(1, Math.ceil(shown.length / MEDIA_PAGE));
    state.page = Math.min(state.page, pages - 1);
    const head = h("tr", {}, ...columns.map((c, k) => {
      const th = h("th", { scope: "col", class: numeric[k] ? "tj-num" : "", "aria-sort": state.sort === k ? (state.desc ? "descending" : "ascending") : "none" }, c, state.sort === k ? (state.desc ? " ▼" : " ▲") : "");
      th.addEventListener("click", () => { state.desc = state.sort === k ? !state.desc : false; state.sort = k; state.page = 0; render(); });
      return th;
    }));
    const body = shown.slice(state.page * MEDIA_PAGE, (state.page + 1) * MEDIA_PAGE).map(({ r }) =>
      h("tr", {}, ...columns.map((_, k) => h("td", { class: typeof r[k] === "number" ? "tj-num" : "" }, r[k] === null || r[k] === undefined ? "" : typeof r[k] === "number" ? formatNumber(r[k]) : String(r[k])))));
    const table = h("table", { class: "tj-runs-table" }, h("thead", {}, head), h("tbody", {}, ...body));
    const pageButton = (label, tip, page) => {
      const b = button(label, tip, () => { state.page = page; render(); }, BOXED);
      b.disabled = page < 0 || page >= pages;
      return b;
    };
    const from = shown.length ? state.page * MEDIA_PAGE + 1 : 0;
    const more = entry.rows > rows.length ? ` (the first ${rows.length} of ${entry.rows} rows)` : "";
    const pager = h("div", { class: "tj-pager" }, pageButton("‹", "previous page", state.page - 1),
      h("span", { class: "tj-count" }, `${from}–${Math.min(shown.length, (state.page + 1) * MEDIA_PAGE)} of ${shown.length}${more}`),
      pageButton("›", "next page", state.page + 1));
    wrap.replaceChildren(h("div", { class: "tj-table-wrap" }, table), pager);
  };
  render();
  return wrap;
}

function chartOf(entry, width) {
  const f = entry.fields || {};
  const columns = entry.columns || [];
  const col = (name) => columns.indexOf(name);
  const data = entry.data || [];
  const kind = entry.chart;
  if (kind === "confusion_matrix") {
    const [a, p, n] = [col(f.Actual || "Actual"), col(f.Predicted || "Predicted"), col(f.nPredictions || "nPredictions")];
    const labels = [...new Set(data.map((r) => String(r[a])))];
    const peak = Math.max(1, ...data.map((r) => +r[n] || 0));
    const grid = h("table", { class: "tj-confusion" }, h("tr", {}, h("th", {}, "actual \\ predicted"), ...labels.map((l) => h("th", {}, l))));
    for (const actual of labels) {
      const tr = h("tr", {}, h("th", {}, actual));
      for (const predicted of labels) {
        const row = data.find((r) => String(r[a]) === actual && String(r[p]) === predicted);
        const count = row ? +row[n] || 0 : 0;
        const td = h("td", { class: "tj-num" }, formatNumber(count));
        td.style.background = `rgba(31, 119, 180, ${(0.08 + 0.6 * count / peak).toFixed(3)})`;
        tr.append(td);
      }
      grid.append(tr);
    }
    return grid;
  }
  // everything else is drawn on x/y axes: lines (by stroke), points, bars, or a histogram of one column
  let series = [];
  let bars = null;
  if (kind === "bar" || kind === "histogram") {
    if (kind === "bar") bars = data.map((r) => [String(r[col(f.label)]), +r[col(f.value)]]).filter(([, v]) => Number.isFinite(v));
    else {
      const values = data.map((r) => +r[col(f.value)]).filter(Number.isFinite);
      const t = niceTicks(Math.min(...values), Math.max(...values), 10);
      const counts = new Map();
      for (const v of values) { const b = Math.min(t.ticks.length - 2, Math.max(0, Math.floor((v - t.lo) / t.step))); counts.set(b, (counts.get(b) || 0) + 1); }
      bars = t.ticks.slice(0, -1).map((lo, i) => [`${formatTick(lo, t.step)}–${formatTick(lo + t.step, t.step)}`, counts.get(i) || 0]);
    }
  } else {
    const [x, y, stroke] = [col(f.x), col(f.y), f.stroke ? col(f.stroke) : -1];
    const groups = new Map();
    for (const r of data) {
      const px = +r[x], py = +r[y];
      if (!Number.isFinite(px) || !Number.isFinite(py)) continue;
      const g = stroke >= 0 ? String(r[stroke]) : "";
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g).push([px, py]);
    }
    series = [...groups].map(([label, points]) => ({ label, points: kind === "scatter" ? points : points.sort((p, q) => p[0] - q[0]) }));
  }
  const height = 200;
  const svg = s("svg", { class: "tj-svg", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": entry.title || kind });
  const box = { left: PAD.left, top: PAD.top, width: width - PAD.left - PAD.right, height: height - PAD.top - PAD.bottom };
  const g = s("g");
  g.append(s("rect", { x: box.left, y: box.top, width: box.width, height: box.height, class: "tj-frame" }));
  if (bars) {
    const peak = Math.max(0, ...bars.map(([, v]) => v));
    const yt = niceTicks(Math.min(0, ...bars.map(([, v]) => v)), peak || 1, 4);
    const sy = (v) => box.top + box.height - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * box.height;
    const bw = box.width / Math.max(1, bars.length);
    bars.forEach(([label, v], i) => {
      const r = s("rect", { x: box.left + i * bw + bw * 0.1, width: bw * 0.8, y: Math.min(sy(v), sy(0)), height: Math.abs(sy(0) - sy(v)), fill: PALETTE[0] });
      const tip = s("title"); tip.textContent = `${label}: ${formatNumber(v)}`; r.append(tip);
      g.append(r);
      if (bars.length <= 12) {
        const t = s("text", { x: box.left + (i + 0.5) * bw, y: box.top + box.height + 14, "text-anchor": "middle", class: "tj-tick" });
        t.textContent = label.length > 10 ? label.slice(0, 9) + "…" : label;
        g.append(t);
      }
    });
    yAxis(g, box, sy, yt.ticks, (t) => formatTick(t, yt.step), false);
  } else {
    const all = series.flatMap((l) => l.points);
    if (all.length) {
      const xt = niceTicks(Math.min(...all.map((p) => p[0])), Math.max(...all.map((p) => p[0])), Math.max(2, Math.floor(box.width / 90)));
      const yt = niceTicks(Math.min(...all.map((p) => p[1])), Math.max(...all.map((p) => p[1])), 4);
      const sx = (v) => box.left + ((v - xt.lo) / (xt.hi - xt.lo || 1)) * box.width;
      const sy = (v) => box.top + box.height - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * box.height;
      yAxis(g, box, sy, yt.ticks, (t) => formatTick(t, yt.step));
      xAxis(g, box, sx, xt.ticks, (t) => formatTick(t, xt.step));
      series.forEach((line, i) => {
        const color = PALETTE[i % PALETTE.length];
        if (kind === "scatter") for (const [px, py] of line.points) g.append(s("circle", { cx: sx(px), cy: sy(py), r: 2.5, fill: color, "fill-opacity": 0.7 }));
        else g.append(s("path", { d: line.points.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(""), fill: "none", stroke: color, "stroke-width": 1.6, class: "tj-raw" }));
      });
    }
    const xTitle = s("text", { x: box.left + box.width / 2, y: height - 4, "text-anchor": "middle", class: "tj-axis-title" });
    xTitle.textContent = f.x || "";
    const yTitle = s("text", { transform: `translate(12 ${box.top + box.height / 2}) rotate(-90)`, "text-anchor": "middle", class: "tj-axis-title" });
    yTitle.textContent = f.y || "";
    g.append(xTitle, yTitle);
  }
  svg.append(g);
  const out = h("div", {});
  if (series.length > 1) out.append(h("div", { class: "tj-legend" }, ...series.map((l, i) => h("span", { class: "tj-legend-item" }, swatch(PALETTE[i % PALETTE.length]), " ", l.label))));
  out.append(svg);
  return out;
}

class MediaTile {
  constructor(view, key) {
    this.view = view;
    this.key = key;
    this.index = null; // the step shown; null: follow the newest
    this.title = h("span", { class: "tj-title", title: key }, key);
    this.kindLabel = h("span", { class: "tj-count" });
    this.slider = h("input", { type: "range", class: "tj-step", min: "0", step: "1", "aria-label": `step of ${key}` });
    this.stepLabel = h("span", { class: "tj-count tj-step-label" });
    this.slider.addEventListener("input", () => {
      const n = this.entry().steps.length;
      this.index = +this.slider.value >= n - 1 ? null : +this.slider.value;
      this.draw(true);
    });
    this.controls = h("div", { class: "tj-step-controls" }, this.slider, this.stepLabel);
    this.body = h("div", { class: "tj-media-body" });
    this.el = h("div", { class: "tj-tile tj-media-tile", "data-key": key }, h("div", { class: "tj-head" }, this.title, this.kindLabel), this.controls, this.body);
    this.drawn = null;
  }

  entry() { return this.view.media()[this.key] || { kind: "", steps: [] }; }

  draw(force = false) {
    const entry = this.entry();
    const steps = entry.steps || [];
    const width = Math.max(240, Math.floor(this.body.clientWidth || 320));
    const key = [steps.length, steps.length ? steps[steps.length - 1].step : -1, this.index, width, entry.kind].join("|");
    if (!force && key === this.drawn) return;
    this.drawn = key;
    const kind = entry.kind;
    this.kindLabel.textContent = { image: "image", gallery: "images", histogram: "histogram", table: "table", chart: "chart" }[kind] || kind;
    const sliding = (kind === "image" || kind === "gallery") && steps.length > 1;
    this.controls.style.display = sliding ? "" : "none";
    const i = this.index === null ? steps.length - 1 : Math.min(this.index, steps.length - 1);
    const current = steps[i] || {};
    if (sliding) {
      this.slider.max = String(steps.length - 1);
      this.slider.value = String(i);
      this.stepLabel.textContent = `step ${formatNumber(current.step)} (${i + 1} of ${steps.length}${this.index === null ? ", newest" : ""})`;
    }
    let node;
    if (kind === "image") node = imageNode(current);
    else if (kind === "gallery") node = h("div", { class: "tj-gallery" }, ...(current.items || []).map(imageNode));
    else if (kind === "histogram") node = heatmap(steps, width);
    else if (kind === "table") node = dataTable(current);
    else if (kind === "chart") node = h("div", {}, current.title ? h("div", { class: "tj-chart-title" }, current.title) : "", chartOf(current, width));
    else node = h("div", { class: "tj-muted-text" }, `${steps.length} value(s)`);
    const note = kind === "table" || kind === "chart" ? h("div", { class: "tj-media-meta" }, `step ${formatNumber(current.step)}${steps.length > 1 ? ` (newest of ${steps.length})` : ""}`) : "";
    this.body.replaceChildren(node, note);
  }
}

class MediaView {
  constructor(model, el) {
    this.model = model;
    this.tiles = new Map();
    this.grid = h("div", { class: "tj-grid-tiles tj-media-grid" });
    this.count = h("span", { class: "tj-count" });
    this.details = h("details", { class: "tj-section", "data-section": "media", open: "" }, h("summary", { class: "tj-summary" }, "media ", this.count), this.grid);
    this.root = h("div", { class: "tj-media" }, this.details);
    el.append(this.root);
    this.onChange = () => this.render();
    model.on("change:media", this.onChange);
    this.resize = new ResizeObserver(() => this.render(false));
    this.resize.observe(this.root);
    this.render(true);
  }

  media() { return this.model.get("media") || {}; }

  render(force = false) {
    const media = this.media();
    const keys = Object.keys(media);
    this.root.style.display = keys.length ? "" : "none";
    this.count.textContent = `(${keys.length})`;
    for (const key of keys) {
      let tile = this.tiles.get(key);
      if (!tile) {
        tile = new MediaTile(this, key);
        this.tiles.set(key, tile);
        this.grid.append(tile.el);
      }
      try { tile.draw(force); } catch (err) { console.error("tracker_jupyter media:", err); }
    }
  }

  destroy() {
    this.model.off("change:media", this.onChange);
    this.resize.disconnect();
  }
}

function initialize({ model }) {
  storeFor(model);
}

function render({ model, el }) {
  const parts = [];
  if (model.get("kind") === "runs") parts.push(new RunsTable(model, el));
  parts.push(new View(model, el));
  if (model.get("kind") !== "runs") parts.push(new MediaView(model, el));
  return () => parts.forEach((part) => part.destroy());
}

export default { initialize, render };
