// demo.js — the demo page (index.html): a run's detail view and a tenant's review-pack card, kept live by
// pollgate.js alone. Settings come from the query string, as `make run` prints them:
//
//   ?api=http://127.0.0.1:8080   the gateway (default: this page's host, port 8080)
//   &token=demo-alice            a bearer token (default: none, the pollgate_token cookie is sent)
//   &run=42&tenant=7             what to watch
//   &wait=25                     seconds a request may be held (default: the library's, 25)
//
// The cards are only written from onState/onEnd/onError, and a field only when its text changes, so a
// 304 (no callback) never touches the page.
import { watch } from './pollgate.js';

const q = new URLSearchParams(location.search);
const api = (q.get('api') || `${location.protocol}//${location.hostname}:8080`).replace(/\/+$/, '');
const token = q.get('token') || undefined;
const runId = q.get('run') || '42';
const tenantId = q.get('tenant') || '7';
const wait = /^\d+$/.test(q.get('wait') || '') ? Number(q.get('wait')) : undefined;

const $ = (sel) => document.querySelector(sel);
const runCard = $('#run-card');
const packCard = $('#pack-card');

/** Sets a field's text (data-f="name" inside card) only when it differs. */
function put(card, name, text) {
	const el = card.querySelector(`[data-f="${name}"]`);
	const t = text === null || text === undefined || text === '' ? '–' : String(text);
	if (el && el.textContent !== t) el.textContent = t;
}

function setAttr(el, name, value) {
	if (el.getAttribute(name) !== value) el.setAttribute(name, value);
}

const when = (iso) => (iso ? new Date(iso).toLocaleString([], { dateStyle: 'medium', timeStyle: 'medium' }) : null);
const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });

function size(bytes) {
	if (typeof bytes !== 'number') return null;
	if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`;
	if (bytes >= 1 << 10) return `${(bytes / (1 << 10)).toFixed(0)} KB`;
	return `${bytes} B`;
}

function origin(meta) {
	return meta.source === 'tab' ? 'shared by another tab' : 'this tab asked';
}

function status(card, text, kind) {
	put(card, 'status', text);
	setAttr(card.querySelector('[data-f="status"]'), 'data-kind', kind);
}

function errorText(err) {
	if (err.final) return `stopped: ${err.code}${err.status ? ` (${err.status})` : ''} — ${err.message}`;
	const s = Math.max(1, Math.round(err.retryInMs / 1000));
	return `${err.code}${err.status ? ` (${err.status})` : ''}: retrying in ${s} s`;
}

// -- the run

function renderRun(body, meta) {
	const r = body.run || {};
	const c = r.summary_counts || {};
	put(runCard, 'state', body.state);
	setAttr(runCard, 'data-state', body.state);
	put(runCard, 'type', r.type);
	const total = Number.isInteger(c.total) ? c.total : null;
	const done = Number.isInteger(c.processed) ? c.processed : null;
	put(runCard, 'counts', total !== null && done !== null ? `${done} / ${total} processed` : null);
	const pct = total ? Math.min(100, Math.round((100 * (done || 0)) / total)) : body.terminal ? 100 : 0;
	setAttr(runCard.querySelector('[data-f="bar"]'), 'style', `width: ${pct}%`);
	put(runCard, 'created', when(r.created_at));
	put(runCard, 'started', when(r.started_at));
	put(runCard, 'completed', when(r.completed_at));
	put(runCard, 'outcome', r.outcome);
	const ul = runCard.querySelector('[data-f="failures"]');
	const items = Array.isArray(r.failure_summary) ? r.failure_summary : [];
	const text = items.map((f) => `${f.code}: ${f.message}`);
	if (JSON.stringify([...ul.children].map((li) => li.textContent)) !== JSON.stringify(text)) {
		ul.replaceChildren(...text.map((t) => Object.assign(document.createElement('li'), { textContent: t })));
	}
	status(runCard, `live · updated ${clock(meta.receivedAt)} (${origin(meta)})`, 'live');
}

function startRun() {
	put(runCard, 'id', `#${runId}`);
	const w = watch(`${api}/v1/runs/${encodeURIComponent(runId)}`, {
		token,
		wait,
		onState: renderRun,
		onEnd: (body) => status(runCard, `finished (${body.state}) · no more requests`, 'end'),
		onError: (err) => {
			status(runCard, errorText(err), err.final ? 'fatal' : 'retry');
			if (err.final) setAttr(runCard, 'data-state', 'error');
		},
	});
	return w;
}

// -- the tenant's review pack

function renderPack(body, meta) {
	const p = body.review_pack;
	put(packCard, 'state', body.state);
	setAttr(packCard, 'data-state', body.state);
	put(packCard, 'title', p ? `Pack #${p.id}` : 'No review pack yet');
	put(packCard, 'run', p && p.operation_run_id ? `#${p.operation_run_id}` : null);
	put(packCard, 'created', when(p && p.created_at));
	put(packCard, 'generated', when(p && p.generated_at));
	put(packCard, 'expires', when(p && p.expires_at));
	put(packCard, 'size', size(p && p.file_size));
	status(packCard, `live · updated ${clock(meta.receivedAt)} (${origin(meta)})`, 'live');
}

let pack = null;

function startPack() {
	put(packCard, 'tenant', tenantId);
	$('#rewatch-pack').hidden = true;
	pack = watch(`${api}/v1/tenants/${encodeURIComponent(tenantId)}/review-pack`, {
		token,
		wait,
		onState: renderPack,
		onEnd: (body) => {
			status(packCard, `finished (${body.state}) · no more requests`, 'end');
			$('#rewatch-pack').hidden = false;
		},
		onError: (err) => {
			status(packCard, errorText(err), err.final ? 'fatal' : 'retry');
			if (err.final) setAttr(packCard, 'data-state', 'error');
		},
	});
	demo.pack = pack;
	return pack;
}

// -- page

const demo = { api, run: null, pack: null };
window.pollgateDemo = demo; // for the browser tests and the curious: the two watch handles

$('#api').textContent = api;
$('#who').textContent = token ? `token ${token}` : 'cookie credentials';
$('#run-input').value = runId;

demo.run = startRun();
startPack();

$('#rewatch-pack').addEventListener('click', () => {
	pack.stop();
	startPack();
});

let paused = false;
$('#pause').addEventListener('click', () => {
	paused = !paused;
	for (const w of [demo.run, demo.pack]) (paused ? w.pause() : w.resume());
	$('#pause').textContent = paused ? 'Resume updates' : 'Pause updates';
	document.body.classList.toggle('paused', paused);
});

$('#run-form').addEventListener('submit', (e) => {
	e.preventDefault();
	const v = $('#run-input').value.trim();
	if (!/^\d+$/.test(v)) return;
	const next = new URLSearchParams(location.search);
	next.set('run', v);
	location.search = next.toString();
});
