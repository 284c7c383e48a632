// The overview: summary cards and the eight charts, all from /api/rollup/*, under the filters
// in the URL (#/overview?domain=…&days=30…), refreshed every 30 s unless paused.
import { h, clear, num, pct, field, select, errorBox, empty, loading } from './dom.js';
import { get } from './api.js';
import { colours, draw, update } from './charts.js';
import { exportBar } from './exports.js';

// The common filters the URL may carry, in the order the API documents them.
export const FILTERS = ['domain', 'days', 'start', 'end', 'source_ip', 'source_ip_range', 'dkim_result', 'spf_result', 'disposition', 'org_name'];
const ADVANCED = ['source_ip', 'source_ip_range', 'dkim_result', 'spf_result', 'disposition', 'org_name'];
export const REFRESH_MS = 30000;

/** filtersOf reads the common filters from URL params into an object. */
export function filtersOf(params) {
  const f = {};
  for (const k of FILTERS) if (params.get(k)) f[k] = params.get(k);
  return f;
}

// interval keeps a series to a few hundred points at most: days for up to a quarter, weeks up
// to two years, months beyond (and for all time).
function interval(f) {
  let days = f.days ? Number(f.days) : null;
  if (!days && f.start && f.end) days = (Date.parse(f.end) - Date.parse(f.start)) / 864e5;
  if (!days) return 'month';
  return days <= 100 ? 'day' : days <= 730 ? 'week' : 'month';
}

const CHARTS = [
  ['timeline', 'DMARC results over time', 'Messages that passed and failed DMARC per period (pass: DKIM or SPF passed aligned).'],
  ['domains', 'Results by domain', 'Messages per policy domain, split by whether the receiver applied the published policy. Click a bar to filter by that domain.'],
  ['sources', 'Top source IPs', 'The sending addresses with the most messages, split into DMARC pass and fail. Click a bar to filter by that address.'],
  ['dispositions', 'Disposition breakdown', 'What receivers did with the messages: none (delivered), quarantine, reject, pass.'],
  ['alignment', 'SPF/DKIM alignment', 'Messages by which mechanisms passed aligned with the From domain: both, DKIM only, SPF only, neither.'],
  ['policy', 'Policy compliance', 'Messages by the published policy (p=) and whether the receiver’s disposition matched it.'],
  ['orgs', 'Top reporting organisations', 'The receivers that reported the most messages, split into DMARC pass and fail. Click a bar to filter by that organisation.'],
  ['trend', 'Failure-rate trend', 'The share of messages failing DMARC per day, with its 7-day moving average.'],
];

// fetchAll asks the seven endpoints behind the cards and charts at once.
async function fetchAll(f) {
  const [summary, timeline, policy, sources, breakdown, trend, orgs] = await Promise.all([
    get('/api/rollup/summary', f),
    get('/api/rollup/timeline', { ...f, interval: interval(f) }),
    get('/api/rollup/policy', { ...f, page_size: 100 }),
    get('/api/rollup/sources', { ...f, limit: 10 }),
    get('/api/rollup/alignment-breakdown', f),
    get('/api/rollup/failure-trend', f),
    get('/api/rollup/top-organizations', { ...f, limit: 10 }),
  ]);
  return { summary, timeline, policy, sources, breakdown, trend, orgs };
}

