// Insights from the ML jobs (docs/ml.md): the anomalous senders of the latest scoring run, the
// models (admins train and deploy), and per domain the failure-rate forecast and the policy
// advice. Addresses, domains and sender names come from reports: text only (dom.js).
import { h, clear, num, pct, dateTime, field, select, table, pager, badge, errorBox, empty, notice, loading } from './dom.js';
import { get, post } from './api.js';
import { colours, drawThemed as draw } from './charts.js';

function subnav(current) {
  return h('nav', { class: 'subnav', 'aria-label': 'Insight pages' }, [['insights', 'Anomalous senders'], ['insights/domain', 'Forecast and advice'], ['insights/models', 'Models']].map(([p, l]) =>
    h('a', { href: '#/' + p, 'aria-current': p === current ? 'page' : undefined }, l)));
}

const fmt = (v, d = 3) => (v == null ? '–' : Number(v).toFixed(d));
const err = (e) => notice(e.detail || e.message, 'error');

/** anomalies: the latest run's predictions, most anomalous first; analysts may score now. */
export async function anomalies(main, params, { go, can }) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const f = {};
  for (const k of ['domain', 'all']) if (params.get(k)) f[k] = params.get(k);
  const domain = h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' });
  const all = select('all', [['', 'Anomalies only'], ['true', 'Every scored source']], f.all);
  const apply = () => go('insights', { domain: domain.value.trim(), all: all.value });
  all.addEventListener('change', apply);
  const detect = can('analyst') ? h('button', { type: 'button', class: 'secondary', id: 'ml-detect', onclick: async (e) => {
    e.currentTarget.disabled = true;
    try { const t = await post('/analytics/anomalies/detect', {}); notice(`Scoring queued (task ${t.task_id}); reload in a minute.`); } catch (ex) { err(ex); }
  } }, 'Score the senders now') : null;
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading anomalies…'));
  clear(main, h('div', { class: 'page-head' }, h('h1', {}, 'Anomalous senders'), detect), subnav('insights'),
    h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
      h('div', { class: 'filter-row' }, field('Domain', domain), field('Show', all), h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply')))),
    body);
  let l;
  try {
    l = await get('/analytics/anomalies/recent', { ...f, page, page_size: 50 });
  } catch (e) {
    clear(body, errorBox(e));
    main.dataset.state = 'ready';
    return;
  }
  body.removeAttribute('aria-busy');
  clear(body, !l.items || l.items.length === 0
    ? empty(f.domain || f.all ? 'No source matches.' : 'No anomalous sender in the latest scoring run (or no run yet: scoring is daily).')
    : [h('p', { class: 'muted' }, 'Score: the Isolation Forest’s s(x, n) from 0 to 1; above the model’s threshold a source is anomalous (0.5 is average).'),
      table('Anomalous senders', [
        { label: 'Source IP', th: true, cell: (p) => h('span', { class: 'mono' }, p.ip) },
        { label: 'Domain', cell: (p) => p.domain || '–' },
        { label: 'Score', cell: (p) => h('span', { title: `decision value ${fmt(p.score)} (below 0: anomalous)` }, fmt(p.anomaly_score)) },
        { label: 'Verdict', cell: (p) => badge(p.is_anomaly ? 'anomalous' : 'normal', p.is_anomaly ? 'Scored above the threshold' : 'Within the usual') },
        { label: 'Messages per day', cell: (p) => fmt(p.features && Math.expm1(p.features.volume_per_day), 1) },
        { label: 'Failure rate', cell: (p) => pct(p.features && p.features.failure_rate) },
        { label: 'Model', cell: (p) => h('a', { href: `#/insights/models?model=${p.model_id}` }, `#${p.model_id}`) },
        { label: 'Scored', cell: (p) => dateTime(p.detected_at) },
      ], l.items),
      pager(page, 50, l.total ?? l.items.length, (n) => go('insights', { ...f, page: n }))]);
  main.dataset.state = 'ready';
}

