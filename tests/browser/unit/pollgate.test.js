// Unit tests of web/pollgate.js's decisions, under node --test with a virtual clock and a scripted fake
// gateway (fakes.js): what is delivered, when the next request goes out, and with which headers.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { watch, parseRetryAfter, backoffDelay, retryAfterDelay, PollgateError } from '../../../web/pollgate.js';
import { Clock, FakeGateway, FakeLocks, FakeDocument, runBody, ERR, settle } from './fakes.js';

let urlSeq = 0;
const GW = 'http://127.0.0.1:8080';

/** A watch on a fresh run URL with a virtual clock, fixed jitter (random() = 0.5) and recorded callbacks. */
function setup(opts = {}) {
	const clock = opts.clock || new Clock();
	const gw = opts.gw || new FakeGateway(clock);
	const log = { states: [], ends: [], errors: [] };
	const url = opts.url || `${GW}/v1/runs/${++urlSeq}`;
	const w = watch(url, {
		fetch: gw.fetch,
		clock,
		random: () => 0.5,
		document: null,
		window: null,
		locks: null,
		share: false,
		onState: (b, m) => log.states.push({ b, m }),
		onEnd: (b) => log.ends.push(b),
		onError: (e) => log.errors.push(e),
		...opts.options,
	});
	return { clock, gw, log, w, url };
}

