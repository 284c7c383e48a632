// Exports and digests. Export buttons (CSV, Excel, PDF) sit on the overview, reports and
// senders views and carry the view's current filters. A small export comes back at once and is
// saved; a large one answers 202 with a task, which this module follows (/tasks/status/{id})
// until its download_url is ready, from any page: the Exports page lists them, and a notice
// offers the file when done. Digests: the user's weekly or monthly mailed summaries.
import { h, clear, num, dateTime, field, select, table, badge, errorBox, empty, notice, confirmDialog, loading } from './dom.js';
import { get, post, del, query, fetchAuthed, problemOf, save, download, session } from './api.js';
import { form, val } from './admin.js';

// What each button exports: path, label, fallback file name.
const KINDS = {
  'reports-csv': ['/api/export/reports/csv', 'Reports (CSV)', 'reports.csv'],
  'reports-xlsx': ['/api/export/reports/xlsx', 'Reports (Excel)', 'reports.xlsx'],
  'records-csv': ['/api/export/records/csv', 'Records (CSV)', 'records.csv'],
  'records-xlsx': ['/api/export/records/xlsx', 'Records (Excel)', 'records.xlsx'],
  'sources-csv': ['/api/export/sources/csv', 'Sources (CSV)', 'sources.csv'],
  'sources-xlsx': ['/api/export/sources/xlsx', 'Sources (Excel)', 'sources.xlsx'],
  workbook: ['/api/export/workbook/xlsx', 'Workbook (Excel)', 'workbook.xlsx'],
  pdf: ['/api/export/report/pdf', 'PDF summary', 'summary.pdf'],
};
// The filters export endpoints take (apiparams.FilterNames): anything else the page's URL
// carries (page, sort) would be a 400.
const FILTERS = ['domain', 'org_name', 'days', 'start', 'end', 'source_ip', 'source_ip_range', 'dkim_result', 'spf_result', 'disposition', 'sender', 'country', 'asn'];
const POLL_MS = 1500;
const KEY = 'vigil.exports';

// tracked: the large exports started in this tab (kept in sessionStorage across reloads, the
// tab's like the refresh token; the files stay the user's on the server either way).
const tracked = JSON.parse(sessionStorage.getItem(KEY) || '[]');
const listeners = new Set();
const persist = () => {
  sessionStorage.setItem(KEY, JSON.stringify(tracked.slice(-20)));
  for (const fn of listeners) fn();
};

function onlyFilters(f, kind) {
  const out = {};
  // report (one report's records) is a parameter of the records exports only.
  for (const k of kind.startsWith('records') ? ['report', ...FILTERS] : FILTERS) if (f && f[k]) out[k] = f[k];
  return out;
}

/** startExport asks for one export; saves it at once, or tracks its task when it is large. */
export async function startExport(kind, filters) {
  const [path, label, fallback] = KINDS[kind];
  const f = onlyFilters(filters, kind);
  const resp = await fetchAuthed(path + query(f));
  if (resp.status === 202) {
    const t = await resp.json();
    const item = { task_id: t.task_id, export_id: t.export_id, kind, label, filters: f, rows: t.rows, started: new Date().toISOString(), state: 'pending' };
    tracked.push(item);
    persist();
    notice(`${label}: ${num(t.rows)} rows, more than ${num(t.row_limit)}: it is being prepared. It will be offered here and on the Exports page.`);
    follow(item);
    return item;
  }
  if (!resp.ok) throw await problemOf(resp);
  const name = await save(resp, fallback);
  notice(`${name} saved.`);
  return { state: 'saved', name };
}

