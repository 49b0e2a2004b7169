// Cohort dashboard (served by the peer at /ui; see src/peer/dashboard.ts). Plain DOM, no framework; charts with uPlot (global
// `uPlot`, served from node_modules). Every peer-supplied string is written with textContent, never as HTML.
const root = document.getElementById('app');
const PEER = root.dataset.peer;
const POLL_MS = 1500;

// ---------- small DOM helpers ----------
function h(tag, attrs = {}, ...children) {
  const el = document.createElementNS(tag === 'svg' || attrs.svg ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'svg' || v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) if (c !== undefined && c !== null && c !== false) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const s = (tag, attrs = {}, ...children) => h(tag, { ...attrs, svg: true }, ...children);
const kib = (b) => (b >= 1048576 ? `${(b / 1048576).toFixed(1)} MiB` : `${(b / 1024).toFixed(1)} KiB`);
const short = (id) => (id ? id.slice(0, 12) : '');
const fmt = (x, d = 3) => (typeof x === 'number' && Number.isFinite(x) ? x.toFixed(d) : '–');
// a site's metric with the 95% interval it computed on its held-out data, and that data's size (src/scenario/report.ts: withInterval)
const withCi = (x, s, n) => `${fmt(x)}${s && typeof x === 'number' ? ` [${fmt(s.lo)}, ${fmt(s.hi)}]` : ''}${n ? ` n=${n}` : ''}`;

async function api(path, opts = {}) {
  const r = await fetch(path, {
    method: opts.method ?? 'GET', credentials: 'same-origin',
    headers: { 'x-cohort-dashboard': '1', ...(opts.body ? { 'content-type': 'application/json' } : {}) },
    body: opts.body ? JSON.stringify(opts.body) : undefined,
  });
  if (r.status === 401) { location.href = '/ui'; throw new Error('signed out'); }
  const j = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(j.message ? `${j.message}${j.hint ? ` (${j.hint})` : ''}` : `HTTP ${r.status}`);
  return j;
}

// ---------- layout ----------
const state = { scenario: scenarioFromPath(), overview: null, detail: null, plots: {}, auditVerdict: null, busy: false, reason: null };
function scenarioFromPath() { const m = /^\/ui\/scenario\/([0-9a-f]+)$/.exec(location.pathname); return m ? m[1] : null; }

const header = h('header', {}, h('h1', {}, 'Cohort'), h('span', { class: 'peer', 'data-testid': 'peer-name' }, PEER),
  h('span', { class: 'muted', id: 'consortium' }), h('form', { method: 'post', action: '/ui/logout', class: 'logout' }, h('button', { type: 'submit' }, 'Sign out')));
const topo = h('section', { class: 'card', id: 'topology' });
const scen = h('section', { class: 'card', id: 'scenarios' });
const detail = h('section', { class: 'card', id: 'detail' });
const audit = h('section', { class: 'card', id: 'audit' });
const errors = h('div', { class: 'error', role: 'alert', id: 'errors' });
root.replaceChildren(header, errors, h('div', { class: 'grid' }, topo, scen), detail, audit);

window.addEventListener('popstate', () => { state.scenario = scenarioFromPath(); state.detail = null; void refresh(); });
function open(id) { history.pushState({}, '', id ? `/ui/scenario/${id}` : '/ui'); state.scenario = id; state.detail = null; void refresh(); }

// ---------- topology ----------
function renderTopology(o) {
  document.getElementById('consortium').textContent = `consortium ${o.consortium} · roster v${o.rosterVersion} · ${o.self.device}`;
  const n = o.members.length, W = 360, H = 300, R = 110, cx = W / 2, cy = H / 2 + 5;
  const pos = new Map(o.members.map((m, i) => [m.peerId, [cx + R * Math.cos((2 * Math.PI * i) / n - Math.PI / 2), cy + R * Math.sin((2 * Math.PI * i) / n - Math.PI / 2)]]));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, class: 'topology', 'data-testid': 'topology', role: 'img', 'aria-label': 'peers and live connections' });
  const names = new Map(o.members.map((m) => [m.peerId, m.name]));
  // edges: this peer's own live links (solid) and those other members announced in their heartbeats (dashed)
  for (const e of o.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const who = e.seen === 'self' ? 'this peer\'s connection' : `heard from ${e.reportedBy.map((p) => names.get(p) ?? short(p)).join(', ')}`;
    svg.append(s('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: `edge ${e.seen}`, 'data-testid': 'edge', 'data-seen': e.seen,
      'data-ends': [names.get(e.from), names.get(e.to)].sort().join(' '), 'data-bytes': e.bytesOut + e.bytesIn },
      s('title', {}, `${names.get(e.from)} → ${names.get(e.to)}: ${kib(e.bytesOut)}; back: ${kib(e.bytesIn)} (${who})`)));
    svg.append(s('text', { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 3, class: 'edge-label' }, `${kib(e.bytesOut + e.bytesIn)}`));
  }
  for (const m of o.members) {
    const [x, y] = pos.get(m.peerId);
    svg.append(s('g', { class: `node ${m.self ? 'self' : m.connected ? 'up' : 'down'}`, 'data-testid': 'topology-node', 'data-name': m.name },
      s('circle', { cx: x, cy: y, r: 18 }), s('text', { x, y: y + 32, class: 'node-label' }, m.name)));
  }
  const rows = o.members.filter((m) => !m.self).map((m) => h('tr', { 'data-testid': 'member-row', 'data-peer': m.name },
    h('td', {}, m.name), h('td', {}, m.connected ? 'connected' : 'unreachable'), h('td', {}, m.roles.join(', ')),
    h('td', { class: 'num', 'data-testid': 'model-sent', 'data-bytes': m.modelBytesSent }, kib(m.modelBytesSent)),
    h('td', { class: 'num', 'data-testid': 'model-received', 'data-bytes': m.modelBytesReceived }, kib(m.modelBytesReceived)),
    h('td', { class: 'num', 'data-testid': 'wire-out', 'data-bytes': m.bytesOut }, kib(m.bytesOut)),
    h('td', { class: 'num', 'data-testid': 'wire-in', 'data-bytes': m.bytesIn }, kib(m.bytesIn)),
    h('td', {}, m.lastHeartbeatSecondsAgo === null ? '–' : `${m.lastHeartbeatSecondsAgo} s ago`)));
  const heard = o.edges.filter((e) => e.seen === 'heard').length;
  const legend = h('p', { class: 'legend' }, `solid: this peer's ${o.edges.length - heard} connection(s); dashed: ${heard} heard in other members' heartbeats. Edge labels: bytes both ways since the reporting peers started.`,
    o.broadcast ? ` Gossip broadcast by this peer: ${kib(o.broadcast.bytesOut)}.` : '');
  topo.replaceChildren(h('h2', {}, 'Network'), svg, legend, h('table', {}, h('thead', {}, h('tr', {}, [['peer'], ['link'], ['roles'],
    ['models sent', 'model bytes sent to this peer (audit log)'], ['models received', 'model bytes received from it (audit log)'],
    ['wire out', 'bytes sent to it since this peer started (net counters)'], ['wire in', 'bytes received from it since this peer started'], ['heartbeat']]
    .map(([t, title]) => h('th', { title }, t)))), h('tbody', {}, rows)));
}

