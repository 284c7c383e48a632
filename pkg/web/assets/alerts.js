// Alerts: the list with status and severity filters, an alert's detail with its deliveries and
// history (acknowledge or resolve with a note, analysts and up), rules and maintenance windows
// (everyone reads, admins change) and notification channels (admins). Alert titles, rule and
// channel names come from users or from reports: they reach the page as text only (dom.js).
import { h, clear, num, dateTime, field, select, table, pager, badge, errorBox, empty, notice, confirmDialog, loading, uid } from './dom.js';
import { get, post, patch, del, session } from './api.js';
import { form, val } from './admin.js';

const STATUSES = ['open', 'acknowledged', 'resolved', 'suppressed'];
const SEVERITIES = ['info', 'warning', 'critical'];
const RULE_TYPES = ['failure_rate', 'volume_spike', 'volume_drop', 'new_source', 'policy_violation', 'missing_reports', 'anomaly', 'tls_failure'];
const KINDS = ['webhook', 'slack', 'teams', 'discord', 'email'];
const SEV_TIP = { info: 'Information: nothing to do yet', warning: 'Warning: look at it soon', critical: 'Critical: mail is failing now' };
const STATUS_TIP = { open: 'Nobody has acknowledged it yet', acknowledged: 'Someone is on it', resolved: 'Closed', suppressed: 'Raised during a maintenance window: not sent' };

const sevBadge = (s) => h('span', { class: `badge badge-${s === 'critical' ? 'bad' : s === 'warning' ? 'warn' : 'neutral'}`, title: SEV_TIP[s] || 'Severity' }, s);
const statusBadge = (s) => h('span', { class: `badge badge-${s === 'open' ? 'bad' : s === 'acknowledged' ? 'warn' : s === 'resolved' ? 'ok' : 'neutral'}`, title: STATUS_TIP[s] || 'Status' }, s);
const opts = (list, any) => [['', any], ...list.map((x) => [x, x])];
const ms = (e) => notice(e.detail || e.message, 'error');

/** list: alerts newest first, filtered by status, severity, type and domain from the URL. */
export async function list(main, params, { go }) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const f = {};
  for (const k of ['status', 'severity', 'type', 'domain']) if (params.get(k)) f[k] = params.get(k);
  const status = select('status', opts(STATUSES, 'Any status'), f.status);
  const severity = select('severity', opts(SEVERITIES, 'Any severity'), f.severity);
  const type = select('type', opts(RULE_TYPES, 'Any type'), f.type);
  const domain = h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' });
  const apply = () => go('alerts', { status: status.value, severity: severity.value, type: type.value, domain: domain.value.trim() });
  for (const s of [status, severity, type]) s.addEventListener('change', apply);
  const filters = h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'filter-row' }, field('Status', status), field('Severity', severity), field('Type', type), field('Domain', domain),
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'))));
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading alerts…'));
  clear(main, h('h1', {}, 'Alerts'), subnav('alerts'), filters, body);
  let l;
  try {
    l = await get('/alerts/history', { ...f, page, page_size: 50 });
  } catch (e) {
    clear(body, errorBox(e));
    main.dataset.state = 'ready';
    return;
  }
  body.removeAttribute('aria-busy');
  clear(body, l.total === 0
    ? empty(Object.keys(f).length ? 'No alert matches these filters.' : 'No alerts: rules are checked every hour.')
    : [table('Alerts', [
      { label: 'Raised', th: true, cell: (a) => h('a', { href: `#/alert/${a.id}` }, dateTime(a.created_at)) },
      { label: 'Severity', cell: (a) => sevBadge(a.severity) },
      { label: 'Status', cell: (a) => statusBadge(a.status) },
      { label: 'Title', cell: (a) => h('a', { href: `#/alert/${a.id}`, class: 'alert-title' }, a.title) },
      { label: 'Domain', cell: (a) => a.domain || '–' },
      { label: 'Type', cell: (a) => a.type },
    ], l.items), pager(page, 50, l.total, (n) => go('alerts', { ...f, page: n }))]);
  main.dataset.state = 'ready';
}

