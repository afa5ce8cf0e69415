// The browser suite: the demo page (web/index.html, which uses only web/pollgate.js) in the system
// Chromium against the real gateway and PostgreSQL that harness.py started. Tests run in order, each on
// its own run id (tenant 7, demo-alice), and close their pages. Timing margins are wide on purpose: CI runs
// this on 2 cores right after the sanitizer suites.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';

import {
	ARTIFACTS, GW_URL, WEB_URL, answered, complete, demoUrl, field, held, launchChromium, makeRun, newWindow, openDemo, setProcessed,
	sleep, until, waitField,
} from './lib.js';

let B; // the browser

before(async () => {
	B = await launchChromium();
	console.log(`# Chromium ${B.version}; gateway ${GW_URL}; web ${WEB_URL}`);
});

after(async () => {
	if (B) await B.close();
});

/** Records, in the page, when the text of a card field last changed (Date.now()). */
function markChanges(page, card, f) {
	return page.evaluate(([c, n]) => {
		const el = document.querySelector(`#${c}-card [data-f="${n}"]`);
		window.__changedAt = 0;
		new MutationObserver(() => {
			window.__changedAt = Date.now();
		}).observe(el, { childList: true, characterData: true, subtree: true });
	}, [card, f]);
}

// -- 1-3: one page through a run's life

const RUN1 = 5001;
let P1 = null;

test('1. the demo page shows the run and the review pack', async () => {
	await makeRun(RUN1, 3);
	P1 = await openDemo(B, RUN1);
	const { page } = P1;
	await waitField(page, 'run', 'state', 'running');
	assert.equal(await field(page, 'run', 'counts'), '3 / 10 processed');
	assert.equal(await field(page, 'run', 'id'), `#${RUN1}`);
	assert.equal(await field(page, 'run', 'type'), 'inventory.sync');
	assert.equal(await page.getAttribute('#run-card', 'data-state'), 'running');
	assert.equal(await page.getAttribute('#run-card [data-f="bar"]', 'style'), 'width: 30%');
	// tenant 7's latest pack in db/demo.sql is #2, generating
	await waitField(page, 'pack', 'state', 'generating');
	assert.equal(await field(page, 'pack', 'title'), 'Pack #2');
	const r = P1.requests.find((x) => x.method === 'GET' && x.url.includes(`/v1/runs/${RUN1}`));
	assert.equal(r.headers.authorization, 'Bearer demo-alice');
	assert.match(r.url, /\?wait=25$/);
});

test('2. an UPDATE in PostgreSQL is on the page within a second', async () => {
	assert.ok(P1, 'test 1 opened the page');
	const { page } = P1;
	await until(async () => (await held('run')) === 1, 'the page\'s long-poll to be held');
	const took = [];
	for (const n of [5, 7]) {
		await markChanges(page, 'run', 'counts');
		const t0 = Date.now(); // before psql even starts: an upper bound of commit -> screen
		await setProcessed(RUN1, n);
		await waitField(page, 'run', 'counts', `${n} / 10`, 5000);
		took.push((await page.evaluate(() => window.__changedAt)) - t0);
	}
	console.log(`# UPDATE -> DOM: ${took.join(' ms, ')} ms`);
	for (const ms of took) assert.ok(ms < 1000, `shown ${ms} ms after the UPDATE`);
	fs.mkdirSync(ARTIFACTS, { recursive: true });
	await sleep(500); // the progress bar's CSS transition
	await page.screenshot({ path: path.join(ARTIFACTS, 'demo.png') });
});

test('3. after the terminal state no request reaches the gateway for that run', async () => {
	assert.ok(P1, 'test 1 opened the page');
	const { page, requests } = P1;
	await complete(RUN1);
	await waitField(page, 'run', 'state', 'succeeded', 5000);
	await waitField(page, 'run', 'status', 'finished (succeeded)', 5000);
	assert.equal(await page.evaluate(() => window.pollgateDemo.run.state), 'ended');
	await sleep(500);
	await page.screenshot({ path: path.join(ARTIFACTS, 'demo-finished.png') });
	const before = { gw: await answered('run'), page: requests.filter((r) => r.url.includes(`/v1/runs/${RUN1}`)).length };
	assert.ok(before.page >= 3, `the page long-polled before (${before.page} requests)`);
	await sleep(5000);
	const afterN = { gw: await answered('run'), page: requests.filter((r) => r.url.includes(`/v1/runs/${RUN1}`)).length };
	assert.deepEqual(afterN, before, 'no request for the run, at the gateway or in the page, in 5 s');
	assert.equal(await held('run'), 0);
	assert.deepEqual(P1.errors, [], 'no uncaught exception in the page');
	await page.close();
});