// ---------- scenario list ----------
function renderScenarios(o) {
  const rows = o.scenarios.slice().sort((a, b) => String(b.launchedAt).localeCompare(String(a.launchedAt))).map((x) => h('tr', { 'data-testid': 'scenario-row', 'data-id': x.id, class: x.id.startsWith(state.scenario ?? '-') ? 'selected' : '' },
    h('td', {}, h('a', { href: `/ui/scenario/${x.id}`, onclick: (ev) => { ev.preventDefault(); open(x.id); } }, x.name)),
    h('td', { class: `state ${x.state}`, 'data-testid': 'scenario-state' }, x.state), h('td', { class: 'num' }, x.approvals), h('td', {}, x.mine)));
  scen.replaceChildren(h('h2', {}, `Scenarios (${o.scenarios.length})`),
    rows.length ? h('table', {}, h('thead', {}, h('tr', {}, ['name', 'state', 'approvals', 'this peer'].map((t) => h('th', {}, t)))), h('tbody', {}, rows)) : h('p', { class: 'muted' }, 'No scenario yet. Launch one with `cohort scenario launch FILE`.'),
    ...privacyBudget(o.privacy ?? []));
}

// the privacy ledger (docs/privacy.md): epsilon spent per dataset and what the lifetime budget leaves
function privacyBudget(list) {
  const shown = list.filter((b) => b.lifetime !== null || b.spent > 0);
  return shown.map((b) => h('p', { 'data-testid': 'privacy-budget' },
    `Privacy budget ${b.dataset}: epsilon ${b.spent} spent${b.reserved > 0 ? ` (${b.reserved} reserved by unfinished scenarios)` : ''}${b.lifetime === null ? ', no lifetime budget' : `, ${b.remaining} left of ${b.lifetime}`}`));
}

