// The dashboard's shell: session, navigation, hash router, theme and help. Pages are modules
// exporting render(main, params, ctx) that may return a cleanup function.
import { h, clear, errorBox, notice, loading } from './dom.js';
import { session, login, logout, resume } from './api.js';
import { openHelp } from './help.js';
import * as overview from './overview.js';
import * as reports from './reports.js';
import * as upload from './upload.js';
import * as admin from './admin.js';
import * as alerts from './alerts.js';
import * as senders from './senders.js';
import * as kinds from './kinds.js';
import * as ml from './ml.js';
import * as exportsPage from './exports.js';

const ROLES = { viewer: 1, analyst: 2, admin: 3 };

// Every page: its hash path, its nav label, the least role that may open it.
const pages = [
  { path: 'overview', label: 'Overview', role: 'viewer', mod: overview },
  { path: 'reports', label: 'Reports', role: 'viewer', mod: reports },
  { path: 'upload', label: 'Upload', role: 'analyst', mod: upload },
  { path: 'files', label: 'Files', role: 'viewer', mod: { render: upload.files } },
  { path: 'senders', label: 'Senders', role: 'viewer', mod: senders },
  { path: 'tls', label: 'TLS & failures', role: 'viewer', mod: { render: kinds.tls } },
  { path: 'alerts', label: 'Alerts', role: 'viewer', mod: { render: alerts.list } },
  { path: 'insights', label: 'Insights', role: 'viewer', mod: { render: ml.anomalies } },
  { path: 'exports', label: 'Exports', role: 'viewer', mod: { render: exportsPage.page } },
  { path: 'keys', label: 'API keys', role: 'viewer', mod: { render: admin.keys } },
  { path: 'admin/users', label: 'Users', role: 'admin', mod: { render: admin.users } },
  { path: 'admin/mailboxes', label: 'Mailboxes', role: 'admin', mod: { render: admin.mailboxes } },
  { path: 'admin/audit', label: 'Audit log', role: 'admin', mod: { render: admin.audit } },
];
// Pages reached from others (a detail, a tab of a section) rather than from the menu.
const hidden = [
  { path: 'report', role: 'viewer', mod: { render: reports.detail } },
  { path: 'alert', label: 'Alert', role: 'viewer', mod: { render: alerts.detail } },
  { path: 'alerts/rules', label: 'Alert rules', role: 'viewer', mod: { render: alerts.rules } },
  { path: 'alerts/windows', label: 'Maintenance windows', role: 'viewer', mod: { render: alerts.windows } },
  { path: 'alerts/channels', label: 'Channels', role: 'admin', mod: { render: alerts.channels } },
  { path: 'failures', label: 'Failure reports', role: 'viewer', mod: { render: kinds.failures } },
  { path: 'tls-report', label: 'TLS report', role: 'viewer', mod: { render: kinds.tlsDetail } },
  { path: 'failure', label: 'Failure report', role: 'viewer', mod: { render: kinds.failureDetail } },
  { path: 'insights/models', label: 'Models', role: 'viewer', mod: { render: ml.models } },
  { path: 'insights/domain', label: 'Forecast and advice', role: 'viewer', mod: { render: ml.domain } },
  { path: 'exports/digests', label: 'Digests', role: 'viewer', mod: { render: exportsPage.digests } },
];
// section: the menu entry a hidden page belongs to.
const sections = { report: 'reports', alert: 'alerts', failures: 'tls', 'tls-report': 'tls', failure: 'tls' };
const section = (path) => sections[path] || path.split('/')[0];
// Pages whose path takes one argument: #/report/12.
const withArg = ['report', 'alert', 'tls-report', 'failure'];

export const can = (role) => session.me && ROLES[session.me.role] >= ROLES[role];

/** parseHash reads #/path/arg?query into {path, arg, params}. */
export function parseHash() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [p, q] = raw.split('?');
  const parts = (p || '').split('/').filter(Boolean);
  let path = parts.join('/');
  let arg = null;
  if (withArg.includes(parts[0]) && parts.length > 1) { path = parts[0]; arg = decodeURIComponent(parts[1]); }
  return { path: path || 'overview', arg, params: new URLSearchParams(q || '') };
}

/** go navigates to a page with params (an object or URLSearchParams). */
export function go(path, params) {
  const q = new URLSearchParams(params || {});
  for (const [k, v] of [...q]) if (v === '') q.delete(k);
  const s = q.toString();
  location.hash = '#/' + path + (s ? '?' + s : '');
}

let cleanup = null;
let rendering = 0;