/** models: every model, one's stats; admins train a new one and deploy a ready one. */
export async function models(main, params, { go, can }) {
  const admin = can('admin');
  const listEl = h('div', {}, loading());
  const statsEl = h('div', { id: 'model-stats' });
  const shown = Number(params.get('model')) || 0;
  const stats = async (id) => {
    clear(statsEl, loading('Loading the model…'));
    try {
      const [m, s] = await Promise.all([get(`/analytics/ml/models/${id}`), get(`/analytics/ml/models/${id}/stats`)]);
      const hist = s.histogram || [];
      const canvas = h('canvas', { id: 'chart-model-scores', role: 'img', 'aria-label': `Score histogram of the latest run: ${hist.join(', ') || 'no run'}` });
      clear(statsEl, h('section', { class: 'card', 'aria-labelledby': 'ms-h' }, h('h2', { id: 'ms-h' }, `Model ${m.version} (#${m.id})`),
        h('dl', { class: 'kv' }, [['Status', badge(m.status)], ['Deployed', m.deployed ? `yes, ${dateTime(m.deployed_at)} by ${m.deployed_by || '?'}` : 'no'],
          ['Trained', `${dateTime(m.trained_at)} by ${m.trained_by || 'the scheduler'} in ${num(m.duration_ms)} ms`],
          ['Window', m.window ? `${m.window.start} – ${m.window.end} (${m.window.days} days)` : '–'], ['Samples', num(m.samples)],
          ['Trees / subsample', m.params ? `${m.params.trees} / ${m.params.subsample}` : '–'],
          ['Threshold', m.params ? fmt(m.params.threshold) : '–'], ['Error', m.error || '–'],
          ['Scoring runs', num(s.runs)], ['Sources scored', num(s.scored)], ['Anomalies', num(s.anomalies)], ['Last run', dateTime(s.last_detected_at)]]
          .map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        hist.length ? h('figure', { class: 'chart' }, h('figcaption', {}, 'Scores of the latest run (s from 0 to 1)'), h('div', { class: 'chart-box' }, canvas)) : null,
        (m.feature_stats || []).length ? table('Features at training', [
          { label: 'Feature', th: true, cell: (x) => x.name },
          { label: 'Min', cell: (x) => fmt(x.min) }, { label: 'Mean', cell: (x) => fmt(x.mean) },
          { label: 'Max', cell: (x) => fmt(x.max) }, { label: 'Std dev', cell: (x) => fmt(x.stddev) },
        ], m.feature_stats) : null));
      if (hist.length) {
        draw(canvas, { type: 'bar', data: { labels: hist.map((_, i) => (i / hist.length).toFixed(2)),
          datasets: [{ label: 'Sources', data: hist, backgroundColor: colours().accent }] }, options: { scales: { y: { beginAtZero: true } } } });
      }
    } catch (e) {
      clear(statsEl, errorBox(e));
    }
  };
  const load = async () => {
    try {
      const l = await get('/analytics/ml/models', { page_size: 50 });
      clear(listEl, l.items.length === 0 ? empty('No model yet: the first is trained by the weekly job or the first scoring.') : table('Models', [
        { label: 'Version', th: true, cell: (m) => h('a', { href: `#/insights/models?model=${m.id}` }, `v${m.version} (#${m.id})`) },
        { label: 'Status', cell: (m) => badge(m.status, { ready: 'Trained, may be deployed', training: 'Being trained', failed: 'Training failed' }[m.status]) },
        { label: 'Deployed', cell: (m) => (m.deployed ? badge('deployed', 'Scores the senders') : '–') },
        { label: 'Trained', cell: (m) => dateTime(m.trained_at) },
        { label: 'Samples', cell: (m) => num(m.samples) },
        admin ? { label: 'Actions', cell: (m) => (m.status === 'ready' && !m.deployed
          ? h('button', { type: 'button', class: 'small', 'aria-label': `Deploy model ${m.version}`, onclick: async () => {
            try { await post('/analytics/ml/deploy', { model_id: m.id }); notice(`Model ${m.version} deployed.`); load(); } catch (e) { err(e); }
          } }, 'Deploy') : '–') } : null,
      ].filter(Boolean), l.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const days = h('input', { name: 'days', type: 'number', min: '30', max: '365', step: '1', placeholder: '90', id: 'ml-train-days' });
  const train = admin ? h('form', { class: 'card form', 'aria-label': 'Train a model', onsubmit: async (e) => {
    e.preventDefault();
    try {
      const t = await post('/analytics/ml/train', days.value ? { days: Number(days.value) } : {});
      notice(`Training queued (task ${t.task_id}). A new model waits for you to deploy it.`);
      setTimeout(load, 3000);
    } catch (ex) { err(ex); }
  } }, h('h2', {}, 'Train a model'), field('Days of history', days, '30–365; empty: the configured default'),
  h('div', { class: 'actions' }, h('button', { type: 'submit' }, 'Train'))) : null;
  clear(main, h('h1', {}, 'Models'), subnav('insights/models'), listEl, statsEl, train);
  await load();
  if (shown) await stats(shown);
  main.dataset.state = 'ready';
}

/** domain: a domain's failure-rate forecast (with its 95 % band) and the policy advice. */
export async function domain(main, params, { go }) {
  const d = params.get('domain') || '';
  const domains = await get('/api/domains', { page_size: 500 }).then((x) => x.items.map((i) => i.domain)).catch(() => []);
  const sel = select('domain', [['', 'Choose a domain'], ...domains.map((x) => [x, x])], d);
  sel.addEventListener('change', () => go('insights/domain', { domain: sel.value }));
  const body = h('div', {});
  clear(main, h('h1', {}, 'Forecast and advice'), subnav('insights/domain'),
    h('form', { class: 'filters card', 'aria-label': 'Domain', onsubmit: (e) => { e.preventDefault(); go('insights/domain', { domain: sel.value }); } },
      h('div', { class: 'filter-row' }, field('Domain', sel), h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Show')))), body);
  if (!d) {
    clear(body, empty(domains.length ? 'Choose a domain to see its forecast and where its policy can go next.' : 'No domains yet: upload reports or connect a mailbox.'));
    main.dataset.state = 'ready';
    return;
  }
  const fcEl = h('section', { 'aria-labelledby': 'fc-h', 'aria-busy': 'true' }, h('h2', { id: 'fc-h' }, 'DMARC failure rate: history and forecast'), loading());
  const adEl = h('section', { 'aria-labelledby': 'ad-h', 'aria-busy': 'true' }, h('h2', { id: 'ad-h' }, 'Policy advice'), loading());
  clear(body, fcEl, adEl);
  await Promise.all([forecast(fcEl, d), advice(adEl, d)]);
  main.dataset.state = 'ready';
}

async function forecast(el, d) {
  let f;
  try {
    f = await get('/analytics/forecast', { domain: d });
  } catch (e) {
    clear(el, h('h2', { id: 'fc-h' }, 'DMARC failure rate: history and forecast'), errorBox(e));
    return;
  }
  el.removeAttribute('aria-busy');
  const s = f.failure_rate;
  const hist = s.history || [];
  const pts = s.points || [];
  const labels = [...hist.map((x) => x.date), ...pts.map((x) => x.date)];
  const pad = (n) => Array(n).fill(null);
  const p100 = (v) => (v == null ? null : +(v * 100).toFixed(2));
  const c = colours();
  const canvas = h('canvas', { id: 'chart-forecast', role: 'img',
    'aria-label': `Failure rate over ${hist.length} days and forecast for ${pts.length} days; ${pts.length ? `last forecast ${p100(pts[pts.length - 1].value)} % (95 % between ${p100(pts[pts.length - 1].lower)} and ${p100(pts[pts.length - 1].upper)} %)` : 'no forecast'}.` });
  clear(el, h('h2', { id: 'fc-h' }, 'DMARC failure rate: history and forecast'),
    h('p', { class: 'muted' }, `${s.method.replaceAll('_', ' ')}${s.note ? ': ' + s.note : ''}. History ${f.history_start} – ${f.history_end}; shaded: the 95 % prediction interval.`),
    h('figure', { class: 'chart card wide' }, h('figcaption', {}, `Failure rate of ${d} (%)`), h('div', { class: 'chart-box' }, canvas)));
  draw(canvas, { type: 'line', data: { labels, datasets: [
    { label: 'Observed %', data: [...hist.map((x) => p100(x.value)), ...pad(pts.length)], borderColor: c.fail, backgroundColor: c.fail, pointRadius: 0, borderWidth: 1 },
    { label: 'Forecast %', data: [...pad(hist.length), ...pts.map((x) => p100(x.value))], borderColor: c.accent, backgroundColor: c.accent, pointRadius: 0, borderWidth: 2, borderDash: [6, 3] },
    { label: '95 % upper', data: [...pad(hist.length), ...pts.map((x) => p100(x.upper))], borderColor: 'transparent', backgroundColor: c.grid, pointRadius: 0, fill: '+1' },
    { label: '95 % lower', data: [...pad(hist.length), ...pts.map((x) => p100(x.lower))], borderColor: 'transparent', backgroundColor: c.grid, pointRadius: 0, fill: false },
  ] }, options: { spanGaps: true, scales: { y: { beginAtZero: true, suggestedMax: 100 }, x: { ticks: { maxTicksLimit: 10, maxRotation: 0 } } } } });
}

const STAGE_TIP = { collect_data: 'Not enough mail yet to judge', fix_senders: 'Legitimate senders fail DMARC: fix them before tightening', ready: 'Safe to take the next step', at_target: 'p=reject at 100 %: done' };

async function advice(el, d) {
  let a;
  try {
    a = await get('/analytics/policy-advice', { domain: d });
  } catch (e) {
    clear(el, h('h2', { id: 'ad-h' }, 'Policy advice'), errorBox(e));
    return;
  }
  el.removeAttribute('aria-busy');
  const step = (s) => (s ? `p=${s.policy}${s.pct != null && s.pct !== 100 ? ` pct=${s.pct}` : ''}` : '–');
  clear(el, h('h2', { id: 'ad-h' }, 'Policy advice'),
    h('div', { class: 'card advice-card' },
      h('dl', { class: 'kv' }, [['Stage', h('span', { class: `badge badge-${a.stage === 'ready' || a.stage === 'at_target' ? 'ok' : a.stage === 'fix_senders' ? 'bad' : 'neutral'}`, title: STAGE_TIP[a.stage] || '', id: 'advice-stage' }, a.stage)],
        ['Now', step(a.current)], ['Next step', step(a.next)],
        ['Record to publish', a.record ? h('code', { class: 'wrap', id: 'advice-record' }, a.record) : '–'],
        ['Legitimate mail aligned', a.aligned_share == null ? '–' : `${pct(a.aligned_share)} of ${num(a.legitimate_messages)} (needs ${pct(a.required_aligned_share)})`],
        ['Unauthenticated messages', num(a.unauthenticated_messages)]].map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
      (a.reasons || []).length ? h('ul', { class: 'reasons' }, a.reasons.map((r) => h('li', {}, r))) : null),
    (a.hurt_senders || []).length === 0 ? null : [h('h3', {}, 'Senders to fix first'), table('Senders to fix', [
      { label: 'Sender', th: true, cell: (s) => h('span', { class: 'sender-name' }, s.sender) },
      { label: 'Known service', cell: (s) => (s.known ? 'yes' : 'no') },
      { label: 'Messages', cell: (s) => num(s.messages) },
      { label: 'Failing', cell: (s) => num(s.failing_messages) },
      { label: 'DKIM aligned', cell: (s) => pct(s.dkim_aligned_rate) },
      { label: 'SPF aligned', cell: (s) => pct(s.spf_aligned_rate) },
      { label: 'Fix', cell: (s) => h('span', { class: 'wrap' }, s.fix) },
    ], a.hurt_senders)]);
}
