// Senders: who sends mail as each domain (named services where known), with advice; the
// countries the mail comes from as a table; and, for admins, the named-sender mappings that
// add to the built-in catalog. Sender names come from admins and the catalog, domains from
// reports: text only (dom.js).
import { h, clear, num, pct, date, field, select, table, pager, badge, errorBox, empty, notice, confirmDialog, loading } from './dom.js';
import { get, post, del } from './api.js';
import { form, val } from './admin.js';
import { exportBar } from './exports.js';

const TYPES = [['', 'Any period'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']];

/** render: the senders list with its filters (in the URL), the country table and mappings. */
export async function render(main, params, { go, can }) {
  const page = Math.max(1, Number(params.get('page')) || 1);
  const f = {};
  for (const k of ['domain', 'days']) if (params.get(k)) f[k] = params.get(k);
  const domain = h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' });
  const days = select('days', TYPES, f.days);
  const apply = () => go('senders', { domain: domain.value.trim(), days: days.value });
  days.addEventListener('change', apply);
  const filters = h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(); } },
    h('div', { class: 'filter-row' }, field('Domain', domain), field('Period', days),
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'))));
  const listEl = h('div', { 'aria-busy': 'true' }, loading('Loading senders…'));
  const mapEl = h('div', {}, loading('Loading countries…'));
  const mappingsEl = can('admin') ? h('div', {}, loading()) : null;
  clear(main, h('h1', {}, 'Senders'), filters, exportBar(['sources-csv', 'sources-xlsx'], f), listEl,
    h('h2', {}, 'Where the mail comes from'), mapEl,
    mappingsEl ? [h('h2', {}, 'Named-sender mappings'), mappingsEl] : null);
  await Promise.all([senders(listEl, f, page, go), countries(mapEl, f), mappingsEl ? mappings(mappingsEl) : null]);
  main.dataset.state = 'ready';
}

async function senders(el, f, page, go) {
  try {
    const l = await get('/api/senders', { ...f, page, page_size: 50 });
    el.removeAttribute('aria-busy');
    clear(el, l.total === 0 ? empty(Object.keys(f).length ? 'No sender matches these filters.' : 'No senders yet: upload reports or connect a mailbox.') : [table('Senders', [
      { label: 'Sender', th: true, cell: (s) => h('span', { class: 'sender-name' }, s.sender || s.base_domain || s.as_org || 'unknown') },
      { label: 'Type', cell: (s) => badge(s.sender_type, 'What kind of sender this is') },
      { label: 'Domain', cell: (s) => s.domain },
      { label: 'Messages', cell: (s) => num(s.messages) },
      { label: 'IPs', cell: (s) => num(s.ips) },
      { label: 'DMARC pass', cell: (s) => h('span', { title: `${num(s.dmarc_pass_messages)} of ${num(s.messages)} messages passed DMARC` }, pct(s.dmarc_pass_rate)) },
      { label: 'DKIM aligned', cell: (s) => num(s.dkim_aligned_messages) },
      { label: 'SPF aligned', cell: (s) => num(s.spf_aligned_messages) },
      { label: 'Seen', cell: (s) => `${date(s.first_seen)} – ${date(s.last_seen)}` },
      { label: 'Advice', cell: (s) => (s.advice && s.advice.length ? h('ul', { class: 'results' }, s.advice.map((a) => h('li', { title: a.code, class: 'advice' }, a.text))) : '–') },
    ], l.items), pager(page, 50, l.total, (n) => go('senders', { ...f, page: n }))]);
  } catch (e) {
    clear(el, errorBox(e));
  }
}

async function countries(el, f) {
  try {
    const m = await get('/analytics/geolocation/map', f);
    const rows = [...(m.countries || [])].sort((a, b) => b.messages - a.messages);
    clear(el, rows.length === 0
      ? empty(m.total_ips ? `None of the ${num(m.total_ips)} addresses is placed yet: add the GeoIP databases (see /ready).` : 'No addresses yet.')
      : [h('p', { class: 'muted' }, `${num(m.mapped_ips)} of ${num(m.total_ips)} addresses placed; ${num(m.unmapped_ips)} unknown.`),
        table('Countries', [
          { label: 'Country', th: true, cell: (c) => c.country },
          { label: 'Messages', cell: (c) => num(c.messages) },
          { label: 'Addresses', cell: (c) => num(c.ips) },
          { label: 'DMARC pass', cell: (c) => pct(c.dmarc_pass_rate) },
        ], rows)]);
  } catch (e) {
    clear(el, errorBox(e));
  }
}

async function mappings(el) {
  const listEl = h('div', {}, loading());
  const load = async () => {
    try {
      const l = await get('/api/senders/mappings');
      clear(listEl, l.items.length === 0 ? empty('No mappings of your own: the built-in catalog names the common services.') : table('Mappings', [
        { label: 'Name', th: true, cell: (m) => h('span', { class: 'mapping-name' }, m.name) },
        { label: 'Match', cell: (m) => `${m.kind}: ${m.pattern}` },
        { label: 'Type', cell: (m) => m.type },
        { label: 'Actions', cell: (m) => h('button', { type: 'button', class: 'danger small', 'aria-label': `Delete mapping ${m.name}`, onclick: async () => {
          if (!(await confirmDialog(`Delete the mapping “${m.name}”?`))) return;
          try { await del(`/api/senders/mappings/${m.id}`); notice('Mapping deleted.'); load(); } catch (e) { notice(e.detail || e.message, 'error'); }
        } }, 'Delete') },
      ], l.items));
    } catch (e) {
      clear(listEl, errorBox(e));
    }
  };
  const add = form('Add or replace a mapping', [
    field('Match by', select('kind', [['domain', 'PTR domain'], ['asn', 'AS number']], 'domain')),
    field('Pattern', h('input', { name: 'pattern', required: true, placeholder: 'mailgun.net or 15169' }), 'Registrable domain of the PTR names, or the AS number'),
    field('Name', h('input', { name: 'name', required: true, maxlength: '200' })),
    field('Type', select('type', ['esp', 'mailbox_provider', 'marketing', 'crm', 'helpdesk', 'saas', 'security_gateway', 'hosting', 'isp'].map((t) => [t, t]), 'esp')),
  ], 'Save mapping', async (f) => {
    const m = await post('/api/senders/mappings', { kind: val(f, 'kind'), pattern: val(f, 'pattern'), name: val(f, 'name'), type: val(f, 'type') });
    f.reset();
    notice(`Mapping ${m.name} saved.`);
    load();
  });
  clear(el, listEl, add);
  await load();
}
