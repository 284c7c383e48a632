// Chart.js (vendored, global Chart) with the dashboard's theme: colours come from the CSS
// custom properties, so light and dark themes restyle every chart; animation is off so a
// chart is drawn in the frame its data arrives.

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

export function colours() {
  return {
    pass: css('--c-pass'), fail: css('--c-fail'), warn: css('--c-warn'), neutral: css('--c-neutral'),
    accent: css('--c-accent'), text: css('--fg'), muted: css('--muted'), grid: css('--border'),
  };
}

/** draw creates (or replaces) the chart on canvas with the config; answers the chart. */
export function draw(canvas, config) {
  const c = colours();
  const Chart = window.Chart;
  Chart.defaults.color = c.muted;
  Chart.defaults.borderColor = c.grid;
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false,
    plugins: { legend: { labels: { color: c.text, boxWidth: 12 } } } }, config.options || {});
  return new Chart(canvas, config);
}

/** update swaps a chart's data in place (auto-refresh) without re-creating it. */
export function update(canvas, data) {
  const ch = window.Chart.getChart(canvas);
  if (!ch) return;
  ch.data.labels = data.labels;
  data.datasets.forEach((d, i) => {
    if (ch.data.datasets[i]) ch.data.datasets[i].data = d.data;
  });
  ch.update('none');
}

// Charts drawn with drawThemed follow the theme: on a switch each still on the page is drawn
// again from its original config, so legends, ticks and grid take the new colours. (The
// overview redraws its own, with colours recomputed per dataset.)
const themed = new Map(); // canvas → pristine config (plain data: no callbacks)
window.addEventListener('vigil-theme', () => {
  for (const [canvas, config] of themed) {
    if (!canvas.isConnected) themed.delete(canvas);
    else draw(canvas, structuredClone(config));
  }
});

/** drawThemed draws like draw and redraws the chart when the theme changes. */
export function drawThemed(canvas, config) {
  themed.set(canvas, structuredClone(config));
  return draw(canvas, config);
}
