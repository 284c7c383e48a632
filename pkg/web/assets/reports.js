// Reports: the list (paged and sorted by the API: the column buttons ask for sort=) and a
// report's detail with its policy and every record with all DKIM and SPF results, and for
// admins the raw file download.
import { h, clear, num, date, dateTime, field, select, table, pager, badge, errorBox, empty, loading, notice } from './dom.js';
import { get, download } from './api.js';
import { filtersOf } from './overview.js';
import { exportBar } from './exports.js';

const PAGE_SIZES = [25, 50, 100, 200];

// The sort keys GET /api/reports accepts (its allow-list).
const SORTS = ['date_begin', 'org_name', 'domain', 'messages'];

export async function render(main, params, { go }) {
  const f = filtersOf(params);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const size = PAGE_SIZES.includes(Number(params.get('page_size'))) ? Number(params.get('page_size')) : 50;
  const sort = SORTS.includes(params.get('sort')) ? params.get('sort') : 'date_begin';
  const dir = params.get('dir') === 'asc' ? 'asc' : 'desc';
  const nav = (over) => go('reports', { ...f, page, page_size: size, sort, dir, ...over });

  const domain = h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' });
  const org = h('input', { name: 'org_name', value: f.org_name || '', placeholder: 'google.com' });
  const days = select('days', [['', 'All time'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']], f.days);
  const sizeSel = select('page_size', PAGE_SIZES.map((n) => [n, `${n} per page`]), size);
  sizeSel.addEventListener('change', () => nav({ page: 1, page_size: sizeSel.value }));
  const form = h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => {
    e.preventDefault();
    const { domain: _d, org_name: _o, days: _y, ...rest } = f;
    go('reports', { ...rest, domain: domain.value.trim(), org_name: org.value.trim(), days: days.value, page_size: size, sort, dir });
  } }, h('div', { class: 'filter-row' }, field('Domain', domain), field('Reporting organisation', org), field('Period', days),
    field('Page size', sizeSel), h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'))));
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading reports…'));
  clear(main, h('h1', {}, 'Reports'), form, exportBar(['reports-csv', 'reports-xlsx', 'records-csv', 'records-xlsx'], f), body);

  let list;
  try {
    list = await get('/api/reports', { ...f, page, page_size: size, sort: (dir === 'desc' ? '-' : '') + sort });
  } catch (e) {
    clear(body, errorBox(e));
    return;
  }
  body.removeAttribute('aria-busy');
  if (list.total === 0) {
    clear(body, Object.keys(f).length
      ? empty('No report matches these filters.')
      : empty('No reports yet: upload or connect a mailbox.', h('p', {}, h('a', { href: '#/upload' }, 'Upload reports'))));
    main.dataset.state = 'ready';
    return;
  }
  const rows = list.items;
  clear(body,
    table('Reports', [
      { label: 'Period', sort: 'date_begin', th: true, cell: (r) => h('a', { href: `#/report/${r.id}` }, `${date(r.date_begin)} – ${date(r.date_end)}`) },
      { label: 'Reporter', sort: 'org_name', cell: (r) => r.org_name },
      { label: 'Domain', sort: 'domain', cell: (r) => r.domain },
      { label: 'Policy', cell: (r) => badge('p=' + (r.policy?.p || '?'), 'The published policy for the domain when the report was made') },
      { label: 'Messages', sort: 'messages', cell: (r) => num(r.message_count) },
      { label: 'Records', cell: (r) => num(r.record_count) },
      { label: 'Report ID', cell: (r) => h('span', { class: 'mono' }, r.report_id) },
    ], rows, { sort, dir, onSort: (s, d) => nav({ sort: s, dir: d }) }),
    pager(page, size, list.total, (p) => nav({ page: p })));
  main.dataset.state = 'ready';
}

const RECORD_PAGE = 100;

/** detail shows one report: metadata, policy, warnings and its records, page by page. */
export async function detail(main, params, { arg, go, can }) {
  const id = Number(arg);
  const rpage = Math.max(1, Number(params.get('page')) || 1);
  const r = await get(`/api/reports/${id}`);
  const recs = await get(`/api/reports/${id}/records`, { page: rpage, page_size: RECORD_PAGE });
  const p = r.policy || {};
  const dl = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v, tip]) => [h('dt', { title: tip }, k), h('dd', {}, v ?? '–')]));
  const pol = (v) => (v === null || v === undefined || v === '' ? '–' : String(v));
  clear(main,
    h('p', {}, h('a', { href: '#/reports' }, '‹ All reports')),
    h('h1', {}, `Report from ${r.org_name || '?'} for ${r.domain}`),
    h('div', { class: 'detail-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'rep-h' }, h('h2', { id: 'rep-h' }, 'Report'),
        dl([['Reporter', r.org_name], ['Contact', r.email], ['Extra contact', r.extra_contact_info], ['Report ID', r.report_id],
          ['Period', `${dateTime(r.date_begin)} – ${dateTime(r.date_end)}`], ['Messages', num(r.message_count)], ['Records', num(r.record_count)],
          ['Version', r.version], ['Generator', r.generator], ['File', r.ingest_id != null ? fileCell(r.ingest_id, can) : null]])),
      h('section', { class: 'card', 'aria-labelledby': 'pol-h' }, h('h2', { id: 'pol-h' }, 'Published policy'),
        dl([['p', pol(p.p), 'Policy for the domain'], ['sp', pol(p.sp), 'Policy for subdomains'], ['np', pol(p.np), 'Policy for non-existent subdomains'],
          ['pct', p.pct == null ? 'absent (100)' : String(p.pct), 'Share of failing mail the policy applies to'],
          ['adkim', pol(p.adkim), 'DKIM alignment: r relaxed, s strict'], ['aspf', pol(p.aspf), 'SPF alignment: r relaxed, s strict'],
          ['fo', pol(p.fo), 'Failure reporting options'], ['testing', pol(p.testing), 'y: the policy is being tested, not applied'],
          ['discovery', pol(p.discovery_method), 'How the receiver found the policy (RFC 9990)']]))),
    (r.warnings && r.warnings.length) || (r.errors && r.errors.length)
      ? h('section', { class: 'card warn-box', 'aria-labelledby': 'warn-h' }, h('h2', { id: 'warn-h' }, 'Warnings'),
        h('ul', {}, [...(r.warnings || []), ...(r.errors || [])].map((w) => h('li', {}, typeof w === 'string' ? w : JSON.stringify(w)))))
      : null,
    h('h2', {}, 'Records'),
    recs.total === 0 ? null : exportBar(['records-csv', 'records-xlsx'], { report: id },
      { what: 'Export the records of this report', tip: `of every record of this report (${num(recs.total)})` }),
    recs.total === 0 ? empty('This report has no records.') : records(recs.items),
    recs.total > RECORD_PAGE ? pager(rpage, RECORD_PAGE, recs.total, (n) => go(`report/${id}`, { page: n })) : null);
  main.dataset.state = 'ready';
}

