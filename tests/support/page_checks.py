"""Checks made in a real page: text contrast as WCAG 2 computes it, and JupyterLab's theme switch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

# Contrast of every visible text in `root` against what lies behind it, as WCAG 2 computes it: the
# text colour (with the opacity of the element and its ancestors) is composited over the first opaque
# background found going up (the page's own at the top).
CONTRAST = """(root) => {
  const parse = (c) => {
    const m = c.match(/rgba?\\(([^)]+)\\)/);
    if (!m) return null;
    const p = m[1].split(/[ ,/]+/).filter(Boolean).map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const over = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
  });
  const lum = (c) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
  };
  const backgroundOf = (el) => {
    const layers = [];
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) {
      const bg = parse(getComputedStyle(n).backgroundColor);
      if (bg && bg.a > 0) { layers.push(bg); if (bg.a >= 1) break; }
    }
    let color = { r: 255, g: 255, b: 255, a: 1 };
    for (const layer of layers.reverse()) color = over(layer, color);
    return color;
  };
  const out = [];
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    const text = node.textContent.trim();
    if (!text) continue;
    const el = node.parentElement;
    const rect = el.getBoundingClientRect();
    const style = getComputedStyle(el);
    if (!rect.width || !rect.height || style.visibility === "hidden" || el.closest("[style*='display: none']")) continue;
    if (el.closest("option, select, script, style")) continue;
    const svgText = el instanceof SVGElement;
    let color = parse(svgText ? style.fill : style.color);
    if (!color) continue;
    let alpha = color.a * (svgText ? +style.fillOpacity || 1 : 1);
    for (let n = el; n && n.nodeType === 1; n = n.parentElement) alpha *= +getComputedStyle(n).opacity;
    const bg = backgroundOf(el);
    const fg = over({ ...color, a: alpha }, bg);
    const [l1, l2] = [lum(fg), lum(bg)].sort((a, b) => b - a);
    out.push({ text: text.slice(0, 40), ratio: (l1 + 0.05) / (l2 + 0.05) });
  }
  return out;
}"""


def assert_readable(where: Locator, label: str, *, least: int = 20) -> None:
    results: list[dict[str, Any]] = where.evaluate(CONTRAST)
    assert len(results) >= least, f"{label}: only {len(results)} texts found"
    poor = [r for r in results if r["ratio"] < 4.5]
    assert not poor, f"{label}: text below 4.5:1 contrast: {poor[:8]}"


def set_theme(page: Page, theme: str) -> None:
    page.evaluate(f"() => window.jupyterapp.commands.execute('apputils:change-theme', {{theme: '{theme}'}})")
    light = "true" if theme == "JupyterLab Light" else "false"
    page.wait_for_function(f"() => document.body.dataset.jpThemeLight === '{light}'")
    time.sleep(0.5)  # the theme's stylesheet applies after the attribute flips


def page_errors(page: Page, *, allowed: Callable[[Any], bool] = lambda _: False) -> list[str]:
    """A list that fills with the page's console errors and uncaught exceptions (with their stacks),
    except those ``allowed`` lets through."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: None if allowed(e) else errors.append(f"{e}\n{e.stack}"))
    return errors