/** subnav links the alert pages together. */
function subnav(current) {
  const items = [['alerts', 'Alerts'], ['alerts/rules', 'Rules'], ['alerts/windows', 'Maintenance windows']];
  if (session.me && session.me.role === 'admin') items.push(['alerts/channels', 'Channels']);
  return h('nav', { class: 'subnav', 'aria-label': 'Alert pages' }, items.map(([p, l]) =>
    h('a', { href: '#/' + p, 'aria-current': p === current ? 'page' : undefined }, l)));
}

/** detail: one alert with its deliveries and history; acknowledge or resolve with a note. */
export async function detail(main, params, { arg, can }) {
  const id = Number(arg);
  const a = await get(`/alerts/${id}`);
  let channels = {};
  if (can('admin')) {
    try { channels = Object.fromEntries((await get('/alerts/channels')).items.map((c) => [c.id, c.name])); } catch { /* names only */ }
  }
  const note = h('textarea', { name: 'note', rows: '3', maxlength: '2000' });
  const act = async (what) => {
    try {
      await patch(`/alerts/${id}/${what}`, { note: note.value.trim() });
      notice(what === 'acknowledge' ? 'Alert acknowledged.' : 'Alert resolved.');
      await detail(main, params, { arg, can });
    } catch (e) { ms(e); }
  };
  const dl = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v ?? '–')]));
  const actions = can('analyst') && a.status !== 'resolved'
    ? h('form', { class: 'card form', 'aria-label': 'Act on this alert', onsubmit: (e) => e.preventDefault() },
      h('h2', {}, 'Act on this alert'), field('Note (optional)', note, 'Kept with the alert and in its history'),
      h('div', { class: 'actions' },
        a.status === 'open' ? h('button', { type: 'button', id: 'alert-ack', onclick: () => act('acknowledge') }, 'Acknowledge') : null,
        h('button', { type: 'button', id: 'alert-resolve', class: 'secondary', onclick: () => act('resolve') }, 'Resolve')))
    : null;
  clear(main,
    h('p', {}, h('a', { href: '#/alerts' }, '‹ All alerts')),
    h('h1', { class: 'alert-title' }, a.title),
    h('div', { class: 'detail-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'al-h' }, h('h2', { id: 'al-h' }, 'Alert'),
        dl([['Severity', sevBadge(a.severity)], ['Status', statusBadge(a.status)], ['Type', a.type], ['Domain', a.domain || '–'],
          ['Raised', dateTime(a.created_at)], ['Acknowledged', a.acknowledged_at ? `${dateTime(a.acknowledged_at)} by ${a.acknowledged_by || '?'}` : '–'],
          ['Resolved', a.resolved_at ? `${dateTime(a.resolved_at)} by ${a.resolved_by || '?'}` : '–'], ['Note', a.note || '–'],
          ['Rule', a.rule_id != null ? h('a', { href: '#/alerts/rules' }, `rule ${a.rule_id}`) : '–']])),
      h('section', { class: 'card', 'aria-labelledby': 'det-h' }, h('h2', { id: 'det-h' }, 'What happened'), h('p', { class: 'alert-detail' }, a.detail || '–'))),
    actions,
    h('h2', {}, 'Deliveries'),
    !a.deliveries || a.deliveries.length === 0 ? empty('Not sent to any channel (the rule names none, or it was suppressed).') : table('Deliveries', [
      { label: 'Channel', th: true, cell: (d) => channels[d.channel_id] || `channel ${d.channel_id}` },
      { label: 'Status', cell: (d) => badge(d.status, 'Delivery state') },
      { label: 'Attempts', cell: (d) => num(d.attempts) },
      { label: 'Last error', cell: (d) => d.last_error || '–' },
      { label: 'Updated', cell: (d) => dateTime(d.updated_at) },
    ], a.deliveries),
    h('h2', {}, 'History'),
    !a.history || a.history.length === 0 ? empty('No changes yet.') : table('History', [
      { label: 'When', th: true, cell: (x) => dateTime(x.at) },
      { label: 'Action', cell: (x) => x.action },
      { label: 'By', cell: (x) => x.actor || '–' },
      { label: 'Note', cell: (x) => x.note || '–' },
    ], a.history));
  main.dataset.state = 'ready';
}