function results(list, kind) {
  if (!list || !list.length) return '–';
  return h('ul', { class: 'results' }, list.map((x) => h('li', {},
    badge(x.result, `${kind} result`), ' ', x.domain || '?',
    kind === 'DKIM' && x.selector ? h('span', { class: 'muted' }, ` (s=${x.selector})`) : null,
    kind === 'SPF' && x.scope ? h('span', { class: 'muted' }, ` (${x.scope})`) : null,
    x.human_result ? h('span', { class: 'muted' }, ` “${x.human_result}”`) : null)));
}

function records(items) {
  return table('Records', [
    { label: 'Source IP', th: true, cell: (x) => h('span', { class: 'mono' }, x.source_ip) },
    { label: 'Count', cell: (x) => num(x.count) },
    { label: 'Disposition', cell: (x) => badge(x.disposition, 'What the receiver did with these messages') },
    { label: 'DKIM', cell: (x) => badge(x.dkim, 'Policy-evaluated DKIM: passed and aligned?') },
    { label: 'SPF', cell: (x) => badge(x.spf, 'Policy-evaluated SPF: passed and aligned?') },
    { label: 'Header from', cell: (x) => x.header_from },
    { label: 'Envelope from', cell: (x) => x.envelope_from || '–' },
    { label: 'Envelope to', cell: (x) => x.envelope_to || '–' },
    { label: 'DKIM results', cell: (x) => results(x.dkim_results, 'DKIM') },
    { label: 'SPF results', cell: (x) => results(x.spf_results, 'SPF') },
    { label: 'Overrides', cell: (x) => (x.reasons && x.reasons.length ? h('ul', { class: 'results' }, x.reasons.map((o) => h('li', {}, o.type, o.comment ? `: ${o.comment}` : ''))) : '–') },
  ], items);
}

// fileCell names the received file; admins get its original bytes as a download (the API
// serves it as an attachment; the bearer token goes in a header, never in a URL).
function fileCell(id, can) {
  if (!can('admin')) return `ingest ${id}`;
  return [`ingest ${id} `, h('button', { type: 'button', class: 'small secondary', id: 'raw-download', onclick: async (e) => {
    e.target.disabled = true;
    try { await download(`/api/ingests/${id}/raw`, `ingest-${id}`); } catch (ex) { notice(ex.detail || ex.message, 'error'); } finally { e.target.disabled = false; }
  } }, 'Download the raw file')];
}
