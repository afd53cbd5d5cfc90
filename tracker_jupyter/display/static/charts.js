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
export function bucketPoints(buckets, axis, origin) {
  const raw = [];
  const means = [];
  for (const b of buckets) {
    const [, s0, s1, t0, t1, first, last, lo, hi, n, sum] = b;
    let x0 = s0, x1 = s1;
    if (axis === "time") { x0 = t0; x1 = t1; }
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

const safeName = (name) => name.replace(/[^A-Za-z0-9._-]+/g, "_") || "metric";

// ------------------------------------------------------------------------------------------- chart

class Chart {
  constructor(view, name) {
    this.view = view;
    this.name = name;
    this.zoom = null; // [x0, x1] while zoomed
    this.expanded = false;
    this.drawn = null; // what was last drawn: key of inputs
    this.title = h("span", { class: "tj-title", title: name }, name);
    this.stats = h("span", { class: "tj-stats" });
    const button = (label, tip, fn) => h("button", { class: "tj-btn", title: tip, "aria-label": tip, onclick: fn }, label);
    this.reset = button("reset", "reset zoom (or double-click)", () => { this.zoom = null; this.draw(true); });
    this.reset.style.display = "none";
    const tools = h("span", { class: "tj-tools" },
      this.reset,
      button("⤢", "expand / shrink", () => this.toggleExpand()),
      button("PNG", "save this chart as PNG", () => this.exportPng()),
      button("CSV", "save this chart's data as CSV", () => this.exportCsv()),
    );
    this.svg = s("svg", { class: "tj-svg", role: "img", "aria-label": `chart of ${name}` });
    this.tip = h("div", { class: "tj-tip" });
    this.tip.style.display = "none";
    this.plot = h("div", { class: "tj-plot" }, this.svg, this.tip);
    this.el = h("div", { class: "tj-tile", "data-metric": name }, h("div", { class: "tj-head" }, this.title, tools), this.plot, this.stats);
    this.attachPointer();
  }

  toggleExpand() {
    this.expanded = !this.expanded;
    this.el.classList.toggle("tj-expanded", this.expanded);
    this.draw(true);
  }

  series() {
    return this.view.store.series.get(this.name);
  }

  // Everything the drawing depends on, to skip redraws that would change nothing.
  key(width) {
    const s = this.series();
    const v = this.view.settings;
    return [s ? s.version : -1, s ? s.g : -1, s ? s.buckets.size : 0, width, v.x, v.log, v.smoothing, this.expanded, this.zoom && this.zoom.join()].join("|");
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
    const series = this.series();
    if (!series || series.buckets.size === 0) {
      this.svg.append(Object.assign(s("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "tj-muted" }), { textContent: "no data yet" }));
      this.stats.textContent = "";
      return true;
    }
    const settings = this.view.settings;
    const axis = settings.x;
    const { raw, means } = bucketPoints(sortedBuckets(series), axis, this.view.store.origin ?? 0);
    let smoothed = smooth(means, settings.smoothing);
    let rawShown = raw;
    let dropped = 0;
    if (settings.log) {
      const positive = (p) => p[1] > 0;
      dropped = raw.length - raw.filter(positive).length;
      rawShown = raw.filter(positive);
      smoothed = smoothed.filter(positive);
    }
    const box = { left: PAD.left, top: PAD.top, width: width - PAD.left - PAD.right, height: height - PAD.top - PAD.bottom };
    let xlo = raw[0][0], xhi = raw[raw.length - 1][0];
    if (this.zoom) [xlo, xhi] = this.zoom;
    const inX = (p) => p[0] >= xlo && p[0] <= xhi;
    const visible = rawShown.filter(inX);
    const ys = visible.map((p) => p[1]);
    if (!(xhi > xlo)) xhi = xlo + (axis === "time" ? 1000 : 1);
    // the x domain is the data's (or the zoom's) ends: steps 0..137 end at 137, not at a round 200
    const xcount = Math.max(2, Math.floor(box.width / 90));
    let xt;
    if (axis === "time") xt = timeTicks(xlo, xhi, xcount);
    else if (axis === "relative") { // round durations: 30 s, 1 min, 5 min, ...
      const ms = timeTicks(xlo * 1000, xhi * 1000, xcount);
      xt = { lo: ms.lo / 1000, hi: ms.hi / 1000, ticks: ms.ticks.map((t) => t / 1000), step: ms.step / 1000 };
    } else xt = niceTicks(xlo, xhi, xcount);
    const eps = (xhi - xlo) * 1e-9;
    const xticks = { lo: xlo, hi: xhi, step: xt.step, ticks: xt.ticks.filter((t) => t >= xlo - eps && t <= xhi + eps) };
    let yt;
    if (ys.length === 0) yt = settings.log ? logTicks(1, 10) : niceTicks(0, 1, 4);
    else if (settings.log) yt = logTicks(Math.min(...ys), Math.max(...ys));
    else yt = niceTicks(Math.min(...ys), Math.max(...ys), Math.max(2, Math.floor(box.height / 36)));
    const fy = settings.log ? (v) => Math.log10(v) : (v) => v;
    const [ylo, yhi] = [fy(yt.lo), fy(yt.hi)];
    const sx = (x) => box.left + ((x - xticks.lo) / (xticks.hi - xticks.lo || 1)) * box.width;
    const sy = (y) => box.top + box.height - ((fy(y) - ylo) / (yhi - ylo || 1)) * box.height;
    this.layout = { box, sx, sy, xticks, axis, raw: visible, smoothed: smoothed.filter(inX), log: settings.log };
    const g = s("g", { class: "tj-axes" });
    g.append(s("rect", { x: box.left, y: box.top, width: box.width, height: box.height, class: "tj-frame" }));
    for (const t of yt.ticks) {
      const y = sy(t);
      g.append(s("line", { x1: box.left, x2: box.left + box.width, y1: y, y2: y, class: "tj-grid" }));
      const label = s("text", { x: box.left - 6, y: y + 3.5, "text-anchor": "end", class: "tj-tick" });
      label.textContent = settings.log ? formatNumber(t) : formatTick(t, yt.step);
      g.append(label);
    }
    for (const t of xticks.ticks) {
      const x = sx(t);
      g.append(s("line", { x1: x, x2: x, y1: box.top, y2: box.top + box.height, class: "tj-grid" }));
      const label = s("text", { x, y: box.top + box.height + 14, "text-anchor": "middle", class: "tj-tick" });
      label.textContent = axis === "time" ? clockLabel(t, xticks.step) : axis === "relative" ? formatDuration(t) : formatTick(t, xticks.step);
      g.append(label);
    }
    const xTitle = s("text", { x: box.left + box.width / 2, y: height - 4, "text-anchor": "middle", class: "tj-axis-title" });
    xTitle.textContent = { step: "step", time: "wall time", relative: "relative time" }[axis] + (this.zoom ? " (zoomed: double-click to reset)" : "");
    g.append(xTitle);
    const yTitle = s("text", { transform: `translate(12 ${box.top + box.height / 2}) rotate(-90)`, "text-anchor": "middle", class: "tj-axis-title" });
    const shortName = this.name.length > 28 ? this.name.slice(0, 27) + "…" : this.name;
    yTitle.textContent = shortName + (settings.log ? " (log)" : "");
    g.append(yTitle);
    this.svg.append(g);
    const clip = `tj-clip-${this.view.uid}-${this.view.charts.size}-${Math.random().toString(36).slice(2, 8)}`;
    const defs = s("defs");
    const cp = s("clipPath", { id: clip });
    cp.append(s("rect", { x: box.left, y: box.top - 1, width: box.width, height: box.height + 2 }));
    defs.append(cp);
    this.svg.append(defs);
    const color = this.view.color;
    const lines = s("g", { "clip-path": `url(#${clip})` });
    const path = (points) => points.map((p, i) => `${i ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const smoothing = settings.smoothing > 0;
    if (visible.length) {
      const rawLine = s("path", { d: path(rawShown), fill: "none", stroke: color, "stroke-width": smoothing ? 1 : 1.6, "stroke-opacity": smoothing ? 0.3 : 1, class: "tj-raw", "stroke-linejoin": "round" });
      lines.append(rawLine);
      if (smoothing) lines.append(s("path", { d: path(smoothed), fill: "none", stroke: color, "stroke-width": 2, class: "tj-smooth", "stroke-linejoin": "round" }));
      if (rawShown.length === 1) lines.append(s("circle", { cx: sx(rawShown[0][0]), cy: sy(rawShown[0][1]), r: 2.5, fill: color }));
    }
    this.svg.append(lines);
    this.cursor = s("g", { class: "tj-cursor", visibility: "hidden" });
    this.cursorLine = s("line", { y1: box.top, y2: box.top + box.height, class: "tj-rule" });
    this.cursorDot = s("circle", { r: 3.5, fill: color, class: "tj-dot" });
    this.cursor.append(this.cursorLine, this.cursorDot);
    this.svg.append(this.cursor);
    this.band = s("rect", { y: box.top, height: box.height, class: "tj-band", visibility: "hidden" });
    this.svg.append(this.band);
    if (dropped) {
      const note = s("text", { x: box.left + box.width - 4, y: box.top + 12, "text-anchor": "end", class: "tj-muted tj-note" });
      note.textContent = `${dropped} point(s) ≤ 0 not on the log scale`;
      this.svg.append(note);
    }
    this.reset.style.display = this.zoom ? "" : "none";
    let text = `last ${formatNumber(series.last)} · min ${formatNumber(series.min)} · max ${formatNumber(series.max)}`;
    if (series.skipped) text += ` · ${series.skipped.toLocaleString("en-US")} non-finite`;
    this.stats.textContent = text;
    return true;
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

  hover(px, ev) {
    const { box, sx, sy, raw, smoothed, axis } = this.layout;
    if (!raw.length || px < box.left - 4 || px > box.left + box.width + 4) {
      this.cursor.setAttribute("visibility", "hidden");
      this.tip.style.display = "none";
      return;
    }
    let best = raw[0];
    for (const p of raw) if (Math.abs(sx(p[0]) - px) < Math.abs(sx(best[0]) - px)) best = p;
    const b = best[2];
    const x = sx(best[0]);
    this.cursorLine.setAttribute("x1", x);
    this.cursorLine.setAttribute("x2", x);
    this.cursorDot.setAttribute("cx", x);
    this.cursorDot.setAttribute("cy", sy(best[1]));
    this.cursor.setAttribute("visibility", "visible");
    const [, s0, s1, t0, t1, first, last, lo, hi, n] = b;
    const rows = [["run", this.view.runName], ["step", s0 === s1 ? formatNumber(s0) : `${formatNumber(s0)}–${formatNumber(s1)}`]];
    rows.push(["value", n > 1 ? `${formatNumber(last)} (min ${formatNumber(lo)}, max ${formatNumber(hi)} over ${n} steps)` : formatNumber(first)]);
    if (this.view.settings.smoothing > 0) {
      const sm = smoothed.find((p) => p[2] === b);
      if (sm) rows.push(["smoothed", formatNumber(sm[1])]);
    }
    rows.push(["wall time", new Date(t1).toLocaleString()]);
    if (axis === "relative" || axis === "step") rows.push(["relative", formatDuration((t1 - (this.view.store.origin ?? t1)) / 1000)]);
    this.tip.replaceChildren(...rows.map(([k, v]) => h("div", {}, h("span", { class: "tj-tip-key" }, k), " ", String(v))));
    this.tip.style.display = "block";
    const right = x > box.left + box.width / 2;
    this.tip.style.left = right ? "" : `${x + 12}px`;
    this.tip.style.right = right ? `${this.plot.clientWidth - x + 12}px` : "";
    this.tip.style.top = `${box.top + 4}px`;
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
    const series = this.series();
    const lines = ["step_first,step_last,time_first,time_last,first,last,min,max,mean,count"];
    for (const b of series ? sortedBuckets(series) : []) {
      const [, s0, s1, t0, t1, first, last, lo, hi, n, sum] = b;
      lines.push([s0, s1, new Date(t0).toISOString(), new Date(t1).toISOString(), first, last, lo, hi, sum / n, n].join(","));
    }
    return lines.join("\n") + "\n";
  }

  exportCsv() {
    download(`${safeName(this.name)}.csv`, new Blob([this.csv()], { type: "text/csv" }));
  }
}

// -------------------------------------------------------------------------------------------- view

class View {
  constructor(model, el) {
    this.model = model;
    this.el = el;
    this.uid = model.get("uid");
    this.store = storeFor(model);
    this.charts = new Map();
    this.sections = new Map();
    this.runName = model.get("run_name") || "";
    this.color = model.get("color") || PALETTE[0];
    this.settings = this.readSettings();
    this.pending = null;
    this.build();
    this.store.views.add(this);
    this.onView = () => { this.settings = this.readSettings(); this.syncControls(); this.schedule(true); };
    model.on("change:view", this.onView);
    this.resize = new ResizeObserver(() => this.schedule(false));
    this.resize.observe(this.root);
    this.schedule(true);
  }

  readSettings() {
    const v = this.model.get("view") || {};
    return {
      x: ["step", "time", "relative"].includes(v.x) ? v.x : "step",
      log: !!v.log,
      smoothing: Math.min(0.99, Math.max(0, +v.smoothing || 0)),
      filter: typeof v.filter === "string" ? v.filter : "",
      closed: Array.isArray(v.closed) ? v.closed : [],
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
    this.count = h("span", { class: "tj-count" });
    this.toolbar = h("div", { class: "tj-toolbar" },
      this.filter, this.xSelect,
      h("label", { class: "tj-control" }, this.logBox, " log y"),
      h("label", { class: "tj-control" }, "smoothing ", this.smoothing, this.smoothingLabel),
      this.count);
    this.body = h("div", { class: "tj-sections" });
    this.root = h("div", { class: "tj-charts" }, this.toolbar, this.body);
    this.el.append(this.root);
    this.syncControls();
  }

  syncControls() {
    const v = this.settings;
    if (document.activeElement !== this.filter) this.filter.value = v.filter;
    this.xSelect.value = v.x;
    this.logBox.checked = v.log;
    this.smoothing.value = String(v.smoothing);
    this.smoothingLabel.textContent = v.smoothing.toFixed(2);
  }

  changed(names) {
    this.dirty = this.dirty === null || names === null || this.dirty === undefined ? names : new Set([...this.dirty, ...names]);
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
    // sections in name order, the unprefixed one first, system metrics last
    const order = [...this.sections.keys()].sort((a, b) => (a === "system") - (b === "system") || (a === "" ? -1 : b === "" ? 1 : a.localeCompare(b)));
    this.body.replaceChildren(...order.map((k) => this.sections.get(k).details));
    return section;
  }

  render(force) {
    const names = [...this.store.series.keys()];
    const match = matcher(this.settings.filter);
    let shown = 0;
    for (const name of names) {
      let chart = this.charts.get(name);
      if (!chart) {
        chart = new Chart(this, name);
        this.charts.set(name, chart);
        this.section(sectionOf(name)).grid.append(chart.el);
      }
      const visible = match(name);
      chart.el.style.display = visible ? "" : "none";
      shown += visible;
    }
    for (const [key, section] of this.sections) {
      const inSection = [...section.grid.children];
      const visible = inSection.filter((c) => c.style.display !== "none").length;
      section.count.textContent = `(${visible}${visible !== inSection.length ? ` of ${inSection.length}` : ""})`;
      section.details.style.display = visible ? "" : "none";
      const open = !this.settings.closed.includes(section.title);
      if (section.details.open !== open) section.details.open = open;
      if (!open || !visible) continue;
      for (const tile of inSection) {
        if (tile.style.display === "none") continue;
        const chart = this.charts.get(tile.dataset.metric);
        if (force || this.dirty === null || this.dirty === undefined || this.dirty.has(chart.name)) chart.draw(force);
        else chart.draw(false);
      }
    }
    this.dirty = new Set();
    this.count.textContent = names.length ? `${shown} of ${names.length} metrics` : "no metrics logged yet";
    this.root.dataset.redraws = String((+this.root.dataset.redraws || 0) + 1);
  }

  destroy() {
    this.store.views.delete(this);
    this.model.off("change:view", this.onView);
    this.resize.disconnect();
    if (this.pending !== null) cancelAnimationFrame(this.pending);
  }
}

function initialize({ model }) {
  storeFor(model);
}

function render({ model, el }) {
  const view = new View(model, el);
  return () => view.destroy();
}

export default { initialize, render };