// -- 4: a hidden page

test('4. a hidden page sends nothing, and catches up at once when visible again', async () => {
	const RUN = 5002;
	await makeRun(RUN, 2);
	const { page, requests, errors } = await openDemo(B, RUN);
	await waitField(page, 'run', 'state', 'running');
	await waitField(page, 'pack', 'state', 'generating');
	await page.evaluate(() => {
		window.__flips = [];
		document.addEventListener('visibilitychange', () => window.__flips.push(document.visibilityState));
	});
	await until(async () => (await held('run')) === 1 && (await held('review_pack')) === 1, 'both long-polls to be held');

	// Another tab in the same window comes to the front: this one is hidden, as a user switching tabs.
	const cdp = await B.context.newCDPSession(page);
	const { targetId } = await cdp.send('Target.createTarget', { url: 'about:blank', newWindow: false, background: false });
	try {
		await until(() => page.evaluate(() => document.hidden), 'document.hidden to flip to true', 5000);
		// The library aborted both requests: the gateway sees the disconnects.
		await until(async () => (await held('run')) + (await held('review_pack')) === 0, 'the held requests to be gone', 5000);
		const before = { page: requests.length, run: await answered('run'), pack: await answered('review_pack') };
		await setProcessed(RUN, 8);
		await sleep(3000);
		assert.deepEqual({ page: requests.length, run: await answered('run'), pack: await answered('review_pack') }, before,
			'no request while hidden');
		assert.equal(await field(page, 'run', 'counts'), '2 / 10 processed', 'nothing delivered while hidden');
		assert.equal(await page.evaluate(() => window.pollgateDemo.run.state), 'paused');

		const t0 = Date.now();
		await page.bringToFront();
		await waitField(page, 'run', 'counts', '8 / 10', 5000);
		const took = Date.now() - t0;
		console.log(`# visible -> caught up: ${took} ms`);
		assert.ok(took < 1000, `caught up ${took} ms after becoming visible`);
		assert.equal(await page.evaluate(() => document.hidden), false);
		assert.deepEqual(await page.evaluate(() => window.__flips), ['hidden', 'visible']);
		const resumed = requests.filter((r) => r.method === 'GET' && r.url.includes(`/v1/runs/${RUN}`)).at(-1);
		assert.ok(resumed.at >= t0, 'a new request went out on becoming visible');
		assert.ok(resumed.headers['if-none-match'], 'conditional: If-None-Match with the last ETag');
		assert.deepEqual(errors, []);
	} finally {
		await cdp.send('Target.closeTarget', { targetId }).catch(() => {});
		await page.close();
	}
});

// -- 5: two tabs, one request

test('5. two tabs on one run hold one request between them; the other takes over when the leader closes', async () => {
	const RUN = 5003;
	await makeRun(RUN, 1);
	const a = await openDemo(B, RUN);
	await waitField(a.page, 'run', 'state', 'running');
	await until(async () => (await held('run')) === 1, 'tab A\'s long-poll to be held');
	const b = await openDemo(B, RUN);
	try {
		await waitField(b.page, 'run', 'state', 'running');
		assert.equal(await field(b.page, 'run', 'counts'), '1 / 10 processed');
		for (const t of [a, b]) assert.equal(await t.page.evaluate(() => document.hidden), false, 'both tabs visible');
		assert.equal(await a.page.evaluate(() => window.pollgateDemo.run.role), 'leader');
		assert.equal(await b.page.evaluate(() => window.pollgateDemo.run.role), 'follower');
		const samples = [];
		for (let i = 0; i < 6; i++) {
			samples.push(await held('run'));
			await sleep(300);
		}
		assert.deepEqual(samples, [1, 1, 1, 1, 1, 1], 'pollgate_waiters_held{kind="run"} with two tabs open');
		assert.equal(b.requests.filter((r) => r.url.includes(`/v1/runs/${RUN}`)).length, 0, 'tab B asked nothing');

		await setProcessed(RUN, 6);
		await Promise.all([a, b].map((t) => waitField(t.page, 'run', 'counts', '6 / 10', 2000)));
		assert.match(await field(b.page, 'run', 'status'), /shared by another tab/);

		await a.page.close(); // the leader's tab goes away: its lock is released, B takes over
		await until(() => b.page.evaluate(() => window.pollgateDemo.run.role === 'leader'), 'tab B to lead', 5000);
		await until(async () => (await held('run')) === 1, 'tab B\'s long-poll to be held', 5000);
		const t0 = Date.now();
		await setProcessed(RUN, 9);
		await waitField(b.page, 'run', 'counts', '9 / 10', 2000);
		assert.ok(Date.now() - t0 < 1500);
		assert.match(await field(b.page, 'run', 'status'), /this tab asked/);
		assert.deepEqual([...a.errors, ...b.errors], []);
	} finally {
		await a.page.close().catch(() => {});
		await b.page.close();
	}
});