/** chartData turns the API's answers into each chart's labels and datasets. */
export function chartData(d) {
  const s = d.summary.dispositions;
  const byPolicy = {};
  for (const dom of d.policy.items) {
    for (const p of dom.published || []) {
      const e = (byPolicy[p.policy || '(none)'] ||= { matched: 0, unmatched: 0 });
      e.matched += p.matched_messages;
      e.unmatched += p.messages - p.matched_messages;
    }
  }
  const top = d.policy.items.slice(0, 10);
  const b = d.breakdown;
  return {
    timeline: { labels: d.timeline.points.map((p) => p.start), datasets: [
      { label: 'DMARC pass', data: d.timeline.points.map((p) => p.dmarc_pass_messages) },
      { label: 'DMARC fail', data: d.timeline.points.map((p) => p.dmarc_fail_messages) }] },
    domains: { labels: top.map((x) => x.domain), datasets: [
      { label: 'Policy applied', data: top.map((x) => x.matched_messages) },
      { label: 'Not applied', data: top.map((x) => x.unmatched_messages) }] },
    sources: { labels: d.sources.items.map((x) => x.source_ip), datasets: [
      { label: 'DMARC pass', data: d.sources.items.map((x) => x.dmarc_pass_messages) },
      { label: 'DMARC fail', data: d.sources.items.map((x) => x.dmarc_fail_messages) }] },
    dispositions: { labels: ['none', 'quarantine', 'reject', 'pass', 'other'], datasets: [
      { label: 'Messages', data: [s.none, s.quarantine, s.reject, s.pass, s.other] }] },
    alignment: { labels: ['Both', 'DKIM only', 'SPF only', 'Neither'], datasets: [
      { label: 'Messages', data: [b.both.messages, b.dkim_only.messages, b.spf_only.messages, b.neither.messages] }] },
    policy: { labels: Object.keys(byPolicy).map((p) => 'p=' + p), datasets: [
      { label: 'Disposition matched', data: Object.values(byPolicy).map((e) => e.matched) },
      { label: 'Did not match', data: Object.values(byPolicy).map((e) => e.unmatched) }] },
    trend: { labels: d.trend.points.map((p) => p.date), datasets: [
      { label: 'Failure rate %', data: d.trend.points.map((p) => (p.failure_rate == null ? null : +(p.failure_rate * 100).toFixed(2))) },
      { label: '7-day moving average %', data: d.trend.points.map((p) => (p.moving_average_7d == null ? null : +(p.moving_average_7d * 100).toFixed(2))) }] },
    orgs: { labels: d.orgs.items.map((x) => x.org_name), datasets: [
      { label: 'DMARC pass', data: d.orgs.items.map((x) => x.dmarc_pass_messages) },
      { label: 'DMARC fail', data: d.orgs.items.map((x) => x.dmarc_fail_messages) }] },
  };
}

// style adds each chart's type and colours to its data.
function config(name, data, onPick) {
  const c = colours();
  const pf = [c.pass, c.fail];
  // Long series (years of days) would make Chart.js measure every label: sample a few and
  // show a dozen ticks instead.
  const few = { sampleSize: 24, maxTicksLimit: 10, maxRotation: 0, autoSkip: true, autoSkipPadding: 16 };
  const stacked = { x: { stacked: true, ticks: few }, y: { stacked: true, beginAtZero: true } };
  const hbar = { indexAxis: 'y', scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } } };
  const pick = onPick && {
    onClick: (e, els, chart) => { if (els.length) onPick(chart.data.labels[els[0].index]); },
    onHover: (e, els) => { e.native.target.style.cursor = els.length ? 'pointer' : 'default'; },
  };
  const paint = (cols) => data.datasets.map((d, i) => ({ ...d, backgroundColor: cols[i], borderColor: cols[i] }));
  switch (name) {
    case 'timeline': return { type: 'bar', data: { labels: data.labels, datasets: paint(pf) }, options: { scales: stacked } };
    case 'domains': return { type: 'bar', data: { labels: data.labels, datasets: paint([c.pass, c.warn]) }, options: { ...hbar, ...pick } };
    case 'sources':
    case 'orgs': return { type: 'bar', data: { labels: data.labels, datasets: paint(pf) }, options: { ...hbar, ...pick } };
    case 'dispositions':
      return { type: 'doughnut', data: { labels: data.labels, datasets: [{ ...data.datasets[0], backgroundColor: [c.pass, c.warn, c.fail, c.accent, c.neutral] }] } };
    case 'alignment':
      return { type: 'doughnut', data: { labels: data.labels, datasets: [{ ...data.datasets[0], backgroundColor: [c.pass, c.accent, c.warn, c.fail] }] } };
    case 'policy': return { type: 'bar', data: { labels: data.labels, datasets: paint([c.pass, c.fail]) }, options: { scales: stacked } };
    case 'trend':
      return { type: 'line', data: { labels: data.labels, datasets: [
        { ...data.datasets[0], borderColor: c.fail, backgroundColor: c.fail, pointRadius: 0, borderWidth: 1 },
        { ...data.datasets[1], borderColor: c.accent, backgroundColor: c.accent, pointRadius: 0, borderWidth: 2, borderDash: [6, 3] }] },
      options: { scales: { x: { ticks: few }, y: { beginAtZero: true, suggestedMax: 100 } }, spanGaps: true, normalized: true } };
  }
  return null;
}

