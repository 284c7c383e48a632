// Upload: drop or pick many files; each shows its progress while sent, then its status as the
// workers process it (polling GET /api/ingests/{id}): processed, duplicate, or failed with the
// reason, and what it held: "DMARC aggregate ×N, TLS ×M, failure ×K" with links to each report.
// Files go in batches of one request each, which is what the upload rate limit counts. The
// Files page lists every received file (uploads, imports, mailbox messages) the same way.
import { h, clear, badge, notice, num, dateTime, select, field, table, pager, errorBox, empty, loading } from './dom.js';
import { upload, get } from './api.js';

const BATCH = 50;
const POLL_MS = 1000;

export function render(main) {
  const input = h('input', { type: 'file', multiple: true, id: 'upload-input', class: 'sr-only' });
  const list = h('ul', { class: 'uploads', 'aria-label': 'Uploaded files', 'aria-live': 'polite' });
  const zone = h('div', { class: 'dropzone', tabindex: '0', role: 'button', 'aria-describedby': 'drop-hint' },
    h('p', {}, h('strong', {}, 'Drop report files here'), ' or ', h('label', { for: 'upload-input', class: 'link' }, 'choose files')),
    h('p', { id: 'drop-hint', class: 'muted' }, 'XML, gzip, zip or whole e-mails (.eml), many at once.'));
  let stopped = false;
  const start = (files) => { if (files.length) send([...files], list, () => stopped); };
  input.addEventListener('change', () => { start(input.files); input.value = ''; });
  zone.addEventListener('click', (e) => { if (e.target.tagName !== 'LABEL') input.click(); });
  zone.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (e) => { e.preventDefault(); zone.classList.remove('over'); start(e.dataTransfer.files); });
  clear(main, h('h1', {}, 'Upload reports'), zone, input, list, h('p', {}, h('a', { href: '#/files' }, 'Every received file, with the reports it held ›')));
  main.dataset.state = 'ready';
  return () => { stopped = true; };
}

function row(file) {
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload of ${file.name}` });
  const status = h('span', { class: 'status' }, badge('sending', 'Being sent to the server'));
  const detail = h('span', { class: 'muted detail' });
  const li = h('li', { class: 'upload', dataset: { status: 'sending' } }, h('span', { class: 'name' }, file.name), h('span', { class: 'muted' }, num(file.size) + ' B'), bar, status, detail);
  return { li, bar, status, detail, set(state, tip, msg) { clear(status, badge(state, tip)); clear(detail, msg || ''); li.dataset.status = state; } };
}

async function send(files, list, stopped) {
  for (let i = 0; i < files.length; i += BATCH) {
    const batch = files.slice(i, i + BATCH);
    const rows = batch.map(row);
    for (const r of rows) list.appendChild(r.li);
    let ans;
    try {
      ans = await upload(batch, (ps) => ps.forEach((p, j) => { rows[j].bar.value = Math.round(p * 100); }));
    } catch (e) {
      rows.forEach((r) => r.set('failed', 'The upload did not complete', e.detail || e.message));
      notice(e.detail || e.message, 'error');
      continue;
    }
    const pending = [];
    ans.files.forEach((f, j) => {
      const r = rows[j];
      r.bar.value = 100;
      if (f.status === 'rejected') r.set('rejected', 'The server refused this file', f.error);
      else if (f.status === 'duplicate') r.set('duplicate', 'The same file was received before', f.error);
      else { r.set('pending', 'Waiting for a worker to parse it', 'processing…'); pending.push([f.ingest_id, r]); }
    });
    poll(pending, stopped);
  }
}

// poll asks for each pending file's state until none is pending: after 1 s, then less and less
// often (up to every 10 s), since a big upload's files each cost a request per round. A 429 or
// a server that does not answer leaves the files pending and waits; only an answer that the
// file is unknown ends one as failed.
async function poll(pending, stopped) {
  let delay = POLL_MS;
  while (pending.length && !stopped()) {
    await new Promise((res) => setTimeout(res, delay));
    delay = Math.min(delay * 1.5, 10000);
    for (let k = pending.length - 1; k >= 0; k--) {
      const [id, r] = pending[k];
      let ing;
      try {
        ing = await get(`/api/ingests/${id}`);
      } catch (e) {
        if (e.status === 429 || e.status === 0 || e.status >= 500) {
          r.detail.textContent = `processing… (status not available: ${e.detail || e.message})`;
          delay = Math.max(delay, (e.retryAfter || 5) * 1000);
          break;
        }
        r.set('failed', 'Its state could not be read', e.detail || e.message);
        pending.splice(k, 1);
        continue;
      }
      if (ing.status === 'pending') continue;
      if (ing.status === 'processed') r.set('processed', 'Parsed and stored', [kindsOf(ing) || 'no reports', ing.error ? ` (${ing.error})` : '']);
      else if (ing.status === 'duplicate') r.set('duplicate', 'Every report in it was already stored', [kindsOf(ing), kindsOf(ing) ? ': ' : '', ing.error || 'already stored']);
      else r.set('failed', 'The file could not be read as a report', ing.error);
      pending.splice(k, 1);
    }
  }
}

// KINDS are the report kinds a file may hold: the ingest's id list, the label, the detail page.
const KINDS = [['report_ids', 'DMARC aggregate', 'report'], ['tls_report_ids', 'TLS', 'tls-report'], ['failure_report_ids', 'failure', 'failure']];
const LINKS = 10; // links shown per kind; a zip of 11,000 reports names the count and the first ten

/**
 * kindsOf names the reports a file held by kind, "DMARC aggregate ×2 (#4 #5), TLS ×1 (#9)",
 * each id a link to its report (null: none). A TLS or failure report repeated from an earlier
 * file is not listed (the earlier file holds it); aggregate reports are, new and repeated.
 */
export function kindsOf(ing) {
  const parts = KINDS.filter(([key]) => (ing[key] || []).length);
  if (!parts.length) return null;
  return h('span', { class: 'kinds' }, parts.map(([key, label, path], i) => {
    const ids = ing[key];
    return [i ? ', ' : '', h('span', { class: 'kind', dataset: { kind: path } }, `${label} ×${ids.length}`, ' (',
      ids.slice(0, LINKS).map((id, j) => [j ? ' ' : '', h('a', { href: `#/${path}/${id}`, 'aria-label': `${label} report ${id}` }, `#${id}`)]),
      ids.length > LINKS ? ` and ${num(ids.length - LINKS)} more` : '', ')')];
  }));
}