// ---------- one scenario ----------
function seriesByRound(history, names, key) {
  const sites = [...new Set(history.map((p) => p.site))].sort((a, b) => (names[a] ?? a).localeCompare(names[b] ?? b));
  const rounds = [...new Set(history.map((p) => p.round))].sort((a, b) => a - b);
  const last = new Map();
  for (const p of history) if (typeof p[key] === 'number') last.set(`${p.site}/${p.round}`, p[key]);
  return { sites, rounds, ys: sites.map((site) => rounds.map((r) => last.get(`${site}/${r}`) ?? null)) };
}

function plot(id, title, x, ys, labels, target) {
  const width = Math.min(560, Math.max(300, target.clientWidth - 20));
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];
  const opts = { title, width, height: 200, scales: { x: { time: false } }, axes: [{ label: 'round' }, {}],
    series: [{ label: 'round' }, ...labels.map((l, i) => ({ label: l, stroke: colors[i % colors.length], width: 2, spanGaps: true }))] };
  const p = new uPlot(opts, [x, ...ys], target);
  state.plots[id] = p;
  return p.root;
}

// The reason field outlives the re-render every POLL_MS: one element per shown scenario, put back into each new render, so what
// the operator types (and the caret) is not wiped between typing and clicking Reject (which then sent no reason: REASON_REQUIRED).
function reasonField(id) {
  if (state.reason?.id !== id) state.reason = { id, el: h('input', { type: 'text', placeholder: 'reason (required to reject)', maxlength: 2000, 'data-testid': 'reason', 'aria-label': 'reason' }) };
  return state.reason.el;
}

function decisionButtons(d) {
  const terminal = ['finished', 'failed', 'cancelled'].includes(d.view.state);
  const reason = reasonField(d.id);
  const act = (op) => async () => {
    if (state.busy) return;
    state.busy = true;
    try {
      await api(`/ui/api/scenarios/${d.hash}/${op}`, { method: 'POST', body: { hash: d.hash, ...(reason.value.trim() ? { reason: reason.value.trim() } : {}) } });
      errors.textContent = '';
    } catch (e) { errors.textContent = `${op}: ${e.message}`; }
    state.busy = false;
    void refresh();
  };
  const mine = d.view.approvals[d.self] ? 'approved' : d.view.rejections[d.self] ? 'rejected' : d.view.declines[d.self] ? 'declined' : 'pending';
  return h('div', { class: 'decide' }, h('span', { 'data-testid': 'my-decision' }, `this peer: ${mine}`), reason,
    h('button', { onclick: act('approve'), disabled: terminal || mine === 'approved', 'data-testid': 'approve' }, 'Approve'),
    h('button', { onclick: act('reject'), disabled: terminal || mine !== 'pending', 'data-testid': 'reject' }, 'Reject'),
    d.canCancel ? h('button', { onclick: act('cancel'), disabled: terminal, 'data-testid': 'cancel' }, 'Cancel') : null,
    h('span', { class: 'muted hash', title: 'the decision is bound to this manifest hash' }, `manifest ${short(d.hash)}…`));
}