// PARAMS mirrors the API's parameter table per rule type (docs/api.md, pkg/alerting rules.go):
// default, bounds, whole numbers, what it means. The form offers exactly these fields with the
// bounds as input constraints, so the browser refuses a value out of range before the API does
// (which checks again and names the field in its 422).
const PARAMS = {
  failure_rate: [
    ['threshold', 'Failure share above', 0.05, 0.0001, 1, false, 'Fraction of messages failing DMARC, e.g. 0.05 = 5 %'],
    ['window_days', 'Window (days)', 7, 1, 365, true, 'UTC days ending today'],
    ['min_messages', 'At least messages', 100, 0, 1e12, true, 'Ignore domains with fewer messages in the window']],
  volume_spike: [
    ['factor', 'Factor above baseline', 3, 1.01, 1000, false, 'Yesterday above factor × the median of the same weekday'],
    ['weeks', 'Baseline weeks', 4, 1, 12, true, 'Weeks the median is taken over'],
    ['min_messages', 'At least messages', 100, 0, 1e12, true, 'Ignore days with fewer messages']],
  volume_drop: [
    ['ratio', 'Ratio below baseline', 0.5, 0, 0.99, false, 'Yesterday below ratio × the median of the same weekday'],
    ['weeks', 'Baseline weeks', 4, 1, 12, true, 'Weeks the median is taken over'],
    ['min_baseline', 'Baseline at least', 100, 1, 1e12, true, 'Ignore domains whose baseline is smaller']],
  new_source: [
    ['window_days', 'Window (days)', 1, 1, 30, true, 'A source first seen in these UTC days'],
    ['lookback_days', 'Look back (days)', 90, 1, 3650, true, '…and not seen in this many days before'],
    ['min_messages', 'At least messages', 1, 1, 1e12, true, 'Ignore new sources with fewer messages']],
  policy_violation: [
    ['window_days', 'Window (days)', 1, 1, 365, true, 'UTC days ending today'],
    ['min_messages', 'At least messages', 1, 1, 1e12, true, 'Quarantined or rejected messages that raise an alert'],
    ['policy_change', 'Also on a policy change', true, null, null, 'bool', 'Alert when the published p= changed'],
    ['lookback_days', 'Look back (days)', 30, 1, 3650, true, 'How far back the previous policy is looked for']],
  missing_reports: [
    ['silent_days', 'Silent for (days)', 2, 1, 60, true, 'A reporter with no report beginning in these days'],
    ['lookback_days', 'Look back (days)', 14, 2, 365, true, 'The period its habit is read from'],
    ['min_active_days', 'Active days at least', 7, 1, 365, true, 'Days with a report that make a reporter regular']],
  anomaly: [
    ['min_score', 'Anomaly score at least', 0.6, 0, 1, false, 'Isolation Forest score of the latest scoring run (0.5 is average)']],
  tls_failure: [
    ['threshold', 'Failed TLS share above', 0.05, 0.0001, 1, false, 'Fraction of TLS sessions failing'],
    ['window_days', 'Window (days)', 2, 1, 365, true, 'UTC days ending today'],
    ['min_sessions', 'At least sessions', 10, 1, 1e12, true, 'Ignore domains with fewer sessions']],
};

// paramFields draws the fields of one type, filled from params (a rule being edited) and
// otherwise empty with the default as placeholder (empty: the API applies the default).
function paramFields(type, params) {
  return (PARAMS[type] || []).map(([name, label, def, min, max, whole, hint]) => {
    const v = params && params[name] !== undefined ? params[name] : undefined;
    if (whole === 'bool') {
      return field(label, select('p_' + name, [['', `default (${def ? 'yes' : 'no'})`], ['true', 'yes'], ['false', 'no']],
        v === undefined ? '' : String(Boolean(v))), hint);
    }
    return field(label, h('input', { name: 'p_' + name, type: 'number', min: String(min), max: String(max), step: whole ? '1' : 'any',
      inputmode: whole ? 'numeric' : 'decimal', placeholder: String(def), value: v === undefined ? '' : String(v), dataset: { param: name } }),
    `${hint}. ${min}–${max >= 1e12 ? 'any' : max}${whole ? ', whole' : ''}; empty: ${def}`);
  });
}

