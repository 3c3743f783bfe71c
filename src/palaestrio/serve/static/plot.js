"use strict";
// A small line chart on a canvas: axes with min/max labels, one line per series; the
// legend is HTML below it (`legend`), so long names wrap instead of overlapping.
const COLORS = ["#1d3557", "#e63946", "#2a9d8f", "#f4a261", "#6a4c93", "#8ab17d"];

function lineChart(canvas, legend, series, xLabel) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 52, R = 10, T = 10, B = 22;
  ctx.clearRect(0, 0, W, H);
  const xs = series.flatMap(s => s.x), ys = series.flatMap(s => s.y);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#666";
  legend.replaceChildren(...series.map((s, i) => {
    const item = document.createElement("span");
    item.textContent = "━ " + s.label;
    item.style.color = COLORS[i % COLORS.length];
    return item;
  }));
  if (!xs.length) { ctx.fillText("no data yet", W / 2 - 30, H / 2); return; }
  let [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  ctx.strokeStyle = "#999";
  ctx.beginPath(); ctx.moveTo(L, T); ctx.lineTo(L, H - B); ctx.lineTo(W - R, H - B); ctx.stroke();
  const num = v => Math.abs(v) >= 1000 || Number.isInteger(v) ? v.toFixed(0) : v.toPrecision(3);
  ctx.fillText(num(y1), 2, T + 8); ctx.fillText(num(y0), 2, H - B);
  ctx.fillText(num(x0), L, H - B + 12); ctx.fillText(num(x1), W - R - 30, H - B + 12);
  ctx.fillText(xLabel, (W - L) / 2, H - B + 12);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    ctx.strokeStyle = ctx.fillStyle = color;
    ctx.beginPath();
    s.x.forEach((x, j) => j ? ctx.lineTo(px(x), py(s.y[j])) : ctx.moveTo(px(x), py(s.y[j])));
    ctx.stroke();
    if (s.x.length === 1) ctx.fillRect(px(s.x[0]) - 2, py(s.y[0]) - 2, 4, 4);
  });
}