function dropPlots() { for (const p of Object.values(state.plots)) p.destroy(); state.plots = {}; }

function renderDetail(d) {
  dropPlots();
  if (!d) { detail.replaceChildren(h('p', { class: 'muted' }, 'Choose a scenario to see its rounds, approvals and downloads.')); return; }
  const name = (p) => d.names[p] ?? short(p);
  const peers = Object.keys(d.names).sort((a, b) => name(a).localeCompare(name(b)));
  // an approval after the run plan was made is late: admitted from a later round, or not taking part at all
  const late = (p) => d.view.run && !d.view.run.participants.includes(p);
  const answer = (p) => d.view.approvals[p] ? [late(p) ? 'approved late' : 'approved', d.view.approvals[p]] : d.view.rejections[p] ? ['rejected', d.view.rejections[p]] : d.view.declines[p] ? ['declined', d.view.declines[p]] : ['pending', null];
  const approvals = h('table', { 'data-testid': 'approvals' }, h('thead', {}, h('tr', {}, ['peer', 'decision', 'reason', 'at', 'trains', 'round', 'metric', 'local-only', 'sent'].map((t) => h('th', {}, t)))),
    h('tbody', {}, peers.map((p) => {
      const [what, a] = answer(p);
      const pr = d.view.progress[p];
      return h('tr', { 'data-testid': 'approval-row', 'data-peer': name(p) }, h('td', {}, name(p)), h('td', { class: `decision ${what}`, 'data-testid': 'decision' }, what),
        h('td', { class: 'reason' }, a?.reason ?? ''), h('td', { class: 'muted' }, a?.at ? a.at.slice(11, 19) : ''),
        h('td', {}, d.participants.includes(p) ? 'yes' : ''), h('td', { class: 'num' }, pr ? pr.round : ''), h('td', { class: 'num' }, withCi(pr?.metric, pr?.scores?.[pr?.metricName], pr?.heldOut)),
        h('td', { class: 'num' }, withCi(pr?.localOnly, pr?.localOnlyScores?.[pr?.metricName])), h('td', { class: 'num' }, pr?.bytesSent ? kib(pr.bytesSent) : ''));
    })));
  const metricName = Object.values(d.view.progress).find((p) => p.metricName)?.metricName ?? 'metric';
  const m = seriesByRound(d.history, d.names, 'metric');
  const loss = seriesByRound(d.history, d.names, 'loss');
  const spread = m.rounds.map((_, i) => { const v = m.ys.map((y) => y[i]).filter((x) => x !== null); return v.length > 1 ? Math.max(...v) - Math.min(...v) : null; });
  const plots = h('div', { class: 'plots', 'data-testid': 'plots' });
  // moving the reason field out and back blurs it: give the focus and selection back to an operator who is typing
  const field = state.reason?.el, typing = field && document.activeElement === field ? [field.selectionStart, field.selectionEnd] : null;
  detail.replaceChildren(...[
    h('h2', {}, h('span', { 'data-testid': 'scenario-name' }, String(d.manifest.name ?? d.id)), ' ', h('span', { class: `state ${d.view.state}`, 'data-testid': 'detail-state' }, d.view.state)),
    h('p', { class: 'muted' }, `launched by ${d.authorName ?? short(d.author)} at ${d.launchedAt ?? '?'}; ${d.participants.length} participant(s)`, d.view.reason ? h('span', { class: 'reason', 'data-testid': 'end-reason' }, ` — ${d.view.reason}`) : null),
    decisionButtons(d), approvals, plots,
    d.privacy ? h('div', { class: 'privacy', 'data-testid': 'privacy' }, h('h3', {}, 'Privacy budget'), h('pre', {}, JSON.stringify(d.privacy, null, 1))) : null,
    h('p', { class: 'downloads' }, h('a', { href: `/ui/api/scenarios/${d.id}/model.onnx`, 'data-testid': 'download-model' }, 'model.onnx'), ' · ',
      h('a', { href: `/ui/api/scenarios/${d.id}/report.md`, 'data-testid': 'download-report' }, 'report.md')),
    h('details', {}, h('summary', {}, `audit entries of this scenario (${d.audit.length})`), auditTable(d.audit, d.names))].filter(Boolean));
  if (typing && field.isConnected) { field.focus(); field.setSelectionRange(...typing); }
  if (m.rounds.length) {
    const x = m.rounds;
    const p1 = h('div'), p2 = h('div'), p3 = h('div');
    plots.append(p1, p2, p3);
    plot('metric', `${metricName} per round`, x, m.ys, m.sites.map(name), p1);
    plot('consensus', `consensus: ${metricName} spread across sites`, x, [spread], ['max − min'], p2);
    plot('loss', 'training loss per round', loss.rounds, loss.ys, loss.sites.map(name), p3);
  }
}

