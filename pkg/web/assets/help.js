// The help modal: what the dashboard's words mean. A native <dialog>: focus moves into it,
// Escape closes it and focus returns to where it was.
import { h } from './dom.js';

const sections = [
  ['DMARC', 'Domain-based Message Authentication, Reporting and Conformance (RFC 7489, RFC 9989). A domain publishes a policy in DNS (p=none, quarantine or reject); receivers check each message claiming to come from it and send aggregate reports of what they saw. A message passes DMARC when DKIM or SPF passes and is aligned with the From domain.'],
  ['SPF', 'Sender Policy Framework: the domain lists the servers allowed to send its mail. SPF checks the envelope sender (MAIL FROM), not the From header a person sees.'],
  ['DKIM', 'DomainKeys Identified Mail: the sending server signs the message with a key the signing domain publishes in DNS (the selector names the key). A valid signature proves the message was not changed and who signed it.'],
  ['Alignment', 'SPF or DKIM counts for DMARC only when its domain matches the From header domain: exactly (strict, adkim/aspf=s) or within the same organisational domain (relaxed, r). "Both", "DKIM only", "SPF only" and "neither" count messages by which of the two passed aligned.'],
  ['Disposition', 'What the receiver did with failing mail: none (delivered), quarantine (spam folder), reject, or pass (RFC 9990). An override reason (forwarded, mailing list, local policy) explains a disposition milder than the policy.'],
  ['Policy fields', 'p: the policy for the domain; sp: for its subdomains; np: for non-existent subdomains; pct: the share of failing mail the policy applies to; adkim/aspf: DKIM and SPF alignment mode; testing (t=y): the policy is being tested and not applied.'],
  ['Rates', 'Pass and fail rates are weighted by message count, not by record rows. A report spanning several days is spread over its days for daily charts.'],
  ['Keyboard', 'Tab moves between controls, Enter activates, Escape closes a dialog, and ? opens this help. Charts are also summarised in text for screen readers, and a click on a domain, source or organisation bar filters by it.'],
];

export function openHelp() {
  if (document.getElementById('help')) return;
  const d = h('dialog', { id: 'help', class: 'modal help', 'aria-labelledby': 'help-title' },
    h('h2', { id: 'help-title' }, 'Help: DMARC, SPF, DKIM and alignment'),
    h('dl', {}, sections.map(([t, d]) => [h('dt', {}, t), h('dd', {}, d)])),
    h('form', { method: 'dialog', class: 'actions' }, h('button', { type: 'submit', autofocus: true }, 'Close')));
  d.addEventListener('close', () => d.remove());
  document.body.appendChild(d);
  d.showModal();
}