test('helpers: Retry-After, backoff and its jitter', () => {
	assert.equal(parseRetryAfter('2'), 2000);
	assert.equal(parseRetryAfter(' 0 '), 0);
	assert.equal(parseRetryAfter(null), null);
	assert.equal(parseRetryAfter('soon'), null);
	assert.equal(parseRetryAfter('-1'), null);
	assert.equal(parseRetryAfter('1.5'), null);
	const now = Date.parse('2026-03-08T11:00:00Z');
	assert.equal(parseRetryAfter('Sun, 08 Mar 2026 11:00:05 GMT', now), 5000);
	assert.equal(parseRetryAfter('Sun, 08 Mar 2026 10:00:00 GMT', now), 0);

	const o = { backoffBaseMs: 1000, backoffMaxMs: 30000 };
	assert.deepEqual([1, 2, 3, 4, 5, 6, 7, 50].map((n) => backoffDelay(n, o, () => 1)), [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
	assert.deepEqual([1, 2, 3].map((n) => backoffDelay(n, o, () => 0)), [500, 1000, 2000]);
	assert.equal(retryAfterDelay(2000, () => 0), 2000);
	assert.equal(retryAfterDelay(2000, () => 1), 2500);
	assert.equal(retryAfterDelay(60000, () => 1), 65000);
});

test('the loop: If-None-Match with the last ETag, ?wait, the token; a 304 asks again at once', async () => {
	const { clock, gw, log, w, url } = setup({ options: { token: 'tok', wait: 20 }, url: `${GW}/v1/runs/7?wait=3&since=abc` });
	await settle();
	assert.equal(w.url, `${GW}/v1/runs/7`, 'wait and since are the library\'s own');
	assert.equal(gw.requests.length, 1);
	const r1 = gw.requests[0];
	assert.equal(r1.url, `${GW}/v1/runs/7?wait=20`);
	assert.equal(r1.inm, null);
	assert.equal(r1.auth, 'Bearer tok');
	assert.equal(r1.credentials, 'include');
	assert.equal(r1.cache, 'no-store');
	r1.respond(200, { etag: '"a"', body: runBody(7, 'running', 1) });
	await settle();
	assert.equal(log.states.length, 1);
	assert.equal(log.states[0].m.etag, '"a"');
	assert.equal(log.states[0].m.source, 'network');
	assert.equal(gw.requests.length, 2, 'asked again at once');
	assert.equal(gw.requests[1].inm, '"a"');
	gw.requests[1].respond(304, { etag: '"a"', after: 20000 });
	await clock.advance(20000);
	assert.equal(gw.requests.length, 3, 'a 304 at the end of the hold asks again at once');
	assert.equal(gw.requests[2].at, gw.requests[1].at + 20000);
	assert.equal(gw.requests[2].inm, '"a"');
	assert.equal(log.states.length, 1);
	assert.equal(log.errors.length, 0);
	w.stop();
	assert.ok(gw.requests[2].aborted, 'stop() aborts the request in flight');
	assert.deepEqual(await w.done, { reason: 'stopped' });
});

test('no flicker: a 200 with the ETag already delivered calls nothing', async () => {
	const { gw, log, w } = setup();
	gw.script.push(
		(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running', 1) }),
		(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running', 1) }),
		(r) => r.respond(200, { etag: '"b"', body: runBody(1, 'running', 2) }),
	);
	await settle();
	assert.deepEqual(log.states.map((s) => s.m.etag), ['"a"', '"b"']);
	assert.deepEqual(gw.requests.map((r) => r.inm), [null, '"a"', '"a"', '"b"']);
	w.stop();
});

test('poll: null delivers the final state, then onEnd, and no request is ever sent again', async () => {
	const { clock, gw, log, w } = setup();
	gw.script.push(
		(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running', 5) }),
		(r) => r.respond(200, { etag: '"b"', body: runBody(1, 'succeeded', 10), after: 3000 }),
	);
	await clock.advance(3000);
	assert.deepEqual(log.states.map((s) => s.b.state), ['running', 'succeeded']);
	assert.equal(log.ends.length, 1);
	assert.equal(log.ends[0].state, 'succeeded');
	assert.equal(w.state, 'ended');
	const n = gw.requests.length;
	assert.equal(n, 2);
	await clock.advance(3_600_000);
	w.pause();
	w.resume();
	await clock.advance(60_000);
	assert.equal(gw.requests.length, n, 'not one more request');
	assert.equal(log.ends.length, 1);
	assert.equal((await w.done).reason, 'end');
	w.stop();
});

for (const [status, code] of [[401, 'unauthorized'], [404, 'not_found'], [400, 'bad_request']]) {
	test(`${status} calls onError (final) and ends the loop`, async () => {
		const { clock, gw, log, w } = setup();
		gw.script.push(
			(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running') }),
			(r) => r.respond(status, { body: ERR(code, 'no'), headers: { 'X-Request-Id': 'rid-1' }, after: 500 }),
		);
		await clock.advance(500);
		assert.equal(log.errors.length, 1);
		const e = log.errors[0];
		assert.ok(e instanceof PollgateError);
		assert.equal(e.status, status);
		assert.equal(e.code, code);
		assert.equal(e.final, true);
		assert.equal(e.requestId, 'rid-1');
		assert.equal(log.ends.length, 0);
		await clock.advance(600_000);
		assert.equal(gw.requests.length, 2);
		assert.equal(w.state, 'ended');
		assert.equal((await w.done).reason, 'error');
		w.stop();
	});
}

for (const status of [503, 429]) {
	test(`${status} with Retry-After: the next request comes no sooner, with a little jitter`, async () => {
		const { clock, gw, log, w } = setup();
		gw.script.push((r) => r.respond(status, { body: ERR('unavailable'), headers: { 'Retry-After': '3' } }));
		await settle();
		assert.equal(log.errors.length, 1);
		assert.equal(log.errors[0].final, false);
		assert.equal(log.errors[0].retryInMs, 3375, '3 s + random() * 750 ms');
		await clock.advance(3374);
		assert.equal(gw.requests.length, 1, 'not before Retry-After + jitter');
		await clock.advance(1);
		assert.equal(gw.requests.length, 2);
		w.stop();
	});
}

test('Retry-After is still honoured across pause/resume (unlike a backoff)', async () => {
	const { clock, gw, w } = setup();
	gw.script.push((r) => r.respond(503, { body: ERR('unavailable'), headers: { 'Retry-After': '3' } }));
	await settle();
	await clock.advance(1000);
	w.pause();
	await clock.advance(500);
	w.resume();
	await clock.advance(1000);
	assert.equal(gw.requests.length, 1, 'resume() does not cut a Retry-After short');
	await clock.advance(875);
	assert.equal(gw.requests.length, 2);
	w.stop();
});

test('network errors back off exponentially with jitter, capped; an answer resets it', async () => {
	const { clock, gw, log, w } = setup();
	gw.fallback = (r) => r.fail(); // refused at once
	await settle();
	for (let i = 0; i < 8; i++) await clock.advance(25_000);
	const gaps = gw.requests.slice(1).map((r, i) => r.at - gw.requests[i].at);
	assert.deepEqual(gaps.slice(0, 7), [750, 1500, 3000, 6000, 12000, 22500, 22500], '0.75 x min(30 s, 1 s x 2^n)');
	assert.ok(log.errors.every((e) => !e.final && e.code === 'network_error' && e.retryInMs > 0));
	assert.equal(w.mode, 'long-poll', 'refused connections are not proxy cuts');
	gw.fallback = null;
	await clock.advance(25_000);
	gw.last.respond(200, { etag: '"a"', body: runBody(1, 'running') });
	await settle();
	gw.last.fail();
	await settle();
	const n = gw.requests.length;
	await clock.advance(749);
	assert.equal(gw.requests.length, n);
	await clock.advance(1);
	assert.equal(gw.requests.length, n + 1, 'back to the first step after an answer');
	w.stop();
});

test('502/504 three times in a row: plain polling at poll.interval_ms with wait=0, long-poll retried later', async () => {
	const { clock, gw, w } = setup({ options: { longPollRetryMs: 60_000 } });
	gw.script.push(
		(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running', 1, 2000) }),
		(r) => r.respond(502, { body: '<html>bad gateway</html>', after: 100 }),
		(r) => r.respond(504, { body: '<html>timeout</html>', after: 15000 }),
		(r) => r.respond(502, { after: 100 }),
	);
	gw.fallback = (r) => r.respond(304, { etag: '"a"' });
	await settle();
	assert.equal(w.mode, 'long-poll');
	await clock.advance(100 + 750 + 15000 + 1500 + 100);
	assert.equal(w.mode, 'polling');
	assert.deepEqual(gw.requests.slice(0, 4).map((r) => r.wait), [25, 25, 25, 25]);
	await clock.advance(3000 + 2000 * 5);
	const polls = gw.requests.slice(4);
	assert.ok(polls.length >= 5, `plain polls went out (${polls.length})`);
	assert.ok(polls.every((r) => r.wait === 0 && r.inm === '"a"'), 'wait=0, still conditional');
	const gaps = polls.slice(1).map((r, i) => r.at - polls[i].at);
	assert.ok(gaps.every((g) => g === 2000), `every poll.interval_ms: ${gaps}`);
	await clock.advance(60_000);
	assert.equal(gw.last.wait, 25, 'long-polling is tried again after longPollRetryMs');
	assert.equal(w.mode, 'long-poll');
	w.stop();
});

test('connections closed mid-hold three times in a row: plain polling; a full 304 in between resets the count', async () => {
	const { clock, gw, w } = setup();
	gw.script.push(
		(r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running', 1, 5000) }),
		(r) => r.fail(10_000), // a proxy with a 10 s read timeout closes
		(r) => r.fail(10_000),
		(r) => r.respond(304, { etag: '"a"', after: 25_000 }), // a real hold: resets
		(r) => r.fail(10_000),
		(r) => r.fail(10_000),
	);
	await clock.advance(10_000 + 750 + 10_000 + 1500 + 25_000 + 10_000 + 750 + 10_000 + 100);
	assert.equal(w.mode, 'long-poll', 'only two in a row since the last full hold');
	gw.script.push((r) => r.fail(10_000));
	await clock.advance(3000 + 10_000);
	assert.equal(w.mode, 'polling');
	gw.fallback = (r) => r.respond(304, { etag: '"a"' });
	await clock.advance(30_000);
	assert.equal(gw.last.wait, 0);
	w.stop();
});

test('a 304 answered at once to a long-poll never makes a tight loop', async () => {
	const { clock, gw, w } = setup();
	gw.script.push((r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running') }));
	gw.fallback = (r) => r.respond(304, { etag: '"a"' });
	await settle();
	await clock.advance(10_000);
	assert.ok(gw.requests.length <= 6, `${gw.requests.length} requests in 10 s`);
	w.stop();
});

test('a request nobody answers is abandoned after wait + grace and retried', async () => {
	const { clock, gw, log, w } = setup({ options: { wait: 5, graceMs: 2000 } });
	await settle();
	await clock.advance(6999);
	assert.equal(gw.requests.length, 1);
	await clock.advance(1);
	assert.ok(gw.requests[0].aborted);
	assert.equal(log.errors[0].code, 'timeout');
	await clock.advance(750);
	assert.equal(gw.requests.length, 2);
	w.stop();
});

test('pause() aborts the request in flight, sends nothing, calls nothing; resume() asks at once', async () => {
	const { clock, gw, log, w } = setup();
	gw.script.push((r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running') }));
	await settle();
	assert.equal(gw.requests.length, 2);
	w.pause();
	assert.equal(w.state, 'paused');
	assert.ok(gw.requests[1].aborted);
	await clock.advance(120_000);
	assert.equal(gw.requests.length, 2);
	assert.equal(log.errors.length, 0, 'an abort of ours is not an error');
	w.resume();
	await settle();
	assert.equal(gw.requests.length, 3);
	assert.equal(gw.requests[2].inm, '"a"');
	gw.requests[2].respond(200, { etag: '"b"', body: runBody(1, 'running', 3) });
	await settle();
	assert.equal(log.states.length, 2);
	w.stop();
});

test('a hidden document pauses (request aborted), and visible again asks at once', async () => {
	const doc = new FakeDocument(false);
	const { clock, gw, log, w } = setup({ options: { document: doc } });
	gw.script.push((r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running') }));
	await settle();
	doc.setHidden(true);
	assert.ok(gw.requests[1].aborted);
	assert.equal(w.state, 'paused');
	await clock.advance(300_000);
	assert.equal(gw.requests.length, 2);
	doc.setHidden(false);
	await settle();
	assert.equal(gw.requests.length, 3);
	assert.equal(gw.requests[2].inm, '"a"');
	assert.equal(log.states.length, 1);
	w.stop();

	const doc2 = new FakeDocument(true);
	const s2 = setup({ options: { document: doc2 } });
	await s2.clock.advance(10_000);
	assert.equal(s2.gw.requests.length, 0, 'a page opened hidden sends nothing');
	doc2.setHidden(false);
	await settle();
	assert.equal(s2.gw.requests.length, 1);
	s2.w.stop();
});

test('a body without an ETag: delivered once per distinct body, polled at the interval, not in a loop', async () => {
	const { clock, gw, log, w } = setup();
	gw.fallback = (r) => r.respond(200, { body: runBody(1, 'running', 1, 2000) });
	await settle();
	await clock.advance(10_000);
	assert.equal(log.states.length, 1);
	assert.ok(gw.requests.length <= 6, `${gw.requests.length}`);
	assert.ok(gw.requests.every((r) => r.inm === null));
	w.stop();
});

test('a callback that throws does not break the loop', async () => {
	const { gw, w } = setup({
		options: {
			onState: () => {
				throw new Error('page bug');
			},
		},
	});
	const err = console.error;
	console.error = () => {};
	try {
		gw.script.push((r) => r.respond(200, { etag: '"a"', body: runBody(1, 'running') }));
		await settle();
		assert.equal(gw.requests.length, 2);
	} finally {
		console.error = err;
		w.stop();
	}
});

// -- sharing between tabs: each "tab" is a watch with its own fake gateway (to count its requests), all on
// one clock, one FakeLocks and node's own BroadcastChannel.

function tab(shared, opts = {}) {
	const gw = new FakeGateway(shared.clock);
	const doc = opts.doc || null;
	return { gw, doc, ...setup({ clock: shared.clock, gw, url: shared.url, options: { share: true, locks: shared.locks, BroadcastChannel, document: doc, ...opts.options } }) };
}

test('tabs share one loop: a leader requests, followers (late ones too) get its answers; the end reaches all', async () => {
	const shared = { clock: new Clock(), locks: new FakeLocks(), url: `${GW}/v1/runs/${++urlSeq}` };
	const a = tab(shared);
	await settle();
	const b = tab(shared);
	await settle();
	assert.equal(a.w.role, 'leader');
	assert.equal(b.w.role, 'follower');
	assert.equal(a.gw.requests.length, 1);
	a.gw.requests[0].respond(200, { etag: '"a"', body: runBody(1, 'running', 1) });
	await settle();
	assert.equal(b.log.states.length, 1);
	assert.equal(b.log.states[0].m.source, 'tab');
	assert.equal(b.log.states[0].b.run.summary_counts.processed, 1);

	const c = tab(shared); // opens later: the leader answers its hello with the current state
	await settle();
	assert.equal(c.log.states.length, 1);
	assert.equal(c.log.states[0].m.etag, '"a"');

	a.gw.requests[1].respond(200, { etag: '"b"', body: runBody(1, 'running', 2) });
	await settle();
	assert.deepEqual([a, b, c].map((t) => t.log.states.length), [2, 2, 2]);
	assert.equal(b.gw.requests.length + c.gw.requests.length, 0, 'followers sent nothing');

	a.w.stop(); // the leader's tab closes: the next in line takes over, from the ETag it knows
	await settle();
	assert.ok(a.gw.requests[2].aborted);
	assert.equal(b.w.role, 'leader');
	assert.equal(b.gw.requests.length, 1);
	assert.equal(b.gw.requests[0].inm, '"b"');
	assert.equal(c.gw.requests.length, 0);

	b.gw.requests[0].respond(200, { etag: '"c"', body: runBody(1, 'succeeded', 10) });
	await settle();
	for (const t of [b, c]) {
		assert.equal(t.log.ends.length, 1);
		assert.equal(t.log.states.at(-1).b.state, 'succeeded');
		assert.equal(t.w.state, 'ended');
	}

	const d = tab(shared); // opens after the end: told by a tab that saw it, sends nothing
	await shared.clock.advance(60_000);
	assert.equal(d.log.ends.length, 1);
	assert.equal(d.log.states.length, 1);
	assert.equal(b.gw.requests.length + c.gw.requests.length + d.gw.requests.length, 1);
	for (const t of [b, c, d]) t.w.stop();
});

test('a hidden leader hands over to a visible tab; when it comes back it catches up from the channel', async () => {
	const shared = { clock: new Clock(), locks: new FakeLocks(), url: `${GW}/v1/runs/${++urlSeq}` };
	const a = tab(shared, { doc: new FakeDocument(false) });
	await settle();
	const b = tab(shared, { doc: new FakeDocument(false) });
	await settle();
	a.gw.requests[0].respond(200, { etag: '"a"', body: runBody(1, 'running', 1) });
	await settle();
	assert.equal(b.log.states.length, 1);

	a.doc.setHidden(true);
	await settle();
	assert.ok(a.gw.requests[1].aborted, 'the hidden leader\'s request is aborted');
	assert.equal(a.w.role, 'idle');
	assert.equal(b.w.role, 'leader');
	assert.equal(b.gw.requests.length, 1);
	assert.equal(b.gw.requests[0].inm, '"a"');

	b.gw.requests[0].respond(200, { etag: '"b"', body: runBody(1, 'running', 4) });
	await settle();
	assert.equal(b.log.states.length, 2);
	assert.equal(a.log.states.length, 1, 'no callback while hidden');

	a.doc.setHidden(false); // visible again: delivers what it heard meanwhile, without a request
	await settle();
	assert.equal(a.log.states.length, 2);
	assert.equal(a.log.states[1].m.etag, '"b"');
	assert.equal(a.w.role, 'follower');
	assert.equal(a.gw.requests.length, 2);

	b.doc.setHidden(true); // now b hides: a takes over
	await settle();
	assert.equal(a.w.role, 'leader');
	assert.equal(a.gw.requests.length, 3);
	assert.equal(a.gw.requests[2].inm, '"b"');

	a.doc.setHidden(true); // everyone hidden: nobody polls
	await shared.clock.advance(120_000);
	assert.equal(a.gw.requests.length + b.gw.requests.length, 5);
	a.w.stop();
	b.w.stop();
});

test('a final error of the leader reaches the followers, which end too', async () => {
	const shared = { clock: new Clock(), locks: new FakeLocks(), url: `${GW}/v1/runs/${++urlSeq}` };
	const a = tab(shared);
	await settle();
	const b = tab(shared);
	await settle();
	a.gw.requests[0].respond(404, { body: ERR('not_found', 'Not found.') });
	await settle();
	for (const t of [a, b]) {
		assert.equal(t.log.errors.length, 1);
		assert.equal(t.log.errors[0].code, 'not_found');
		assert.equal(t.log.errors[0].final, true);
		assert.equal(t.w.state, 'ended');
	}
	await shared.clock.advance(60_000);
	assert.equal(a.gw.requests.length + b.gw.requests.length, 1);
	const c = tab(shared); // opens later: told by a tab that saw the error
	await shared.clock.advance(1000);
	assert.equal(c.log.errors.length, 1);
	assert.equal(c.log.errors[0].code, 'not_found');
	assert.equal(c.gw.requests.length, 0);
	for (const t of [a, b, c]) t.w.stop();
});

test('different tokens never share a loop', async () => {
	const shared = { clock: new Clock(), locks: new FakeLocks(), url: `${GW}/v1/runs/${++urlSeq}` };
	const a = tab(shared, { options: { token: 'alice' } });
	const b = tab(shared, { options: { token: 'bob' } });
	await settle();
	assert.notEqual(a.w.key, b.w.key);
	assert.ok(!a.w.key.includes('alice'), 'no token in a lock or channel name');
	assert.equal(a.w.role, 'leader');
	assert.equal(b.w.role, 'leader');
	a.w.stop();
	b.w.stop();
});

test('without Web Locks or BroadcastChannel every tab runs its own loop', async () => {
	const { gw, w } = setup({ options: { share: true, locks: undefined, BroadcastChannel: null } });
	await settle();
	assert.equal(w.role, 'solo');
	assert.equal(gw.requests.length, 1);
	w.stop();
});

test('Web Locks that refuse (an opaque origin) leave the tab on its own loop', async () => {
	const locks = { request: () => Promise.reject(new DOMException('denied', 'SecurityError')) };
	const { gw, w } = setup({ options: { share: true, locks, BroadcastChannel } });
	await settle();
	assert.equal(w.role, 'solo');
	assert.equal(gw.requests.length, 1);
	w.stop();
});