function ruleFields(r, channels) {
  const type = select('type', RULE_TYPES.map((t) => [t, t]), r.type || 'failure_rate');
  const params = h('fieldset', { class: 'field params', id: uid('params') }, h('legend', {}, 'Parameters'));
  const fill = () => {
    // Keep what was typed for this type; another type starts from its own defaults.
    clear(params, h('legend', {}, `Parameters of ${type.value}`), paramFields(type.value, type.value === r.type ? r.params : null));
  };
  type.addEventListener('change', fill);
  fill();
  return [
    field('Name', h('input', { name: 'name', required: true, maxlength: '200', value: r.name || '' })),
    field('Type', type),
    field('Domain', h('input', { name: 'domain', value: r.domain || '', placeholder: 'every domain' }), 'Empty: all domains'),
    field('Severity', select('severity', SEVERITIES.map((s) => [s, s]), r.severity || 'warning')),
    field('Cooldown', h('input', { name: 'cooldown', value: r.cooldown || '', placeholder: '6h', pattern: '[0-9]+(h|m)([0-9]+m)?' }), 'No repeat of the same alert within this (1h–24h)'),
    field('Enabled', select('enabled', [['true', 'yes'], ['false', 'no']], r.enabled === false ? 'false' : 'true')),
    params,
    h('fieldset', { class: 'field channels' }, h('legend', {}, 'Send to'),
      channels.length === 0 ? h('small', { class: 'hint' }, 'No channels yet.') : channels.map((c) => h('label', { class: 'check' },
        h('input', { type: 'checkbox', name: 'channel', value: String(c.id), checked: (r.channel_ids || []).includes(c.id) }), ' ', c.name))),
  ];
}

function ruleBody(f) {
  const b = { name: val(f, 'name'), type: val(f, 'type'), severity: val(f, 'severity'), enabled: val(f, 'enabled') === 'true',
    domain: val(f, 'domain') || null,
    channel_ids: [...f.querySelectorAll('input[name=channel]:checked')].map((c) => Number(c.value)) };
  if (val(f, 'cooldown')) b.cooldown = val(f, 'cooldown');
  const params = {};
  for (const [name, , , , , whole] of PARAMS[b.type] || []) {
    const v = val(f, 'p_' + name);
    if (v === '') continue;
    params[name] = whole === 'bool' ? v === 'true' : Number(v);
  }
  b.params = params;
  return b;
}

/** rules: every alert rule; admins add, edit, enable or disable and delete. */
export async function rules(main, params, { can }) {
  const admin = can('admin');
  const listEl = h('div', {}, loading());
  const editor = h('div', {});
  let channels = [];
  if (admin) {
    try { channels = (await get('/alerts/channels')).items; } catch { /* the form offers none */ }
  }
  const load = async () => {
    try {
      const rs = await get('/alerts/rules');
      clear(listEl, rs.items.length === 0 ? empty('No rules.') : table('Alert rules', [
        { label: 'Name', th: true, cell: (r) => h('span', { class: 'rule-name' }, r.name) },
        { label: 'Type', cell: (r) => r.type },
        { label: 'Domain', cell: (r) => r.domain || 'all' },
        { label: 'Severity', cell: (r) => sevBadge(r.severity) },
        { label: 'Parameters', cell: (r) => h('span', { class: 'mono small' }, JSON.stringify(r.params || {})) },
        { label: 'Cooldown', cell: (r) => r.cooldown },
        { label: 'Channels', cell: (r) => (r.channel_ids || []).map((id) => (channels.find((c) => c.id === id) || {}).name || `#${id}`).join(', ') || '–' },
        { label: 'Enabled', cell: (r) => badge(r.enabled ? 'enabled' : 'disabled', r.enabled ? 'Checked every hour' : 'Not checked') },
        admin ? { label: 'Actions', cell: (r) => h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit rule ${r.name}`, onclick: () => edit(r) }, 'Edit'),
          h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete rule ${r.name}`, onclick: async () => {
            if (!(await confirmDialog(`Delete the rule “${r.name}”? Its past alerts stay.`))) return;
            try { await del(`/alerts/rules/${r.id}`); notice('Rule deleted.'); load(); } catch (e) { ms(e); }
          } }, 'Delete')) } : null,
      ].filter(Boolean), rs.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const edit = (r) => {
    const f = form(`Edit ${r.name}`, ruleFields(r, channels), 'Save', async (el) => {
      await patch(`/alerts/rules/${r.id}`, ruleBody(el));
      notice('Rule saved.');
      clear(editor);
      load();
    });
    f.querySelector('.actions').appendChild(h('button', { type: 'button', class: 'secondary', onclick: () => clear(editor) }, 'Cancel'));
    clear(editor, f);
    f.querySelector('input').focus();
  };
  const create = admin ? form('New rule', ruleFields({}, channels), 'Add rule', async (f) => {
    const r = await post('/alerts/rules', ruleBody(f));
    f.reset();
    f.elements.type.dispatchEvent(new Event('change')); // the parameters of the type reset to
    notice(`Rule ${r.name} added.`);
    load();
  }) : null;
  const check = admin ? h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try { await post('/alerts/check'); notice('A check of every rule is queued.'); } catch (e) { ms(e); }
  } }, 'Check all rules now') : null;
  clear(main, h('h1', {}, 'Alert rules'), subnav('alerts/rules'), check, editor, listEl, create);
  await load();
  main.dataset.state = 'ready';
}