// ---------- audit ----------
function auditTable(entries, names = {}) {
  return h('table', { class: 'audit' }, h('thead', {}, h('tr', {}, ['#', 'at', 'kind', 'to', 'bytes', 'what'].map((t) => h('th', {}, t)))),
    h('tbody', {}, entries.slice(-100).reverse().map((e) => h('tr', {}, h('td', { class: 'num' }, e.seq), h('td', { class: 'muted' }, String(e.at).slice(0, 19)),
      h('td', {}, e.kind), h('td', {}, names[e.to] ?? e.to), h('td', { class: 'num' }, e.bytes !== undefined ? kib(e.bytes) : ''), h('td', {}, `${e.what}${e.detail && e.kind !== 'round' ? ` — ${e.detail}` : ''}`)))));
}

async function renderAudit() {
  const names = Object.fromEntries((state.overview?.members ?? []).map((m) => [m.peerId, m.name]));
  const r = await api('/audit?limit=50');
  const verdict = h('span', { 'data-testid': 'verify-result', class: state.auditVerdict ? (state.auditVerdict.intact ?? state.auditVerdict.ok ? 'ok' : 'bad') : 'muted' },
    state.auditVerdict ? ((state.auditVerdict.intact ?? state.auditVerdict.ok) ? `chain verifies: ${state.auditVerdict.entries} entries intact` : `chain BROKEN: intact up to #${state.auditVerdict.intact_up_to}`) : 'not checked yet');
  const button = h('button', { 'data-testid': 'verify-chain', onclick: async () => { try { state.auditVerdict = await api('/audit/verify'); } catch (e) { errors.textContent = e.message; } void renderAudit(); } }, 'Verify chain');
  audit.replaceChildren(h('h2', {}, `Audit log (${r.total ?? r.entries.length} entries)`), h('p', {}, button, ' ', verdict), auditTable(r.entries, names));
}

// ---------- loop ----------
let auditTick = 0;
let refreshing = null;
function refresh() {
  // one refresh at a time; a request made meanwhile (a click) runs right after, so what it shows is never overwritten by older data
  if (refreshing) { refreshing.then(() => refresh()); return refreshing; }
  refreshing = refreshOnce().finally(() => { refreshing = null; });
  return refreshing;
}
async function refreshOnce() {
  try {
    state.overview = await api('/ui/api/overview');
    renderTopology(state.overview);
    renderScenarios(state.overview);
    const want = state.scenario;
    const d = want ? await api(`/ui/api/scenarios/${want}`) : null;
    if (want !== state.scenario) return;
    state.detail = d;
    renderDetail(d);
    if (auditTick++ % 4 === 0) await renderAudit();
    if (!state.busy && errors.textContent.startsWith('refresh')) errors.textContent = '';
  } catch (e) {
    if (e.message !== 'signed out') errors.textContent = `refresh: ${e.message}`;
  }
}
void refresh();
setInterval(() => { if (!document.hidden && !state.busy && !refreshing) void refresh(); }, POLL_MS);
