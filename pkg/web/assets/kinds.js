// The two other report kinds: SMTP TLS reports (RFC 8460) and DMARC failure reports (RFC 6591):
// each a rollup (charts and rankings) and a list under filters kept in the URL, and a detail.
// Every string here comes from a reporter or from a spoofed message: text only (dom.js); an
// additional-information URL is shown as text, never made a link.
import { h, clear, num, pct, date, dateTime, field, select, table, pager, badge, errorBox, empty, loading } from './dom.js';
import { get } from './api.js';
import { colours, drawThemed as draw } from './charts.js';

const PERIODS = [['', 'All time'], ['7', 'Last 7 days'], ['30', 'Last 30 days'], ['90', 'Last 90 days']];
const RESULTS = [['', 'Any'], ['pass', 'pass'], ['fail', 'fail']];

function pick(params, keys) {
  const f = {};
  for (const k of keys) if (params.get(k)) f[k] = params.get(k);
  return f;
}

/** subnav links the report-kind pages. */
function subnav(current) {
  return h('nav', { class: 'subnav', 'aria-label': 'Report kinds' }, [['tls', 'SMTP TLS reports'], ['failures', 'Failure reports']].map(([p, l]) =>
    h('a', { href: '#/' + p, 'aria-current': p === current ? 'page' : undefined }, l)));
}

// filterForm builds a filter form from [name, label, control] and navigates on submit.
function filterForm(controls, apply) {
  const read = () => Object.fromEntries(controls.map(([n, , c]) => [n, c.value.trim()]));
  for (const [, , c] of controls) if (c.tagName === 'SELECT') c.addEventListener('change', () => apply(read()));
  return h('form', { class: 'filters card', 'aria-label': 'Filters', onsubmit: (e) => { e.preventDefault(); apply(read()); } },
    h('div', { class: 'filter-row' }, controls.map(([, l, c]) => field(l, c)),
      h('div', { class: 'filter-actions' }, h('button', { type: 'submit' }, 'Apply'),
        h('button', { type: 'button', class: 'secondary', onclick: () => apply({}) }, 'Reset'))));
}

const stat = (label, value, tip) => h('div', { class: 'stat card', title: tip, tabindex: '0', role: 'group', 'aria-label': `${label}: ${value}. ${tip}` },
  h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value));

// chart draws one Chart.js chart in a captioned figure; answers the figure.
function chart(id, title, config, describe) {
  const canvas = h('canvas', { id, role: 'img', 'aria-label': `${title}. ${describe}` });
  const fig = h('figure', { class: 'chart card wide' }, h('figcaption', {}, title), h('div', { class: 'chart-box' }, canvas));
  return [fig, () => draw(canvas, config)];
}