// channelFields: secrets (a chat webhook's URL, a webhook's HMAC key, an SMTP password) are
// write-only: the API never returns them, so the form shows whether one is set and leaves it
// alone when empty. An e-mail channel may name its own SMTP server (docs/api.md, "Channels");
// those fields show for e-mail only, and the API checks them (its 422 shows in the form).
function channelFields(c) {
  const set = (name) => (c.secrets_set || []).includes(name);
  const cfg = c.config || {};
  const kind = select('kind', KINDS.map((k) => [k, k]), c.kind || 'webhook');
  const smtp = h('fieldset', { class: 'field smtp', id: uid('smtp') },
    h('legend', {}, 'E-mail sender and SMTP server'),
    h('small', { class: 'hint' }, 'Leave the server empty to send through the shared server of VIGIL_SMTP_*.'),
    h('div', { class: 'form-grid' },
      field('From', h('input', { name: 'from', type: 'email', autocomplete: 'off', value: cfg.from || '', placeholder: 'vigil@example.com' }), 'Sender address; empty: VIGIL_SMTP_FROM'),
      field('SMTP host', h('input', { name: 'smtp_host', autocomplete: 'off', value: cfg.smtp_host || '', placeholder: 'smtp.example.com' }), 'Host name or address, no port; checked against the outbound policy'),
      field('SMTP port', h('input', { name: 'smtp_port', type: 'number', min: '1', max: '65535', step: '1', inputmode: 'numeric', value: cfg.smtp_port ? String(cfg.smtp_port) : '', placeholder: '587' }), 'Empty: 587, or 465 with implicit TLS'),
      field('SMTP security', select('smtp_tls', [['', 'default (STARTTLS)'], ['starttls', 'STARTTLS, required'], ['tls', 'TLS from the start (implicit)'], ['none', 'none (only without a password)']], cfg.smtp_tls || ''), 'How the connection is encrypted'),
      field('SMTP user name', h('input', { name: 'smtp_username', autocomplete: 'off', value: cfg.smtp_username || '' }), 'With a password, or neither'),
      field('SMTP password', h('input', { name: 'smtp_password', type: 'password', autocomplete: 'new-password' }),
        set('smtp_password') ? 'Stored: leave empty to keep it' : 'Write-only: never shown again')));
  const show = () => { smtp.hidden = kind.value !== 'email'; };
  kind.addEventListener('change', show);
  show();
  return [
    field('Name', h('input', { name: 'name', required: !c.id, maxlength: '200', value: c.name || '' })),
    field('Kind', kind),
    field('URL', h('input', { name: 'url', type: 'url', autocomplete: 'off', value: c.kind === 'webhook' ? cfg.url || '' : '' }),
      set('url') ? 'Stored (chat webhooks keep their URL secret): leave empty to keep it' : 'Webhook or chat incoming-webhook URL'),
    field('Signing secret', h('input', { name: 'secret', type: 'password', autocomplete: 'new-password', minlength: '16' }),
      set('secret') ? 'Stored: leave empty to keep it' : 'Webhook only: HMAC key, 16 characters or more'),
    field('E-mail to', h('input', { name: 'to', value: (cfg.to || []).join(', ') }), 'E-mail only: addresses, comma-separated'),
    field('Subject prefix', h('input', { name: 'subject_prefix', value: cfg.subject_prefix || '' }), 'E-mail only'),
    field('Enabled', select('enabled', [['true', 'yes'], ['false', 'no']], c.enabled === false ? 'false' : 'true')),
    smtp,
  ];
}