// describe summarises a chart in words for screen readers (the canvas's accessible name).
function describe(title, data) {
  const parts = data.labels.slice(0, 5).map((l, i) => `${l}: ${data.datasets.map((d) => `${d.label} ${num(d.data[i])}`).join(', ')}`);
  return `${title}. ${data.labels.length ? parts.join('; ') + (data.labels.length > 5 ? '; …' : '') : 'No data.'}`;
}

function cards(s) {
  const card = (label, value, tip) => h('div', { class: 'stat card', title: tip, tabindex: '0', role: 'group', 'aria-label': `${label}: ${value}. ${tip}` },
    h('div', { class: 'stat-label' }, label, h('span', { class: 'tip', 'aria-hidden': 'true' }, 'i')), h('div', { class: 'stat-value' }, value));
  return h('section', { class: 'stats', 'aria-label': 'Summary' },
    card('Reports', num(s.total_reports), 'Aggregate reports received for this selection'),
    card('Messages', num(s.total_messages), 'Messages the reports counted'),
    card('DMARC pass rate', pct(s.dmarc_pass_rate), `${num(s.dmarc_pass_messages)} messages passed: DKIM or SPF passed aligned (weighted by message count)`),
    card('DMARC fail rate', pct(s.dmarc_fail_rate), `${num(s.dmarc_fail_messages)} messages failed both aligned DKIM and SPF`));
}

function filterForm(f, domains, apply) {
  const period = f.start || f.end ? 'custom' : f.days || '';
  const domainSel = select('domain', [['', 'All domains'], ...domains.map((d) => [d, d])], f.domain);
  const periodSel = select('period', [['', 'All time'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days'], ['custom', 'Custom range']], period);
  const start = h('input', { type: 'date', name: 'start', value: f.start || '' });
  const end = h('input', { type: 'date', name: 'end', value: f.end || '' });
  const custom = h('div', { class: 'custom-range', hidden: period !== 'custom' }, field('From', start), field('To', end));
  const results = [['', 'Any'], ['pass', 'pass'], ['fail', 'fail']];
  const adv = {
    source_ip: h('input', { name: 'source_ip', value: f.source_ip || '', placeholder: '192.0.2.1', inputmode: 'decimal' }),
    source_ip_range: h('input', { name: 'source_ip_range', value: f.source_ip_range || '', placeholder: '192.0.2.0/24' }),
    dkim_result: select('dkim_result', results, f.dkim_result),
    spf_result: select('spf_result', results, f.spf_result),
    disposition: select('disposition', [['', 'Any'], ['none', 'none'], ['quarantine', 'quarantine'], ['reject', 'reject'], ['pass', 'pass']], f.disposition),
    org_name: h('input', { name: 'org_name', value: f.org_name || '', placeholder: 'google.com' }),
  };
  const read = () => {
    const out = { domain: domainSel.value };
    if (periodSel.value === 'custom') { out.start = start.value; out.end = end.value; } else out.days = periodSel.value;
    for (const [k, el] of Object.entries(adv)) out[k] = el.value.trim();
    return out;
  };
  periodSel.addEventListener('change', () => {
    custom.hidden = periodSel.value !== 'custom';
    if (periodSel.value !== 'custom') apply(read());
  });
  domainSel.addEventListener('change', () => apply(read()));
  const open = ADVANCED.some((k) => f[k]);
  return h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(read()); } },
    h('div', { class: 'filter-row' }, field('Domain', domainSel), field('Period', periodSel), custom,
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'),
        h('button', { type: 'button', class: 'secondary', onclick: () => apply({}) }, 'Reset'))),
    h('details', { open }, h('summary', {}, 'Advanced filters'),
      h('div', { class: 'filter-row' },
        field('Source IP', adv.source_ip), field('Source range (CIDR)', adv.source_ip_range), field('DKIM result', adv.dkim_result),
        field('SPF result', adv.spf_result), field('Disposition', adv.disposition), field('Reporting organisation', adv.org_name))));
}