// -- 6: 503 + Retry-After

test('6. a 503 with Retry-After: 2 is honoured: the next request comes 2 s later, not sooner', async () => {
	const RUN = 5004;
	await makeRun(RUN, 4);
	const page = await newWindow(B.browser, B.context);
	const times = [];
	await page.route((u) => u.href.startsWith(`${GW_URL}/v1/runs/${RUN}?`), async (route) => {
		if (route.request().method() !== 'GET') return route.continue();
		times.push(Date.now());
		if (times.length > 1) return route.continue();
		return route.fulfill({
			status: 503,
			headers: {
				'Retry-After': '2',
				'Content-Type': 'application/json',
				'Cache-Control': 'no-store',
				'Access-Control-Allow-Origin': WEB_URL,
				'Access-Control-Allow-Credentials': 'true',
				'Access-Control-Expose-Headers': 'ETag, Retry-After, X-Request-Id',
				Vary: 'Origin',
			},
			body: JSON.stringify({ error: { code: 'unavailable', message: 'The database is not reachable; retry later.' } }),
		});
	});
	try {
		await page.goto(demoUrl(RUN));
		await waitField(page, 'run', 'status', 'unavailable (503): retrying in 2 s', 5000);
		await waitField(page, 'run', 'state', 'running', 10_000);
		assert.ok(times.length >= 2);
		const gap = times[1] - times[0];
		console.log(`# 503 Retry-After: 2 -> next request after ${gap} ms`);
		assert.ok(gap >= 1950, `the next request came ${gap} ms later, sooner than Retry-After`);
		assert.ok(gap <= 4000, `the next request came ${gap} ms later (2 s + at most 0.5 s jitter expected)`);
		assert.equal(await field(page, 'run', 'counts'), '4 / 10 processed');
	} finally {
		await page.close();
	}
});

// -- 7: a 304 does not touch the DOM

test('7. a 304 cycle leaves the rendered cards untouched (MutationObserver counts 0)', async () => {
	const RUN = 5005;
	await makeRun(RUN, 5);
	const { page, requests, errors } = await openDemo(B, RUN, '&wait=2');
	try {
		await waitField(page, 'run', 'state', 'running');
		await waitField(page, 'pack', 'state', 'generating');
		await sleep(300); // let the first render's CSS-free DOM work settle
		await page.evaluate(() => {
			window.__mutations = 0;
			const mo = new MutationObserver((list) => {
				window.__mutations += list.length;
			});
			for (const id of ['run-card', 'pack-card']) {
				mo.observe(document.getElementById(id), { subtree: true, childList: true, characterData: true, attributes: true });
			}
		});
		const is304 = (r) => r.url().includes(`/v1/runs/${RUN}`) && r.status() === 304;
		await page.waitForResponse(is304, { timeout: 8000 });
		await page.waitForResponse(is304, { timeout: 8000 });
		await sleep(200);
		assert.equal(await page.evaluate(() => window.__mutations), 0, 'no DOM mutation across two 304s');
		const conditional = requests.filter((r) => r.method === 'GET' && r.url.includes(`/v1/runs/${RUN}?wait=2`) && r.headers['if-none-match']);
		assert.ok(conditional.length >= 2, 'they were conditional requests');

		await setProcessed(RUN, 6); // the observer does see a real change
		await waitField(page, 'run', 'counts', '6 / 10', 3000);
		assert.ok((await page.evaluate(() => window.__mutations)) > 0);
		assert.deepEqual(errors, []);
	} finally {
		await page.close();
	}
});
