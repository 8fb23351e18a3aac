// The reviewer console's few scripts: the score-history chart (uPlot, with the rulebook's
// grade bands behind the line) and another row for the inspection form. No inline scripts:
// the pages' Content-Security-Policy allows only files from this server.
"use strict";

const BAND_COLOURS = { A: "rgba(47,158,68,.12)", B: "rgba(116,184,22,.12)", C: "rgba(245,159,0,.15)", D: "rgba(201,42,42,.12)" };

function gradeBands(bands) {
  return (u) => {
    const { ctx, bbox } = u;
    ctx.save();
    for (const band of bands) {
      const top = u.valToPos(band.below ?? 100, "y", true);
      const bottom = u.valToPos(band.min, "y", true);
      ctx.fillStyle = BAND_COLOURS[band.grade] || "rgba(0,0,0,.05)";
      ctx.fillRect(bbox.left, top, bbox.width, bottom - top);
      ctx.fillStyle = "rgba(0,0,0,.45)";
      ctx.font = `${12 * devicePixelRatio}px sans-serif`;
      ctx.fillText(band.grade, bbox.left + 4 * devicePixelRatio, top + 14 * devicePixelRatio);
    }
    ctx.restore();
  };
}

const LOCAL = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit", day: "2-digit",
  hour: "2-digit", minute: "2-digit", hour12: false,
});

function localTime(seconds) {
  return seconds == null ? "" : LOCAL.format(new Date(seconds * 1000));
}

function scoreChart() {
  const el = document.getElementById("score-chart");
  const source = document.getElementById("score-data");
  if (!el || !source || typeof uPlot === "undefined") return;
  const { points, bands } = JSON.parse(source.textContent);
  const xs = points.map((p) => p.t);
  const ys = points.map((p) => p.score);
  const opts = {
    width: Math.max(320, el.clientWidth || 800),
    height: 300,
    scales: { x: { time: true }, y: { range: [0, 100] } },
    series: [
      { label: "时间（北京时间）", value: (u, v) => localTime(v) },
      { label: "信用评分", stroke: "#1f4e79", width: 2, points: { show: true, size: 6 } },
    ],
    axes: [
      { values: (u, splits) => splits.map((v) => localTime(v).replace(" ", "\n")), space: 80 },
      { values: (u, vals) => vals.map((v) => v + " 分") },
    ],
    hooks: { drawClear: [gradeBands(bands)] },
  };
  const chart = new uPlot(opts, [xs, ys], el);
  el.dataset.rendered = String(chart.data[0].length);
  window.geocreditChart = chart;
}

function findingRows() {
  for (const button of document.querySelectorAll("button.add-finding")) {
    button.addEventListener("click", () => {
      const next = button.closest("fieldset").querySelector(".finding-row[hidden]");
      if (next) next.hidden = false;
      if (!button.closest("fieldset").querySelector(".finding-row[hidden]")) button.disabled = true;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  scoreChart();
  findingRows();
});
