// Upload: drop or pick many files; each shows its progress while sent, then its status as the
// workers process it (polling GET /api/ingests/{id}): processed, duplicate, or failed with the
// reason. Files go in batches of one request each, which is what the upload rate limit counts.
import { h, clear, badge, notice, num } from './dom.js';
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
  clear(main, h('h1', {}, 'Upload reports'), zone, input, list);
  main.dataset.state = 'ready';
  return () => { stopped = true; };
}

function row(file) {
  const bar = h('progress', { max: '100', value: '0', 'aria-label': `Upload of ${file.name}` });
  const status = h('span', { class: 'status' }, badge('sending', 'Being sent to the server'));
  const detail = h('span', { class: 'muted detail' });
  const li = h('li', { class: 'upload', dataset: { status: 'sending' } }, h('span', { class: 'name' }, file.name), h('span', { class: 'muted' }, num(file.size) + ' B'), bar, status, detail);
  return { li, bar, status, detail, set(state, tip, msg) { clear(status, badge(state, tip)); detail.textContent = msg || ''; li.dataset.status = state; } };
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
      const n = (ing.report_ids || []).length;
      if (ing.status === 'processed') r.set('processed', 'Parsed and stored', `${n} report${n === 1 ? '' : 's'}` + (ing.error ? ` (${ing.error})` : ''));
      else if (ing.status === 'duplicate') r.set('duplicate', 'Every report in it was already stored', ing.error || 'already stored');
      else r.set('failed', 'The file could not be read as a report', ing.error);
      pending.splice(k, 1);
    }
  }
}