// follow polls a tracked export's task until it is done (or gone), then offers the file.
async function follow(item) {
  if (item.following || item.state === 'completed' || item.state === 'failed') return;
  item.following = true;
  while (session.me) {
    let t;
    try {
      t = await get(`/tasks/status/${encodeURIComponent(item.task_id)}`);
    } catch (e) {
      if (e.status === 404) { item.state = 'failed'; item.error = 'The export is no longer kept (past its retention).'; break; }
      await new Promise((r) => setTimeout(r, POLL_MS * 4)); // a network blip: try again, slower
      continue;
    }
    item.state = t.state;
    if (t.state === 'completed' && t.result && t.result.download_url) {
      item.result = t.result;
      break;
    }
    if (t.state === 'archived') { item.state = 'failed'; item.error = t.last_error || 'The export failed.'; break; }
    if (t.last_error) item.error = t.last_error;
    persist();
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  item.following = false;
  persist();
  if (item.result) {
    const btn = h('button', { type: 'button', class: 'small notice-action', onclick: () => fetchFile(item) }, 'Download');
    notice([`${item.label} is ready (${num(item.result.rows)} rows). `, btn]);
  } else if (item.state === 'failed') {
    notice(`${item.label}: ${item.error}`, 'error');
  }
}

async function fetchFile(item) {
  try {
    const name = await download(item.result.download_url, item.result.filename || KINDS[item.kind][2]);
    notice(`${name} saved.`);
  } catch (e) {
    notice(e.detail || e.message, 'error');
  }
}

/** forgetExports drops the tab's list on logout: the next user of the tab must not see it. */
export function forgetExports() {
  tracked.length = 0;
  sessionStorage.removeItem(KEY);
  for (const fn of listeners) fn();
}

// Resume following what a reload interrupted.
export function resumeExports() {
  for (const it of tracked) if (it.state !== 'completed' && it.state !== 'failed') { it.following = false; follow(it); }
}

/**
 * exportBar is a row of export buttons for a view: kinds are keys of KINDS; filters are the
 * view's current filters (only the export filters are sent).
 */
export function exportBar(kinds, filters, { what = 'Export this view', tip = 'with the filters shown' } = {}) {
  return h('div', { class: 'export-bar', role: 'group', 'aria-label': what },
    h('span', { class: 'muted' }, 'Export:'),
    kinds.map((k) => h('button', { type: 'button', class: 'secondary small', dataset: { export: k },
      title: `Download ${KINDS[k][1]} ${tip}`, onclick: async (e) => {
        const b = e.currentTarget;
        b.disabled = true;
        b.setAttribute('aria-busy', 'true');
        try { await startExport(k, filters); } catch (ex) { notice(ex.detail || ex.message, 'error'); } finally {
          b.disabled = false;
          b.removeAttribute('aria-busy');
        }
      } }, KINDS[k][1])));
}

/** subnav links the export pages. */
function subnav(current) {
  return h('nav', { class: 'subnav', 'aria-label': 'Export pages' }, [['exports', 'Exports'], ['exports/digests', 'Digests']].map(([p, l]) =>
    h('a', { href: '#/' + p, 'aria-current': p === current ? 'page' : undefined }, l)));
}

const STATE_TIP = { pending: 'Waiting for a worker', active: 'Being rendered', completed: 'Ready to download', retry: 'Failed once, will be retried', failed: 'Failed', scheduled: 'Waiting' };

/** page: the large exports of this tab with their state, and a form for any export. */
export async function page(main) {
  const listEl = h('div', { id: 'exports-list' });
  const draw = () => {
    clear(listEl, tracked.length === 0
      ? empty('No large exports in this tab yet. Small exports download at once; larger ones are prepared in the background and listed here.')
      : table('Large exports', [
        { label: 'Started', th: true, cell: (x) => dateTime(x.started) },
        { label: 'What', cell: (x) => x.label },
        { label: 'Filters', cell: (x) => Object.entries(x.filters || {}).map(([k, v]) => `${k}=${v}`).join(', ') || 'none' },
        { label: 'Rows', cell: (x) => num(x.result ? x.result.rows : x.rows) },
        { label: 'State', cell: (x) => h('span', { class: `badge badge-${x.state === 'completed' ? 'ok' : x.state === 'failed' ? 'bad' : 'warn'}`, title: STATE_TIP[x.state] || x.state, dataset: { state: x.state } }, x.state) },
        { label: 'File', cell: (x) => (x.result
          ? h('button', { type: 'button', class: 'small', 'aria-label': `Download ${x.label}`, onclick: () => fetchFile(x) }, 'Download')
          : x.error || '–') },
        { label: 'Kept until', cell: (x) => (x.result ? dateTime(x.result.expires_at) : '–') },
      ], [...tracked].reverse()));
  };
  listeners.add(draw);
  draw();
  const kinds = Object.entries(KINDS).map(([k, [, l]]) => [k, l]);
  const start = form('Export', [
    field('What', select('kind', kinds, 'reports-csv')),
    field('Domain', h('input', { name: 'domain', placeholder: 'all domains' })),
    field('Period', select('days', [['', 'All time'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']], '')),
  ], 'Export', async (f) => {
    await startExport(val(f, 'kind'), { domain: val(f, 'domain'), days: val(f, 'days') });
  });
  clear(main, h('h1', {}, 'Exports'), subnav('exports'),
    h('p', { class: 'muted' }, 'Every list can also be exported from its page, with the filters shown there. Files of large exports are kept for a day.'),
    start, h('h2', {}, 'Large exports'), listEl);
  main.dataset.state = 'ready';
  return () => listeners.delete(draw);
}

/** digests: the user's subscriptions (an admin sees everyone's); subscribe and unsubscribe. */
export async function digests(main, params, { can }) {
  const admin = can('admin');
  const listEl = h('div', {}, loading());
  const load = async () => {
    try {
      const l = await get('/api/digests');
      clear(listEl, l.items.length === 0 ? empty('No digests: subscribe to get a summary by e-mail every week or month.') : table('Digests', [
        { label: 'Frequency', th: true, cell: (d) => d.frequency },
        { label: 'Domains', cell: (d) => (d.domains && d.domains.length ? d.domains.join(', ') : 'all domains') },
        { label: 'Attachments', cell: (d) => (d.formats || []).map((x) => x.toUpperCase()).join(', ') },
        { label: 'To', cell: (d) => d.email },
        { label: 'Next', cell: (d) => `${dateTime(d.next_period_start)} – ${dateTime(d.next_period_end)}` },
        { label: 'State', cell: (d) => badge(d.enabled ? 'enabled' : 'disabled') },
        { label: 'Actions', cell: (d) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Unsubscribe the ${d.frequency} digest to ${d.email}`, onclick: async () => {
          if (!(await confirmDialog(`Stop the ${d.frequency} digest to ${d.email}?`, 'Unsubscribe'))) return;
          try { await del(`/api/digests/${d.id}`); notice('Unsubscribed.'); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
        } }, 'Unsubscribe') },
      ], l.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const add = form('Subscribe', [
    field('Frequency', select('frequency', [['weekly', 'weekly (Monday, the previous week)'], ['monthly', 'monthly (the previous month)']], 'weekly')),
    field('Domains', h('input', { name: 'domains', placeholder: 'all domains' }), 'Comma-separated, at most 20; empty: all'),
    h('fieldset', { class: 'field' }, h('legend', {}, 'Attach'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'format', value: 'pdf', checked: true }), ' PDF summary'),
      h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'format', value: 'xlsx' }), ' Excel workbook')),
    admin ? field('Send to', h('input', { name: 'email', type: 'email', placeholder: session.me.email }), 'Admins may subscribe another address; empty: yours')
      : h('p', { class: 'muted' }, `Sent to your address, ${session.me.email}.`),
  ], 'Subscribe', async (f) => {
    const body = { frequency: val(f, 'frequency'),
      domains: val(f, 'domains').split(',').map((s) => s.trim()).filter(Boolean),
      formats: [...f.querySelectorAll('input[name=format]:checked')].map((c) => c.value) };
    if (admin && val(f, 'email')) body.email = val(f, 'email');
    if (body.formats.length === 0) throw new Error('Choose at least one attachment.');
    const d = await post('/api/digests', body);
    f.reset();
    notice(`Subscribed: ${d.frequency} digest to ${d.email}.`);
    load();
  });
  clear(main, h('h1', {}, 'Digests'), subnav('exports/digests'), listEl, add);
  await load();
  main.dataset.state = 'ready';
}