// SMTP_TEXT are the e-mail settings sent as text; smtp_port is a number, smtp_password apart.
const SMTP_TEXT = ['from', 'smtp_host', 'smtp_tls', 'smtp_username'];

function channelBody(f, editing) {
  const b = { kind: val(f, 'kind'), enabled: val(f, 'enabled') === 'true', config: {} };
  if (val(f, 'name') || !editing) b.name = val(f, 'name');
  if (val(f, 'url')) b.config.url = val(f, 'url');
  if (f.elements.secret.value) b.config.secret = f.elements.secret.value;
  if (val(f, 'to')) b.config.to = val(f, 'to').split(',').map((s) => s.trim()).filter(Boolean);
  if (val(f, 'subject_prefix')) b.config.subject_prefix = val(f, 'subject_prefix');
  if (b.kind === 'email') {
    // Editing sends the sender and server as they stand (an emptied field clears the setting:
    // the API merges config); a new channel only what was filled in.
    for (const k of SMTP_TEXT) if (editing || val(f, k)) b.config[k] = val(f, k);
    if (editing || val(f, 'smtp_port')) b.config.smtp_port = Number(val(f, 'smtp_port')) || 0;
    if (f.elements.smtp_password.value) b.config.smtp_password = f.elements.smtp_password.value;
    else if (editing && !val(f, 'smtp_host')) b.config.smtp_password = ''; // no own server: no password kept for it
  }
  if (editing && Object.keys(b.config).length === 0) delete b.config;
  return b;
}