export async function render(main, params, { go }) {
  const f = filtersOf(params);
  const t0 = performance.now();
  const apply = (nf) => go('overview', nf);
  const pick = (key) => (value) => go('overview', { ...f, [key]: value });
  const picks = { domains: pick('domain'), sources: pick('source_ip'), orgs: pick('org_name') };
  // The domain list and the answers are asked for at once: one round trip, not two.
  const dataP = fetchAll(f);
  dataP.catch(() => {}); // handled below, after the form is drawn
  const domains = await get('/api/domains', { page_size: 500 }).then((d) => d.items.map((x) => x.domain)).catch(() => []);
  const status = h('span', { class: 'muted', role: 'status', 'aria-live': 'polite' });
  let paused = sessionStorage.getItem('vigil.paused') === '1';
  const pauseBtn = h('button', { type: 'button', class: 'secondary', 'aria-pressed': String(paused) }, paused ? 'Resume auto-refresh' : 'Pause auto-refresh');
  pauseBtn.addEventListener('click', () => {
    paused = !paused;
    sessionStorage.setItem('vigil.paused', paused ? '1' : '0');
    pauseBtn.setAttribute('aria-pressed', String(paused));
    pauseBtn.textContent = paused ? 'Resume auto-refresh' : 'Pause auto-refresh';
  });
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading the overview…'));
  clear(main, h('div', { class: 'page-head' }, h('h1', {}, 'Overview'), h('div', { class: 'refresh' }, status, pauseBtn)),
    filterForm(f, domains, apply), exportBar(['pdf', 'workbook', 'sources-csv', 'sources-xlsx'], f), body);

  let data;
  try {
    data = await dataP;
  } catch (e) {
    clear(body, errorBox(e));
    body.removeAttribute('aria-busy');
    return null;
  }
  if (data.summary.total_reports === 0) {
    const none = Object.keys(f).length === 0;
    clear(body, none
      ? empty('No reports yet: upload or connect a mailbox.', h('p', {}, h('a', { href: '#/upload' }, 'Upload reports'), ' · ', h('a', { href: '#/admin/mailboxes' }, 'Connect a mailbox')))
      : empty('Nothing matches these filters.', h('button', { type: 'button', class: 'secondary', onclick: () => apply({}) }, 'Clear the filters')));
    body.removeAttribute('aria-busy');
    main.dataset.state = 'ready';
    return null;
  }
  const fetched = performance.now();
  const cd = chartData(data);
  const canvases = {};
  const grid = h('section', { class: 'charts', 'aria-label': 'Charts' }, CHARTS.map(([name, title, tip]) => {
    canvases[name] = h('canvas', { id: 'chart-' + name, role: 'img', 'aria-label': describe(title, cd[name]) });
    return h('figure', { class: 'chart card' + (name === 'timeline' || name === 'trend' ? ' wide' : '') },
      h('figcaption', { title: tip }, title, h('span', { class: 'tip', 'aria-hidden': 'true' }, 'i'), h('span', { class: 'sr-only' }, '. ' + tip)),
      h('div', { class: 'chart-box' }, canvases[name]));
  }));
  let cardsEl = cards(data.summary);
  clear(body, cardsEl, grid);
  body.removeAttribute('aria-busy');
  const drawAll = () => {
    const cdNow = chartData(data);
    window.vigilDrawMs = {}; // per chart, for the browser test's figures
    for (const [name] of CHARTS) {
      const t = performance.now();
      draw(canvases[name], config(name, cdNow[name], picks[name]));
      window.vigilDrawMs[name] = Math.round(performance.now() - t);
    }
  };
  drawAll();
  main.dataset.state = 'ready';
  // How long from the route to every chart drawn (the browser test reports it).
  window.vigilOverviewMs = performance.now() - t0;
  window.vigilOverviewFetchMs = fetched - t0;
  status.textContent = 'Updated ' + new Date().toLocaleTimeString();

  const onTheme = () => drawAll();
  window.addEventListener('vigil-theme', onTheme);
  const timer = setInterval(async () => {
    if (paused || document.hidden) return;
    try {
      data = await fetchAll(f);
      const next = chartData(data);
      for (const [name, title] of CHARTS) {
        update(canvases[name], next[name]);
        canvases[name].setAttribute('aria-label', describe(title, next[name]));
      }
      const fresh = cards(data.summary);
      cardsEl.replaceWith(fresh);
      cardsEl = fresh;
      status.textContent = 'Updated ' + new Date().toLocaleTimeString();
    } catch (e) {
      status.textContent = 'Refresh failed: ' + (e.detail || e.message);
    }
  }, REFRESH_MS);
  return () => { clearInterval(timer); window.removeEventListener('vigil-theme', onTheme); };
}