const STATUS_TIP = { pending: 'Waiting for a worker to parse it', processed: 'Parsed and stored', duplicate: 'The same file, or every report in it, was already stored', failed: 'The file could not be read as a report' };
const FILE_PAGE = 50;

/** files: every received file, newest first, with its status and the reports it held. */
export async function files(main, params, { go }) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const f = {};
  for (const k of ['status', 'source', 'days']) if (params.get(k)) f[k] = params.get(k);
  const status = select('status', [['', 'Any status'], ...Object.keys(STATUS_TIP).map((s) => [s, s])], f.status);
  const source = select('source', [['', 'Any source'], ['upload', 'upload'], ['import', 'import'], ['imap', 'mailbox']], f.source);
  const days = select('days', [['', 'All time'], ['1', 'Last day'], ['7', 'Last 7 days'], ['30', 'Last 30 days']], f.days);
  const apply = () => go('files', { status: status.value, source: source.value, days: days.value });
  for (const s of [status, source, days]) s.addEventListener('change', apply);
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading files…'));
  clear(main, h('h1', {}, 'Received files'),
    h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
      h('div', { class: 'filter-row' }, field('Status', status), field('Source', source), field('Received', days))),
    body);
  let l;
  try {
    l = await get('/api/ingests', { ...f, page, page_size: FILE_PAGE });
  } catch (e) {
    clear(body, errorBox(e));
    main.dataset.state = 'ready';
    return;
  }
  body.removeAttribute('aria-busy');
  clear(body, l.total === 0
    ? empty(Object.keys(f).length ? 'No file matches these filters.' : 'No files yet: upload reports or connect a mailbox.')
    : [table('Received files', [
      { label: 'Received', th: true, cell: (x) => dateTime(x.received_at) },
      { label: 'File', cell: (x) => h('span', { class: 'file-name' }, x.filename || `file ${x.id}`) },
      { label: 'Source', cell: (x) => (x.source === 'imap' ? 'mailbox' : x.source) },
      { label: 'Size', cell: (x) => `${num(x.size_bytes)} B` },
      { label: 'Status', cell: (x) => badge(x.status, STATUS_TIP[x.status]) },
      { label: 'Reports', cell: (x) => kindsOf(x) || '–' },
      { label: 'Error', cell: (x) => x.error || '–' },
    ], l.items), pager(page, FILE_PAGE, l.total, (n) => go('files', { ...f, page: n }))]);
  main.dataset.state = 'ready';
}
