// Unit tests of the Laravel/Livewire glue (examples/laravel/resources/js/pollgate-livewire.js) on top of
// the real web/pollgate.js, with the fakes of fakes.js (virtual clock, scripted gateway, document) and a
// fake $wire: when it refreshes the Livewire component, the modal guard, hidden tabs, the end, and the
// renewal of an expired token.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { watch } from '../../../web/pollgate.js';
import { pollgateRefresh, registerPollgate, KEYS } from '../../../examples/laravel/resources/js/pollgate-livewire.js';
import { Clock, FakeGateway, FakeDocument, runBody, ERR, settle } from './fakes.js';

let seq = 0;

/** A fake Livewire $wire: counts $refresh() calls, keeps $watch callbacks, holds Filament's mountedActions. */
function fakeWire() {
	const wire = {
		refreshes: 0,
		mountedActions: [],
		watchers: {},
		$refresh() {
			this.refreshes++;
			return Promise.resolve();
		},
		$watch(prop, cb) {
			(this.watchers[prop] ||= []).push(cb);
		},
		set(prop, value) {
			this[prop] = value;
			for (const cb of this.watchers[prop] || []) cb(value);
		},
	};
	return wire;
}

function packBody(id, status) {
	const active = ['queued', 'generating'].includes(status);
	return {
		review_pack: id === null ? null : { id, workspace_id: 1, tenant_id: 7, operation_run_id: null, status, generated_at: null,
			expires_at: null, file_size: null, created_at: '2026-03-08T11:00:00Z', updated_at: '2026-03-08T11:00:00Z' },
		state: id === null ? 'none' : status,
		terminal: ['ready', 'failed', 'expired'].includes(status),
		poll: active ? { interval_ms: 10000 } : null,
	};
}

/** The component as Alpine would build it: $wire and $el attached, init() run. */
function mount(config, opts = {}) {
	const clock = new Clock();
	const gw = new FakeGateway(clock);
	const doc = opts.document ?? null;
	const wire = fakeWire();
	const renewCalls = [];
	const comp = pollgateRefresh(
		{ url: `http://app.test/pollgate/v1/runs/${++seq}`, ...config },
		{
			watch,
			now: () => clock.now(),
			fetch: async (url, init) => {
				renewCalls.push({ url, init });
				return opts.renew ? opts.renew(renewCalls.length) : new Response(null, { status: 500 });
			},
			options: { fetch: gw.fetch, clock, random: () => 0.5, document: doc, window: null, locks: null, share: false },
		},
	);
	comp.$wire = wire;
	comp.init();
	return { clock, gw, wire, comp, renewCalls };
}

test('registerPollgate registers the component under the name the Blade component uses', () => {
	const registered = {};
	registerPollgate({ data: (name, fn) => (registered[name] = fn) }, watch);
	assert.equal(typeof registered.pollgateRefresh, 'function');
	assert.equal(KEYS.run(runBody(1, 'running')), 'running|');
	assert.equal(KEYS.review_pack(packBody(9, 'ready')), '9|ready');
	assert.equal(KEYS.review_pack(packBody(null)), 'none');
});

test('refreshes only when the state the view shows changed, and stops at poll: null', async () => {
	const { gw, wire, comp } = mount({ kind: 'run', rendered: 'running|' });
	await settle();
	assert.equal(gw.requests.length, 1);
	assert.match(gw.requests[0].url, /\/pollgate\/v1\/runs\/\d+\?wait=25$/);
	assert.equal(gw.requests[0].credentials, 'same-origin');
	// The first answer is what the server rendered: no re-render.
	gw.last.respond(200, { etag: '"a"', body: runBody(1, 'running', 1) });
	await settle();
	assert.equal(wire.refreshes, 0);
	// Progress within the same status: still no re-render (the view's key is status|outcome).
	gw.last.respond(200, { etag: '"b"', body: runBody(1, 'running', 2) });
	await settle();
	assert.equal(wire.refreshes, 0);
	assert.equal(gw.last.inm, '"b"');
	// Finished: one refresh, then nothing is asked again.
	const done = runBody(1, 'succeeded');
	done.run.outcome = 'succeeded';
	gw.last.respond(200, { etag: '"c"', body: done });
	await settle();
	assert.equal(wire.refreshes, 1);
	assert.equal(comp.status, 'finished');
	const n = gw.requests.length;
	await settle();
	assert.equal(gw.requests.length, n, 'no request after poll: null');
	comp.destroy();
});