async function route() {
  // A fresh <main> for every navigation: a page still drawing when the person moves on (its
  // answers arrive late) writes into the element it was given, detached by then, and never over
  // the next page, nor marks it ready.
  const old = document.getElementById('main');
  const main = old.cloneNode(false);
  old.replaceWith(main);
  if (cleanup) { try { cleanup(); } catch { /* page already gone */ } cleanup = null; }
  const seq = ++rendering;
  delete main.dataset.state; // pages set it to "ready" when drawn (the browser test waits on it)
  if (!session.me) { renderLogin(main); return; }
  const { path, arg, params } = parseHash();
  const page = [...pages, ...hidden].find((p) => p.path === path);
  renderNav(path);
  if (!page) {
    clear(main, h('h1', {}, 'Not found'), h('p', {}, 'There is no such page. '), h('a', { href: '#/overview' }, 'Go to the overview'));
    return;
  }
  if (!can(page.role)) {
    clear(main, h('h1', {}, 'Not allowed'), h('p', { role: 'alert' }, `This page needs the ${page.role} role; you are signed in as ${session.me.role}.`));
    return;
  }
  document.title = (page.label || 'Report') + ' · Vigil';
  clear(main, loading());
  try {
    const c = await page.mod.render(main, params, { arg, go, can });
    if (seq === rendering) cleanup = typeof c === 'function' ? c : null;
    else if (typeof c === 'function') c();
  } catch (e) {
    if (seq === rendering) clear(main, errorBox(e));
  }
}

function renderNav(current) {
  const nav = document.getElementById('nav');
  const items = pages.filter((p) => can(p.role)).map((p) =>
    h('a', { href: '#/' + p.path, 'aria-current': section(current) === p.path ? 'page' : undefined }, p.label));
  if (can('admin')) items.push(h('a', { href: '/monitoring/', target: '_blank', rel: 'noopener', title: 'Asynqmon: log in with any user name and an admin API key as the password' }, 'Queue monitor ↗'));
  clear(nav, ...items);
  const who = document.getElementById('who');
  clear(who,
    h('span', { class: 'me', title: session.me.email }, session.me.name || session.me.email, ' ', h('span', { class: 'badge badge-neutral', title: 'Your role' }, session.me.role)),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Help (press ?)', title: 'Help (press ?)', onclick: openHelp }, '?'),
    h('button', { type: 'button', class: 'icon', 'aria-label': 'Switch light or dark theme', title: 'Switch light or dark theme', onclick: toggleTheme }, '◐'),
    h('button', { type: 'button', class: 'secondary', onclick: doLogout }, 'Log out'));
}

async function doLogout() {
  await logout().catch(() => {});
  exportsPage.forgetExports();
  notice('You are logged out.');
  showLoggedOut();
}

function showLoggedOut(msg) {
  clear(document.getElementById('nav'));
  clear(document.getElementById('who'));
  if (msg) notice(msg, 'error');
  route();
}
session.onLogout = (msg) => { session.me = null; exportsPage.forgetExports(); showLoggedOut(msg); };

function renderLogin(main) {
  document.title = 'Log in · Vigil';
  clear(document.getElementById('nav'));
  clear(document.getElementById('who'));
  const err = h('div', { 'aria-live': 'assertive' });
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true, id: 'login-email' });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, id: 'login-password' });
  const btn = h('button', { type: 'submit' }, 'Log in');
  const form = h('form', { class: 'login card', onsubmit: async (e) => {
    e.preventDefault();
    btn.disabled = true;
    clear(err);
    try {
      await login(email.value.trim(), password.value);
      password.value = '';
      if (!location.hash || location.hash === '#/login') location.hash = '#/overview';
      route();
    } catch (ex) {
      clear(err, errorBox(ex));
    } finally {
      btn.disabled = false;
    }
  } },
  h('h1', {}, 'Log in to Vigil'),
  h('div', { class: 'field' }, h('label', { for: 'login-email' }, 'E-mail'), email),
  h('div', { class: 'field' }, h('label', { for: 'login-password' }, 'Password'), password),
  err, btn);
  clear(main, form);
  email.focus();
}

function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t;
  else delete document.documentElement.dataset.theme;
  window.dispatchEvent(new Event('vigil-theme'));
}
function toggleTheme() {
  const dark = document.documentElement.dataset.theme
    ? document.documentElement.dataset.theme === 'dark'
    : matchMedia('(prefers-color-scheme: dark)').matches;
  const t = dark ? 'light' : 'dark';
  localStorage.setItem('vigil.theme', t);
  applyTheme(t);
}

document.addEventListener('keydown', (e) => {
  const tag = (e.target.tagName || '').toLowerCase();
  if (e.key === '?' && !['input', 'textarea', 'select'].includes(tag) && !e.ctrlKey && !e.metaKey) {
    e.preventDefault();
    openHelp();
  }
});

window.addEventListener('hashchange', route);

async function start() {
  applyTheme(localStorage.getItem('vigil.theme'));
  if (await resume()) exportsPage.resumeExports();
  route();
}
start();