// byDay sums per-day rows (one per day and domain) into one series per day.
function byDay(rows, fields) {
  const m = new Map();
  for (const r of rows || []) {
    const e = m.get(r.date) || Object.fromEntries(fields.map((f) => [f, 0]));
    for (const f of fields) e[f] += r[f];
    m.set(r.date, e);
  }
  return [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

const TLS_FILTERS = ['domain', 'org_name', 'days', 'source_ip'];

/** tls: the TLS rollup (sessions per day, failure types, MX hosts, domains) and the reports. */
export async function tls(main, params, { go }) {
  const f = pick(params, TLS_FILTERS);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const form = filterForm([
    ['domain', 'Policy domain', h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' })],
    ['org_name', 'Reporter', h('input', { name: 'org_name', value: f.org_name || '', placeholder: 'google.com' })],
    ['source_ip', 'Sending MTA IP', h('input', { name: 'source_ip', value: f.source_ip || '', placeholder: '192.0.2.1' })],
    ['days', 'Period', select('days', PERIODS, f.days)],
  ], (nf) => go('tls', nf));
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading TLS reports…'));
  clear(main, h('h1', {}, 'SMTP TLS reports'), subnav('tls'), form, body);
  let roll, list, threshold;
  try {
    // The enabled tls_failure rules' lowest threshold marks the domains that would raise an alert.
    const rules = get('/alerts/rules').then((r) => r.items.filter((x) => x.type === 'tls_failure' && x.enabled)).catch(() => []);
    let tlsRules;
    [roll, list, tlsRules] = await Promise.all([get('/api/rollup/tls', { ...f, limit: 10 }), get('/api/tls-reports', { ...f, page, page_size: 50 }), rules]);
    threshold = tlsRules.length ? Math.min(...tlsRules.map((x) => x.params.threshold)) : null;
  } catch (e) {
    clear(body, errorBox(e));
    main.dataset.state = 'ready';
    return;
  }
  body.removeAttribute('aria-busy');
  if (list.total === 0) {
    clear(body, empty(Object.keys(f).length ? 'No TLS report matches these filters.'
      : 'No SMTP TLS reports yet: publish a TLSRPT record (v=TLSRPTv1; rua=…) pointing at your mailbox or at /tlsrpt.'));
    main.dataset.state = 'ready';
    return;
  }
  const c = colours();
  const days = byDay(roll.days, ['successful_sessions', 'failed_sessions']);
  const [daysFig, drawDays] = chart('chart-tls-days', 'TLS sessions per day', {
    type: 'bar', data: { labels: days.map(([d]) => d), datasets: [
      { label: 'Successful', data: days.map(([, e]) => e.successful_sessions), backgroundColor: c.pass },
      { label: 'Failed', data: days.map(([, e]) => e.failed_sessions), backgroundColor: c.fail }] },
    options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
  }, `${days.length} days; ${num(roll.failed_sessions)} failed of ${num(roll.successful_sessions + roll.failed_sessions)} sessions.`);
  const types = roll.failure_types || [];
  const [typesFig, drawTypes] = chart('chart-tls-types', 'Failure types', {
    type: 'bar', data: { labels: types.map((t) => t.result_type), datasets: [{ label: 'Failed sessions', data: types.map((t) => t.failed_sessions), backgroundColor: c.fail }] },
    options: { indexAxis: 'y', scales: { x: { beginAtZero: true } } },
  }, types.map((t) => `${t.result_type}: ${num(t.failed_sessions)}`).join('; ') || 'No failures.');
  clear(body,
    h('section', { class: 'stats', 'aria-label': 'Summary' },
      stat('Reports', num(roll.reports), 'TLS reports for this selection'),
      stat('Successful sessions', num(roll.successful_sessions), 'TLS sessions that negotiated as the policy requires'),
      stat('Failed sessions', num(roll.failed_sessions), 'Sessions that failed: the sender could not deliver securely'),
      stat('Failure rate', pct(roll.failure_rate), 'Failed share of all sessions')),
    h('section', { class: 'charts', 'aria-label': 'Charts' }, daysFig, typesFig),
    h('div', { class: 'detail-grid' },
      h('section', { 'aria-labelledby': 'tls-dom-h' }, h('h2', { id: 'tls-dom-h' }, 'Domains, most failed first'),
        (roll.domains || []).length === 0 ? empty('None.') : table('Domains', [
          { label: 'Domain', th: true, cell: (d) => h('a', { href: '#/tls?domain=' + encodeURIComponent(d.domain) }, d.domain) },
          { label: 'Successful', cell: (d) => num(d.successful_sessions) },
          { label: 'Failed', cell: (d) => num(d.failed_sessions) },
          { label: 'Failure rate', cell: (d) => pct(d.failure_rate) },
          { label: 'Alert rule', cell: (d) => (threshold == null ? h('span', { class: 'muted', title: 'No enabled tls_failure rule' }, 'no rule')
            : d.failure_rate > threshold ? h('span', { class: 'badge badge-bad', title: `Above the tls_failure rule's threshold of ${pct(threshold)}` }, 'above')
              : h('span', { class: 'badge badge-ok', title: `Within the tls_failure rule's threshold of ${pct(threshold)}` }, 'within')) },
        ], roll.domains)),
      h('section', { 'aria-labelledby': 'tls-mx-h' }, h('h2', { id: 'tls-mx-h' }, 'MX hosts failing most'),
        (roll.top_mx_hosts || []).length === 0 ? empty('No failing MX host.') : table('MX hosts', [
          { label: 'MX host', th: true, cell: (m) => h('span', { class: 'mono wrap' }, m.receiving_mx_hostname || '(not named)') },
          { label: 'Failed sessions', cell: (m) => num(m.failed_sessions) },
        ], roll.top_mx_hosts))),
    h('h2', {}, 'Reports'),
    table('TLS reports', [
      { label: 'Period', th: true, cell: (r) => h('a', { href: `#/tls-report/${r.id}` }, `${date(r.date_begin)} – ${date(r.date_end)}`) },
      { label: 'Reporter', cell: (r) => h('span', { class: 'org wrap' }, r.organization_name) },
      { label: 'Policy domains', cell: (r) => (r.policy_domains || [r.policy_domain]).join(', ') },
      { label: 'Successful', cell: (r) => num(r.successful_sessions) },
      { label: 'Failed', cell: (r) => num(r.failed_sessions) },
      { label: 'Failure rate', cell: (r) => pct(r.failure_rate) },
      { label: 'Report ID', cell: (r) => h('span', { class: 'mono wrap' }, r.report_id) },
    ], list.items),
    pager(page, 50, list.total, (n) => go('tls', { ...f, page: n })));
  drawDays();
  drawTypes();
  main.dataset.state = 'ready';
}

const dl = (pairs) => h('dl', { class: 'kv' }, pairs.map(([k, v, tip]) => [h('dt', { title: tip }, k), h('dd', {}, v == null || v === '' ? '–' : v)]));

/** tlsDetail: one TLS report with its policies and their failure details. */
export async function tlsDetail(main, params, { arg }) {
  const r = await get(`/api/tls-reports/${Number(arg)}`);
  clear(main,
    h('p', {}, h('a', { href: '#/tls' }, '‹ All TLS reports')),
    h('h1', { class: 'wrap' }, `TLS report from ${r.organization_name || '?'}`),
    h('section', { class: 'card', 'aria-labelledby': 'tr-h' }, h('h2', { id: 'tr-h' }, 'Report'),
      dl([['Reporter', r.organization_name], ['Contact', r.contact_info], ['Report ID', r.report_id],
        ['Period', `${dateTime(r.date_begin)} – ${dateTime(r.date_end)}`], ['Successful sessions', num(r.successful_sessions)],
        ['Failed sessions', num(r.failed_sessions)], ['Failure rate', pct(r.failure_rate)], ['File', `ingest ${r.ingest_id}`]])),
    r.warnings && r.warnings.length ? h('section', { class: 'card warn-box', 'aria-labelledby': 'tw-h' }, h('h2', { id: 'tw-h' }, 'Warnings'),
      h('ul', {}, r.warnings.map((w) => h('li', {}, w)))) : null,
    (r.policies || []).map((p, i) => h('section', { class: 'policy', 'aria-labelledby': `pol-${i}` },
      h('h2', { id: `pol-${i}` }, `Policy ${i + 1}: ${p.policy_type} for ${p.policy_domain}`),
      dl([['Type', badge(p.policy_type, 'sts: MTA-STS; tlsa: DANE; no-policy-found: opportunistic TLS')], ['Domain', p.policy_domain],
        ['MX hosts', (p.mx_host || []).join(', ')], ['Policy', (p.policy_string || []).length ? h('pre', { class: 'mono wrap' }, p.policy_string.join('\n')) : null],
        ['Successful sessions', num(p.successful_sessions)], ['Failed sessions', num(p.failed_sessions)]]),
      (p.failure_details || []).length === 0 ? empty('No failure details.') : table(`Failure details of policy ${i + 1}`, [
        { label: 'Result', th: true, cell: (d) => badge(d.result_type, 'RFC 8460 result type') },
        { label: 'Sessions', cell: (d) => num(d.failed_session_count) },
        { label: 'Sending MTA', cell: (d) => h('span', { class: 'mono' }, d.sending_mta_ip || '–') },
        { label: 'Receiving MX', cell: (d) => h('span', { class: 'wrap' }, d.receiving_mx_hostname || '–') },
        { label: 'HELO', cell: (d) => d.receiving_mx_helo || '–' },
        { label: 'Receiving IP', cell: (d) => h('span', { class: 'mono' }, d.receiving_ip || '–') },
        { label: 'Reason code', cell: (d) => d.failure_reason_code || '–' },
        { label: 'Additional information', cell: (d) => h('span', { class: 'wrap' }, d.additional_information || '–') },
      ], p.failure_details))));
  main.dataset.state = 'ready';
}

const FAIL_FILTERS = ['domain', 'org_name', 'days', 'source_ip', 'source_ip_range', 'dkim_result', 'spf_result'];

/** failures: the failure-report rollup (per day, rankings) and the reports. */
export async function failures(main, params, { go }) {
  const f = pick(params, FAIL_FILTERS);
  const page = Math.max(1, Number(params.get('page')) || 1);
  const form = filterForm([
    ['domain', 'Domain', h('input', { name: 'domain', value: f.domain || '', placeholder: 'example.com' })],
    ['org_name', 'Reporter', h('input', { name: 'org_name', value: f.org_name || '', placeholder: 'google.com' })],
    ['source_ip', 'Source IP', h('input', { name: 'source_ip', value: f.source_ip || '', placeholder: '192.0.2.1' })],
    ['source_ip_range', 'Source range (CIDR)', h('input', { name: 'source_ip_range', value: f.source_ip_range || '', placeholder: '192.0.2.0/24' })],
    ['dkim_result', 'DKIM', select('dkim_result', RESULTS, f.dkim_result)],
    ['spf_result', 'SPF', select('spf_result', RESULTS, f.spf_result)],
    ['days', 'Period', select('days', PERIODS, f.days)],
  ], (nf) => go('failures', nf));
  const body = h('div', { 'aria-busy': 'true' }, loading('Loading failure reports…'));
  clear(main, h('h1', {}, 'Failure reports'), subnav('failures'), form, body);
  let roll, list;
  try {
    [roll, list] = await Promise.all([get('/api/rollup/failures', { ...f, limit: 10 }), get('/api/failure-reports', { ...f, page, page_size: 50 })]);
  } catch (e) {
    clear(body, errorBox(e));
    main.dataset.state = 'ready';
    return;
  }
  body.removeAttribute('aria-busy');
  if (list.total === 0) {
    clear(body, empty(Object.keys(f).length ? 'No failure report matches these filters.'
      : 'No failure reports yet: they come to the ruf= address of your DMARC record, one per failing message.'));
    main.dataset.state = 'ready';
    return;
  }
  const c = colours();
  const days = byDay(roll.days, ['reports']);
  const [daysFig, drawDays] = chart('chart-failure-days', 'Failure reports per day', {
    type: 'bar', data: { labels: days.map(([d]) => d), datasets: [{ label: 'Reports', data: days.map(([, e]) => e.reports), backgroundColor: c.fail }] },
    options: { scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  }, `${num(roll.reports)} reports over ${days.length} days.`);
  const rank = (title, rows, label) => h('section', { 'aria-label': title }, h('h2', {}, title),
    (rows || []).length === 0 ? empty('None.') : table(title, [
      { label, th: true, cell: (x) => h('span', { class: 'wrap' }, x.value || '(none)') },
      { label: 'Reports', cell: (x) => num(x.reports) },
    ], rows));
  clear(body,
    h('section', { class: 'stats', 'aria-label': 'Summary' },
      stat('Failure reports', num(roll.reports), 'One per failing message a receiver reported'),
      stat('Domains', num((roll.domains || []).length), 'Domains named by these reports (top 10)'),
      stat('Source IPs', num((roll.source_ips || []).length), 'Sending addresses (top 10)')),
    h('section', { class: 'charts', 'aria-label': 'Charts' }, daysFig),
    h('div', { class: 'detail-grid' },
      rank('By mechanism', roll.auth_failures, 'Failed'),
      rank('Top source IPs', roll.source_ips, 'Source IP'),
      rank('Top reporters', roll.reporters, 'Reporter')),
    h('h2', {}, 'Reports'),
    table('Failure reports', [
      { label: 'Arrived', th: true, cell: (r) => h('a', { href: `#/failure/${r.id}` }, dateTime(r.arrival_date || r.created_at)) },
      { label: 'Domain', cell: (r) => r.domain },
      { label: 'Source IP', cell: (r) => h('span', { class: 'mono' }, r.source_ip || '–') },
      { label: 'Failed', cell: (r) => badge(r.auth_failure || '–', 'What failed: dmarc, dkim, spf, bodyhash…') },
      { label: 'DKIM', cell: (r) => badge(r.dkim_result || '–', 'DKIM result in the report’s Authentication-Results') },
      { label: 'SPF', cell: (r) => badge(r.spf_result || '–', 'SPF result in the report’s Authentication-Results') },
      { label: 'Reporter', cell: (r) => r.reported_by || '–' },
      { label: 'Subject', cell: (r) => h('span', { class: 'wrap subject' }, r.subject || '–') },
    ], list.items),
    pager(page, 50, list.total, (n) => go('failures', { ...f, page: n })));
  drawDays();
  main.dataset.state = 'ready';
}

/** failureDetail: one failure report, its authentication results and the sample's header. */
export async function failureDetail(main, params, { arg }) {
  const r = await get(`/api/failure-reports/${Number(arg)}`);
  clear(main,
    h('p', {}, h('a', { href: '#/failures' }, '‹ All failure reports')),
    h('h1', { class: 'wrap' }, `Failure report for ${r.domain || '?'}`),
    h('p', { class: `card ${r.redacted ? 'banner-ok' : 'warn-box'}`, role: 'note', id: 'redaction' }, r.redacted
      ? 'Redacted: addresses are reduced to their domain and the message body was not kept (VIGIL_FAILURE_REDACT).'
      : 'Not redacted: this report keeps the addresses and body of a person’s message. Handle it as personal data.'),
    h('div', { class: 'detail-grid' },
      h('section', { class: 'card', 'aria-labelledby': 'fr-h' }, h('h2', { id: 'fr-h' }, 'Report'),
        dl([['Domain', r.domain], ['Source IP', r.source_ip], ['Arrived', dateTime(r.arrival_date)], ['Failed', r.auth_failure],
          ['Reporter', r.reported_by], ['Format', r.format], ['Feedback type', r.feedback_type], ['User agent', r.user_agent],
          ['Subject', h('span', { class: 'wrap' }, r.subject)], ['Delivery result', r.delivery_result], ['Disposition', r.disposition]])),
      h('section', { class: 'card', 'aria-labelledby': 'fa-h' }, h('h2', { id: 'fa-h' }, 'Authentication'),
        dl([['DKIM', badge(r.dkim_result || '–', 'DKIM result')], ['SPF', badge(r.spf_result || '–', 'SPF result')],
          ['DKIM domain', r.dkim_domain], ['DKIM identity', r.dkim_identity], ['DKIM selector', r.dkim_selector], ['SPF DNS', r.spf_dns],
          ['Identity alignment', r.identity_alignment], ['Mail from', r.original_mail_from],
          ['Rcpt to', (r.original_rcpt_to || []).join(', ')], ['Envelope ID', r.original_envelope_id],
          ['Reported URIs', (r.reported_uri || []).length ? h('ul', { class: 'results' }, r.reported_uri.map((u) => h('li', { class: 'wrap' }, u))) : null],
          ['Authentication-Results', (r.authentication_results || []).length
            ? h('ul', { class: 'results' }, r.authentication_results.map((a) => h('li', { class: 'mono wrap' }, a))) : null]]))),
    r.warnings && r.warnings.length ? h('section', { class: 'card warn-box', 'aria-labelledby': 'fw-h' }, h('h2', { id: 'fw-h' }, 'Warnings'),
      h('ul', {}, r.warnings.map((w) => h('li', {}, w)))) : null,
    h('h2', {}, 'Header of the reported message'),
    (r.sample_headers || []).length === 0 ? empty('The report carried no copy of the message header.') : table('Sample header', [
      { label: 'Field', th: true, cell: (x) => x.name },
      { label: 'Value', cell: (x) => h('span', { class: 'mono wrap' }, x.value) },
    ], r.sample_headers),
    r.sample_body != null ? [h('h2', {}, 'Body of the reported message'), h('pre', { class: 'mono wrap card' }, r.sample_body)] : null);
  main.dataset.state = 'ready';
}