test('a first answer that differs from the render refreshes at once (a change raced the render)', async () => {
	const { gw, wire, comp } = mount({ kind: 'review_pack', rendered: 'none' });
	await settle();
	gw.last.respond(200, { etag: '"p"', body: packBody(9, 'queued') });
	await settle();
	assert.equal(wire.refreshes, 1);
	comp.destroy();
});

test('the modal guard: paused while a Filament action is mounted, caught up when it closes', async () => {
	const { gw, wire, comp } = mount({ kind: 'run', rendered: 'queued|' });
	await settle();
	gw.last.respond(200, { etag: '"q"', body: runBody(1, 'queued') });
	await settle();
	const held = gw.last;
	assert.equal(held.inm, '"q"');

	wire.set('mountedActions', [{ name: 'cancel' }]);
	await settle();
	assert.equal(held.aborted, true, 'the held request is aborted while the modal is open');
	assert.equal(comp.status, 'paused');
	const n = gw.requests.length;
	await settle();
	assert.equal(gw.requests.length, n, 'nothing is sent while the modal is open');
	assert.equal(wire.refreshes, 0);

	wire.set('mountedActions', []);
	await settle();
	assert.equal(comp.status, 'live');
	assert.equal(gw.requests.length, n + 1, 'asks again at once when the modal closes');
	gw.last.respond(200, { etag: '"r"', body: runBody(1, 'running') });
	await settle();
	assert.equal(wire.refreshes, 1, 'the change made meanwhile is applied once');
	comp.destroy();
});

test('a hidden tab sends nothing and catches up when shown', async () => {
	const doc = new FakeDocument(true);
	const { gw, wire, comp } = mount({ kind: 'run', rendered: 'running|' }, { document: doc });
	await settle();
	assert.equal(gw.requests.length, 0);
	doc.setHidden(false);
	await settle();
	assert.equal(gw.requests.length, 1);
	gw.last.respond(200, { etag: '"x"', body: runBody(1, 'running') });
	await settle();
	doc.setHidden(true);
	await settle();
	assert.equal(gw.last.aborted, true);
	assert.equal(wire.refreshes, 0);
	comp.destroy();
});

test('an expired token (401) is renewed once through renewUrl; a second 401 soon after ends it', async () => {
	const { gw, comp, renewCalls } = mount(
		{ kind: 'run', rendered: 'running|', token: 'old.jwt.token', renewUrl: '/app/pollgate-token' },
		{ renew: () => new Response(JSON.stringify({ token: 'new.jwt.token' }), { status: 200, headers: { 'Content-Type': 'application/json' } }) },
	);
	await settle();
	assert.equal(gw.last.auth, 'Bearer old.jwt.token');
	gw.last.respond(401, { body: ERR('unauthorized') });
	await settle();
	assert.equal(renewCalls.length, 1);
	assert.equal(renewCalls[0].url, '/app/pollgate-token');
	assert.equal(renewCalls[0].init.credentials, 'same-origin');
	assert.equal(gw.last.auth, 'Bearer new.jwt.token', 'watching again with the renewed token');
	gw.last.respond(401, { body: ERR('unauthorized') });
	await settle();
	assert.equal(renewCalls.length, 1, 'no second renewal within 30 s');
	assert.equal(comp.status, 'error');
	comp.destroy();
});

test('lost access (404) ends the watch and lets the app re-render once', async () => {
	const { gw, wire, comp } = mount({ kind: 'run', rendered: 'running|' });
	await settle();
	gw.last.respond(404, { body: ERR('not_found') });
	await settle();
	assert.equal(comp.status, 'error');
	assert.equal(wire.refreshes, 1);
	comp.destroy();
});