/** channels: where alerts go (admins); test sends a sample alert and shows the answer. */
export async function channels(main) {
  const listEl = h('div', {}, loading());
  const editor = h('div', {});
  const result = h('div', { 'aria-live': 'polite', id: 'channel-test-result' });
  const load = async () => {
    try {
      const cs = await get('/alerts/channels');
      clear(listEl, cs.items.length === 0 ? empty('No channels: add one so alerts reach people.') : table('Channels', [
        { label: 'Name', th: true, cell: (c) => h('span', { class: 'channel-name' }, c.name) },
        { label: 'Kind', cell: (c) => c.kind },
        { label: 'Settings', cell: (c) => h('span', { class: 'mono small' }, JSON.stringify(c.config || {})) },
        { label: 'Secrets', cell: (c) => ((c.secrets_set || []).length ? (c.secrets_set || []).map((s) => `${s}: set`).join(', ') : 'none') },
        { label: 'Enabled', cell: (c) => badge(c.enabled ? 'enabled' : 'disabled') },
        { label: 'Actions', cell: (c) => h('div', { class: 'row-actions' },
          h('button', { type: 'button', class: 'small', 'aria-label': `Test channel ${c.name}`, onclick: async (e) => {
            e.target.disabled = true;
            clear(result, loading(`Sending a test to ${c.name}…`));
            try {
              const r = await post(`/alerts/channels/${c.id}/test`);
              clear(result, h('div', { class: `notice-inline ${r.status === 'sent' ? 'ok' : 'bad'}`, role: 'status' },
                h('strong', {}, `Test of ${c.name}: `), badge(r.status, 'What the channel answered'), r.error ? ` ${r.error}` : ''));
            } catch (ex) { clear(result, errorBox(ex)); } finally { e.target.disabled = false; }
          } }, 'Test'),
          h('button', { type: 'button', class: 'secondary small', 'aria-label': `Edit channel ${c.name}`, onclick: () => edit(c) }, 'Edit'),
          h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete channel ${c.name}`, onclick: async () => {
            if (!(await confirmDialog(`Delete the channel “${c.name}”? Rules stop sending to it.`))) return;
            try { await del(`/alerts/channels/${c.id}`); notice('Channel deleted.'); load(); } catch (ex) { ms(ex); }
          } }, 'Delete')) },
      ], cs.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const edit = (c) => {
    const f = form(`Edit ${c.name}`, channelFields(c), 'Save', async (el) => {
      await patch(`/alerts/channels/${c.id}`, channelBody(el, true));
      notice('Channel saved.');
      clear(editor);
      load();
    });
    f.querySelector('.actions').appendChild(h('button', { type: 'button', class: 'secondary', onclick: () => clear(editor) }, 'Cancel'));
    clear(editor, f);
    f.querySelector('input').focus();
  };
  const create = form('New channel', channelFields({}), 'Add channel', async (f) => {
    const c = await post('/alerts/channels', channelBody(f, false));
    f.reset();
    notice(`Channel ${c.name} added.`);
    load();
  });
  clear(main, h('h1', {}, 'Notification channels'), subnav('alerts/channels'), result, editor, listEl, create);
  await load();
  main.dataset.state = 'ready';
}

const iso = (v) => (v ? new Date(v + (v.length === 16 ? ':00Z' : 'Z')).toISOString() : undefined);

/** windows: maintenance windows (suppressions): alerts raised inside one are kept, not sent. */
export async function windows(main, params, { can }) {
  const admin = can('admin');
  const listEl = h('div', {}, loading());
  const load = async () => {
    try {
      const ws = await get('/alerts/suppressions');
      clear(listEl, ws.items.length === 0 ? empty('No maintenance windows.') : table('Maintenance windows', [
        { label: 'Scope', th: true, cell: (w) => [w.domain || 'all domains', w.type ? ` · ${w.type}` : '', w.severity ? ` · ${w.severity}` : ''].join('') },
        { label: 'When', cell: (w) => (w.recurrence === 'none'
          ? `${dateTime(w.starts_at)} – ${dateTime(w.ends_at)}`
          : `${w.recurrence}${w.weekday ? ' on ' + w.weekday : ''} at ${w.start_time || '?'} UTC for ${w.duration || '?'}`) },
        { label: 'Expires', cell: (w) => dateTime(w.expires_at) },
        { label: 'Note', cell: (w) => w.note || '–' },
        { label: 'By', cell: (w) => w.created_by || '–' },
        admin ? { label: 'Actions', cell: (w) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete window ${w.id}`, onclick: async () => {
          if (!(await confirmDialog('Delete this maintenance window?'))) return;
          try { await del(`/alerts/suppressions/${w.id}`); notice('Window deleted.'); load(); } catch (e) { ms(e); }
        } }, 'Delete') } : null,
      ].filter(Boolean), ws.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const create = admin ? form('New maintenance window', [
    field('Domain', h('input', { name: 'domain', placeholder: 'all domains' })),
    field('Alert type', select('type', opts(RULE_TYPES, 'any'), '')),
    field('Severity', select('severity', opts(SEVERITIES, 'any'), '')),
    field('Repeats', select('recurrence', [['none', 'once'], ['daily', 'daily'], ['weekly', 'weekly']], 'none')),
    field('Starts (UTC)', h('input', { name: 'starts_at', type: 'datetime-local' }), 'Once: the start'),
    field('Ends (UTC)', h('input', { name: 'ends_at', type: 'datetime-local' }), 'Once: the end'),
    field('Weekday', select('weekday', [['', '–'], ...['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'].map((d) => [d, d])], ''), 'Weekly only'),
    field('Start time (UTC)', h('input', { name: 'start_time', placeholder: '02:00' }), 'Daily or weekly'),
    field('Duration', h('input', { name: 'duration', placeholder: '2h' }), 'Daily or weekly'),
    field('Expires (UTC)', h('input', { name: 'expires_at', type: 'datetime-local' }), 'Optional'),
    field('Note', h('input', { name: 'note', maxlength: '500' })),
  ], 'Add window', async (f) => {
    const b = { recurrence: val(f, 'recurrence'), note: val(f, 'note') };
    for (const k of ['domain', 'type', 'severity', 'weekday', 'start_time', 'duration']) if (val(f, k)) b[k] = val(f, k);
    for (const k of ['starts_at', 'ends_at', 'expires_at']) if (val(f, k)) b[k] = iso(val(f, k));
    await post('/alerts/suppressions', b);
    f.reset();
    notice('Maintenance window added.');
    load();
  }) : null;
  clear(main, h('h1', {}, 'Maintenance windows'), subnav('alerts/windows'),
    h('p', { class: 'muted' }, 'Alerts raised inside a window are kept as suppressed and not sent.'), listEl, create);
  await load();
  main.dataset.state = 'ready';
}
