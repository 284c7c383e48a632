// DOM helpers. Every string lands in the page as a text node or an attribute value, never as
// markup: report fields are attacker-controlled, and the page's CSP (Trusted Types) makes any
// HTML-parsing sink throw anyway.

/** h builds an element: h('a', {href: '#/x', class: 'btn', onclick: fn}, 'text', child...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'dataset') {
      Object.assign(el.dataset, v);
    } else if (k === 'checked' || k === 'selected') {
      // The default too, so a form's reset() returns to it rather than to the first option.
      el[k] = v;
      el[k === 'checked' ? 'defaultChecked' : 'defaultSelected'] = v;
    } else if (k === 'value' || k === 'disabled') {
      el[k] = v;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** text is a text node: the only way strings from the API reach the page. */
export const text = (s) => document.createTextNode(s == null ? '' : String(s));

/** clear empties el and appends children. */
export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const nf = new Intl.NumberFormat();
export const num = (n) => (n == null ? '–' : nf.format(n));
export const pct = (r) => (r == null ? '–' : (r * 100).toFixed(1) + ' %');
export function date(s) {
  if (!s) return '–';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toISOString().slice(0, 10);
}
export function dateTime(s) {
  if (!s) return '–';
  const d = new Date(s);
  return isNaN(d) ? String(s) : d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC';
}

let idSeq = 0;
/** uid is a fresh element id, to tie labels to controls. */
export const uid = (p = 'f') => `${p}-${++idSeq}`;

/** field is a labelled control: label text, then the control (given or an <input>). */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const hintEl = hint ? h('small', { class: 'hint', id: id + '-hint' }, hint) : null;
  if (hintEl) control.setAttribute('aria-describedby', hintEl.id);
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl);
}

/** select builds a <select> from [value, label] pairs. */
export function select(name, options, current) {
  return h('select', { name }, options.map(([v, l]) => h('option', { value: v, selected: String(v) === String(current ?? '') }, l)));
}

/** badge shows a result: colour and a word and a tooltip, so colour is never the only signal. */
export function badge(value, tip) {
  const v = String(value ?? '').toLowerCase();
  const kind = { pass: 'ok', none: 'neutral', fail: 'bad', reject: 'bad', quarantine: 'warn', softfail: 'warn',
    neutral: 'neutral', temperror: 'warn', permerror: 'bad', processed: 'ok', duplicate: 'neutral',
    failed: 'bad', rejected: 'bad', pending: 'warn', accepted: 'neutral', admin: 'warn', analyst: 'neutral',
    viewer: 'neutral', success: 'ok', failure: 'bad', denied: 'bad', sent: 'ok', delivered: 'ok', enabled: 'ok', disabled: 'neutral', failing: 'bad', unusable: 'bad', retrying: 'warn', anomalous: 'bad', normal: 'ok', deployed: 'ok', ready: 'ok', training: 'warn' }[v] || 'neutral';
  return h('span', { class: `badge badge-${kind}`, title: tip || undefined }, value == null || value === '' ? '–' : String(value));
}

const live = () => document.getElementById('notices');

/** notice shows a success or error message in the live region (read out by screen readers). */
export function notice(msg, kind = 'ok') {
  const el = h('div', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, msg,
    h('button', { type: 'button', class: 'link', 'aria-label': 'Dismiss', onclick: () => el.remove() }, '×'));
  live().appendChild(el);
  setTimeout(() => el.remove(), kind === 'error' ? 12000 : 5000);
}

/** errorBox renders an API error (RFC 9457 problem) where the content would have been. */
export function errorBox(err) {
  return h('div', { class: 'error-box', role: 'alert' }, h('strong', {}, err.title || 'Error'), ' ', err.detail || err.message || String(err));
}

export const loading = (what = 'Loading…') => h('p', { class: 'loading', role: 'status', 'aria-live': 'polite' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), what);

export function empty(msg, ...extra) {
  return h('div', { class: 'empty' }, h('p', {}, msg), ...extra);
}

/** table builds a table with a caption from columns [{label, cell(row) → node|string, sort?}]. */
export function table(caption, columns, rows, opts = {}) {
  const head = h('tr', {}, columns.map((c) => {
    if (!c.sort || !opts.onSort) return h('th', { scope: 'col' }, c.label);
    const active = opts.sort === c.sort;
    const dir = active ? opts.dir : null;
    return h('th', { scope: 'col', 'aria-sort': active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none' },
      h('button', { type: 'button', class: 'sort', onclick: () => opts.onSort(c.sort, active && dir === 'asc' ? 'desc' : 'asc') },
        c.label, h('span', { 'aria-hidden': 'true' }, active ? (dir === 'asc' ? ' ▲' : ' ▼') : ' ↕')));
  }));
  const body = rows.map((r) => h('tr', {}, columns.map((c) => h(c.th ? 'th' : 'td', c.th ? { scope: 'row' } : {}, c.cell(r)))));
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', {}, h('caption', { class: opts.showCaption ? '' : 'sr-only' }, caption), h('thead', {}, head), h('tbody', {}, body)));
}

/** pager is previous/next with the position, calling go(page). */
export function pager(page, pageSize, total, go) {
  const pages = Math.max(1, Math.ceil(total / pageSize));
  return h('nav', { class: 'pager', 'aria-label': 'Pages' },
    h('button', { type: 'button', disabled: page <= 1, onclick: () => go(page - 1) }, '‹ Previous'),
    h('span', {}, `Page ${page} of ${pages} (${num(total)} in all)`),
    h('button', { type: 'button', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next ›'));
}

/** confirmDialog asks a yes/no question in a modal <dialog>; resolves true on yes. */
export function confirmDialog(question, yes = 'Delete') {
  return new Promise((resolve) => {
    const d = h('dialog', { class: 'modal', 'aria-label': 'Confirm' },
      h('form', { method: 'dialog' }, h('p', {}, question),
        h('div', { class: 'actions' },
          h('button', { value: 'no', type: 'submit', class: 'secondary' }, 'Cancel'),
          h('button', { value: 'yes', type: 'submit', class: 'danger' }, yes))));
    d.addEventListener('close', () => { resolve(d.returnValue === 'yes'); d.remove(); });
    document.body.appendChild(d);
    d.showModal();
  });
}
