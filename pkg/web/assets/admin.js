// Account pages: one's API keys (everyone), and for admins users, mailboxes and the audit log.
// The API enforces every role; these pages only avoid offering what the role may not do.
import { h, clear, num, dateTime, field, select, table, pager, badge, errorBox, empty, notice, confirmDialog, loading } from './dom.js';
import { get, post, patch, del, session } from './api.js';

const ROLE_OPTIONS = [['viewer', 'viewer'], ['analyst', 'analyst'], ['admin', 'admin']];

// form builds a labelled form whose submit calls onSubmit(values) and shows errors inline.
export function form(label, fields, submitLabel, onSubmit) {
  const err = h('div', { 'aria-live': 'assertive' });
  const btn = h('button', { type: 'submit' }, submitLabel);
  const el = h('form', { class: 'card form', 'aria-label': label, onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    clear(err);
    try {
      await onSubmit(el);
    } catch (ex) {
      clear(err, errorBox(ex));
    } finally {
      btn.disabled = false;
    }
  } }, h('h2', {}, label), h('div', { class: 'form-grid' }, fields), err, h('div', { class: 'actions' }, btn));
  return el;
}

export const val = (f, name) => f.elements[name].value.trim();

/** keys: the user's own API keys; a new key is shown once, with a copy button. */
export async function keys(main) {
  const listEl = h('div', {}, loading());
  const shown = h('div', { 'aria-live': 'polite' });
  const roles = ROLE_OPTIONS.filter(([r]) => ['viewer', 'analyst', 'admin'].indexOf(r) <= ['viewer', 'analyst', 'admin'].indexOf(session.me.role));
  const load = async () => {
    try {
      const ks = await get('/users/api-keys');
      clear(listEl, ks.items.length === 0 ? empty('You have no API keys yet.') : table('Your API keys', [
        { label: 'Name', th: true, cell: (k) => k.name },
        { label: 'Prefix', cell: (k) => h('span', { class: 'mono' }, k.prefix) },
        { label: 'Role', cell: (k) => badge(k.role, 'The most the key may do') },
        { label: 'Created', cell: (k) => dateTime(k.created_at) },
        { label: 'Expires', cell: (k) => dateTime(k.expires_at) },
        { label: 'Last used', cell: (k) => dateTime(k.last_used_at) },
        { label: 'Actions', cell: (k) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke key ${k.name}`, onclick: async () => {
          if (!(await confirmDialog(`Revoke the key “${k.name}”? Scripts using it stop working at once.`, 'Revoke'))) return;
          try { await del(`/users/api-keys/${k.id}`); notice('Key revoked.'); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
        } }, 'Revoke') },
      ], ks.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const create = form('New API key', [
    field('Name', h('input', { name: 'name', required: true, maxlength: '100' })),
    field('Role', select('role', roles, session.me.role), 'At most your own role'),
    field('Expires (optional)', h('input', { name: 'expires', type: 'date' })),
  ], 'Create key', async (f) => {
    const body = { name: val(f, 'name'), role: val(f, 'role') };
    if (val(f, 'expires')) body.expires_at = new Date(val(f, 'expires') + 'T23:59:59Z').toISOString();
    const k = await post('/users/api-keys', body);
    f.reset();
    const code = h('code', { class: 'secret', id: 'new-key' }, k.key);
    clear(shown, h('div', { class: 'card secret-box', role: 'status' },
      h('p', {}, h('strong', {}, 'Copy this key now: '), 'it is shown only once.'), code, ' ',
      h('button', { type: 'button', onclick: async () => {
        try { await navigator.clipboard.writeText(k.key); notice('Key copied.'); } catch {
          const range = document.createRange(); range.selectNodeContents(code);
          getSelection().removeAllRanges(); getSelection().addRange(range);
          notice('Press Ctrl+C to copy the selected key.');
        }
      } }, 'Copy'),
      h('button', { type: 'button', class: 'secondary', onclick: () => clear(shown) }, 'Done')));
    load();
  });
  clear(main, h('h1', {}, 'API keys'), h('p', { class: 'muted' }, 'Scripts send a key as the X-API-Key header. The queue monitor takes an admin key as the password.'), shown, create, listEl);
  await load();
  main.dataset.state = 'ready';
}

/** users: every account; create, change role, enable or disable, delete. */
export async function users(main) {
  const listEl = h('div', {}, loading());
  const load = async () => {
    try {
      const us = await get('/users', { page_size: 500 });
      clear(listEl, table('Users', [
        { label: 'E-mail', th: true, cell: (u) => u.email },
        { label: 'Name', cell: (u) => u.name },
        { label: 'Role', cell: (u) => {
          const s = select('role', ROLE_OPTIONS, u.role);
          s.setAttribute('aria-label', `Role of ${u.email}`);
          s.addEventListener('change', async () => {
            try { await patch(`/users/${u.id}`, { role: s.value }); notice(`${u.email} is now ${s.value}.`); } catch (e) { notice(e.detail || e.message, 'error'); load(); }
          });
          return s;
        } },
        { label: 'Active', cell: (u) => badge(u.active ? 'active' : 'disabled', u.active ? 'May log in' : 'Cannot log in') },
        { label: 'Last login', cell: (u) => dateTime(u.last_login_at) },
        { label: 'Actions', cell: (u) => h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', onclick: async () => {
            try { await patch(`/users/${u.id}`, { active: !u.active }); notice(`${u.email} ${u.active ? 'disabled' : 'enabled'}.`); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
          } }, u.active ? 'Disable' : 'Enable'),
          h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete ${u.email}`, onclick: async () => {
            if (!(await confirmDialog(`Delete the account ${u.email}?`))) return;
            try { await del(`/users/${u.id}`); notice('User deleted.'); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
          } }, 'Delete')) },
      ], us.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const create = form('New user', [
    field('E-mail', h('input', { name: 'email', type: 'email', required: true, autocomplete: 'off' })),
    field('Name', h('input', { name: 'name', required: true })),
    field('Password', h('input', { name: 'password', type: 'password', required: true, minlength: '8', autocomplete: 'new-password' }), 'At least 8 characters'),
    field('Role', select('role', ROLE_OPTIONS, 'viewer')),
  ], 'Create user', async (f) => {
    const u = await post('/users', { email: val(f, 'email'), name: val(f, 'name'), password: f.elements.password.value, role: val(f, 'role') });
    f.reset();
    notice(`User ${u.email} created.`);
    load();
  });
  clear(main, h('h1', {}, 'Users'), create, listEl);
  await load();
  main.dataset.state = 'ready';
}

function mailboxFields(m = {}) {
  const tls = select('tls', [['tls', 'TLS'], ['starttls', 'STARTTLS'], ['none', 'none (plain)']], m.tls || 'tls');
  return [
    field('Name', h('input', { name: 'name', required: !m.id, value: m.name || '' })),
    field('Host', h('input', { name: 'host', required: !m.id, value: m.host || '' })),
    field('Port', h('input', { name: 'port', type: 'number', min: '1', max: '65535', value: m.port || '' }), 'Empty: 993 for TLS, 143 otherwise'),
    field('Security', tls),
    field('User name', h('input', { name: 'username', required: !m.id, value: m.username || '', autocomplete: 'off' })),
    field(m.id ? 'New password (optional)' : 'Password', h('input', { name: 'password', type: 'password', required: !m.id, autocomplete: 'new-password' })),
    field('Folder', h('input', { name: 'folder', value: m.folder || '', placeholder: 'INBOX' })),
    field('Poll every', h('input', { name: 'poll_interval', value: m.poll_interval || '', placeholder: '15m' })),
    field('Enabled', select('enabled', [['true', 'yes'], ['false', 'no']], m.enabled === false ? 'false' : 'true')),
  ];
}

// mailboxBody reads the form into a create or patch body, leaving empty optional fields out.
function mailboxBody(f) {
  const b = {};
  for (const k of ['name', 'host', 'username', 'tls', 'folder', 'poll_interval']) if (val(f, k)) b[k] = val(f, k);
  if (val(f, 'port')) b.port = Number(val(f, 'port'));
  if (f.elements.password.value) b.password = f.elements.password.value;
  b.enabled = val(f, 'enabled') === 'true';
  return b;
}

function lastResult(m) {
  if (m.polling && m.progress) return `polling: ${num(m.progress.done)} of ${num(m.progress.total)}`;
  if (!m.last_result) return m.last_error || 'never polled';
  const r = m.last_result;
  return `${num(r.saved)} saved, ${num(r.duplicates)} duplicates, ${num(r.invalid)} invalid of ${num(r.seen)} seen` + (m.last_error ? ` · error: ${m.last_error}` : '');
}

const STAGE = { config: 'its settings', connect: 'connecting', tls: 'TLS', login: 'logging in', folder: 'opening the folder' };

// testMailbox tries the connection, login and folder (nothing is read or moved) and shows
// which step failed and why, or what the folder holds.
async function testMailbox(m, btn, out) {
  btn.disabled = true;
  clear(out, loading(`Testing ${m.name}…`));
  try {
    const r = await post(`/api/mailboxes/${m.id}/test`);
    clear(out, h('div', { class: `card test-result ${r.ok ? 'ok' : 'bad'}`, role: 'status', dataset: { ok: String(r.ok), stage: r.stage } },
      h('strong', {}, `Test of ${m.name}: `), badge(r.ok ? 'success' : 'failure', r.ok ? 'Connected, logged in and opened the folder' : 'The test failed'), ' ',
      r.ok
        ? `logged in to ${r.host}; ${r.folder} holds ${num(r.messages)} messages; handled mail is put away by ${r.acknowledge}. (${num(r.duration_ms)} ms)`
        : `failed at ${STAGE[r.stage] || r.stage}: ${r.error}`));
  } catch (e) {
    clear(out, errorBox(e));
  } finally {
    btn.disabled = false;
  }
}

/** mailboxes: IMAP mailboxes with their last poll; add, edit, poll now, delete. */
export async function mailboxes(main) {
  const listEl = h('div', {}, loading());
  const result = h('div', { 'aria-live': 'polite', id: 'mailbox-test-result' });
  const editor = h('div', {});
  const load = async () => {
    try {
      const ms = await get('/api/mailboxes', { page_size: 500 });
      clear(listEl, ms.items.length === 0 ? empty('No mailbox yet: add one to read reports from IMAP.') : table('Mailboxes', [
        { label: 'Name', th: true, cell: (m) => m.name },
        { label: 'Server', cell: (m) => `${m.username}@${m.host}:${m.port} (${m.tls})` },
        { label: 'State', cell: (m) => badge(!m.configured ? 'unusable' : m.enabled ? (m.consecutive_failures ? 'failing' : 'enabled') : 'disabled', m.config_error || (m.consecutive_failures ? `${m.consecutive_failures} failed polls in a row` : '')) },
        { label: 'Last poll', cell: (m) => dateTime(m.last_poll_at) },
        { label: 'Last result', cell: (m) => lastResult(m) },
        { label: 'Actions', cell: (m) => h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small secondary', 'aria-label': `Test mailbox ${m.name}`, onclick: (e) => testMailbox(m, e.target, result) }, 'Test'),
          h('button', { type: 'button', class: 'small', onclick: async () => {
            try { await post('/tasks/trigger/email-ingestion', { mailbox_id: m.id }); notice(`Poll of ${m.name} queued.`); setTimeout(load, 3000); } catch (e) { notice(e.detail || e.message, 'error'); }
          } }, 'Poll now'),
          m.source === 'env' ? null : h('button', { type: 'button', class: 'secondary small', onclick: () => edit(m) }, 'Edit'),
          m.source === 'env' ? null : h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete mailbox ${m.name}`, onclick: async () => {
            if (!(await confirmDialog(`Delete the mailbox ${m.name}? Reports already read stay.`))) return;
            try { await del(`/api/mailboxes/${m.id}`); notice('Mailbox deleted.'); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
          } }, 'Delete')) },
      ], ms.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const edit = (m) => {
    const f = form(`Edit ${m.name}`, mailboxFields(m), 'Save', async (el) => {
      await patch(`/api/mailboxes/${m.id}`, mailboxBody(el));
      notice('Mailbox saved.');
      clear(editor);
      load();
    });
    f.querySelector('.actions').appendChild(h('button', { type: 'button', class: 'secondary', onclick: () => clear(editor) }, 'Cancel'));
    clear(editor, f);
    f.querySelector('input').focus();
  };
  const create = form('Add a mailbox', mailboxFields(), 'Add mailbox', async (f) => {
    await post('/api/mailboxes', mailboxBody(f));
    f.reset();
    notice('Mailbox added.');
    load();
  });
  clear(main, h('h1', {}, 'Mailboxes'), result, editor, listEl, create);
  await load();
  main.dataset.state = 'ready';
}

/** audit: the audit log, newest first, filtered by action and outcome. */
export async function audit(main, params, { go }) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const action = params.get('action') || '';
  const outcome = params.get('outcome') || '';
  const a = h('input', { name: 'action', value: action, placeholder: 'login' });
  const o = select('outcome', [['', 'Any'], ['success', 'success'], ['failure', 'failure']], outcome);
  const filters = h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); go('admin/audit', { action: a.value.trim(), outcome: o.value }); } },
    h('div', { class: 'filter-row' }, field('Action', a), field('Outcome', o), h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'))));
  const body = h('div', {}, loading());
  clear(main, h('h1', {}, 'Audit log'), filters, body);
  try {
    const list = await get('/audit', { page, page_size: 50, action, outcome });
    clear(body, list.total === 0 ? empty('No entries.') : [table('Audit log', [
      { label: 'When', th: true, cell: (x) => dateTime(x.at) },
      { label: 'Actor', cell: (x) => x.actor || '–' },
      { label: 'Action', cell: (x) => x.action },
      { label: 'Outcome', cell: (x) => badge(x.outcome) },
      { label: 'Target', cell: (x) => x.target || '–' },
      { label: 'Address', cell: (x) => h('span', { class: 'mono' }, x.ip) },
      { label: 'Details', cell: (x) => (x.details ? h('span', { class: 'mono small' }, JSON.stringify(x.details)) : '–') },
    ], list.items), pager(page, 50, list.total, (n) => go('admin/audit', { action, outcome, page: n }))]);
  } catch (e) {
    clear(body, errorBox(e));
  }
  main.dataset.state = 'ready';
}
