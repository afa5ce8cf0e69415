// Helpers of the browser suite (run by harness.py, which sets GW_URL, WEB_URL, PG*, PSQL, ARTIFACTS).
import { spawn, execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

export const GW_URL = process.env.GW_URL;
export const WEB_URL = process.env.WEB_URL;
export const ARTIFACTS = process.env.ARTIFACTS || path.resolve('../../build/browser');
if (!GW_URL || !WEB_URL) throw new Error('run me through tests/browser/harness.py (GW_URL and WEB_URL are not set)');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// The flags this machine's Chromium needs: root (no sandbox), no GPU, and nothing that calls home (the
// network is closed; background connections would only fail).
const FLAGS = ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
	'--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-default-browser-check',
	'--window-size=1100,820', '--remote-debugging-port=0'];

/**
 * Starts the system Chromium (never a downloaded one) and attaches Playwright over CDP.
 *
 * Why not chromium.launch(): Playwright turns on focus emulation for every page it creates, which keeps
 * every page "visible" — document.hidden would never flip. Attached with noDefaults, its default context
 * leaves pages alone, so a tab opened over another one really hides it, as in a user's browser.
 */
export async function launchChromium() {
	const exe = process.env.CHROMIUM || '/usr/bin/chromium';
	const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pollgate-chromium-'));
	const proc = spawn(exe, [...FLAGS, `--user-data-dir=${dir}`, 'about:blank'], { stdio: ['ignore', 'ignore', 'pipe'] });
	const exited = new Promise((r) => proc.once('exit', r)); // from the start: an early exit is never missed
	let errText = '';
	const ws = await new Promise((resolve, reject) => {
		const timer = setTimeout(() => reject(new Error(`${exe} did not start within 30 s:\n${errText.slice(-2000)}`)), 30_000);
		proc.stderr.on('data', (d) => {
			errText += d;
			const m = errText.match(/DevTools listening on (ws:\/\/\S+)/);
			if (m) {
				clearTimeout(timer);
				resolve(m[1]);
			}
		});
		proc.on('exit', (code) => {
			clearTimeout(timer);
			reject(new Error(`${exe} exited ${code}:\n${errText.slice(-2000)}`));
		});
	}).catch(async (e) => {
		await stopChromium(proc, exited);
		removeProfile(dir);
		throw e;
	});
	const browser = await chromium.connectOverCDP(ws, { noDefaults: true });
	const context = browser.contexts()[0];
	return {
		browser,
		context,
		version: browser.version(),
		async close() {
			for (const p of context.pages()) await p.close().catch(() => {});
			await browser.close().catch(() => {}); // over CDP this only disconnects: Chromium still runs
			await stopChromium(proc, exited);
			removeProfile(dir);
		},
	};
}

/*
 * Stopping Chromium without racing it for its profile.
 *
 * Chromium is a tree of processes (zygote, renderers, the network and storage services), and the
 * browser process's exit does not wait for all of them: a service may still be writing into the profile
 * (Default/...) for a moment after, and a SIGKILL of the browser process alone leaves the others running.
 * Removing the profile meanwhile fails with ENOTEMPTY (a file appeared in a directory being removed). So
 * the whole tree is followed through /proc while it lives (a child reparented to init is still
 * remembered), and the profile is removed only once every process of it is gone.
 */

/** {pid, start} of `pid` (start: its start time in clock ticks, so a reused pid is not mistaken for it),
 *  its state letter and its parent pid; null when there is no such process. */
function procStat(pid) {
	let text;
	try {
		text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
	} catch {
		return null;
	}
	// "pid (comm) state ppid ..."; comm may hold spaces and parentheses: fields are counted after the last ')'.
	const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
	return { pid, state: f[0], ppid: Number(f[1]), start: f[19] };
}

/** Every process now running whose parent is in `parents` (a Set of pids), by one pass over /proc. */
function childrenOf(parents) {
	const out = [];
	for (const name of fs.readdirSync('/proc')) {
		if (!/^[0-9]+$/.test(name)) continue;
		const st = procStat(Number(name));
		if (st && parents.has(st.ppid)) out.push(st);
	}
	return out;
}

/** True while the process `t` ({pid, start}) still runs (a zombie writes nothing: it counts as gone). */
function alive(t) {
	const st = procStat(t.pid);
	return st !== null && st.start === t.start && st.state !== 'Z';
}

/** Adds to `tree` (Map pid -> {pid, start}) every live descendant of the live processes in it. */
function followTree(tree) {
	for (;;) {
		const live = new Set([...tree.values()].filter(alive).map((t) => t.pid));
		const fresh = childrenOf(live).filter((c) => !tree.has(c.pid));
		if (fresh.length === 0) return;
		for (const c of fresh) tree.set(c.pid, c);
	}
}

function killAll(tree, signal) {
	for (const t of tree.values()) {
		if (alive(t)) {
			try {
				process.kill(t.pid, signal);
			} catch {
				// gone meanwhile
			}
		}
	}
}

/**
 * SIGTERM to the browser process (Chromium's orderly shutdown), then wait until it and every process it
 * started have exited: SIGKILL to the whole tree after 15 s, and give up waiting after 30 s.
 */
async function stopChromium(proc, exited) {
	const tree = new Map();
	const self = proc.pid !== undefined ? procStat(proc.pid) : null;
	if (self) tree.set(self.pid, self);
	followTree(tree);
	const hasExited = () => proc.exitCode !== null || proc.signalCode !== null;
	if (!hasExited()) proc.kill('SIGTERM');
	const t0 = Date.now();
	let killed = false;
	for (;;) {
		followTree(tree); // a process started during the shutdown is waited for too
		const left = [...tree.values()].filter(alive);
		if (hasExited() && left.length === 0) break;
		if (!killed && Date.now() - t0 > 15_000) {
			killAll(tree, 'SIGKILL');
			killed = true;
		}
		if (Date.now() - t0 > 30_000) {
			console.warn(`# Chromium: processes ${left.map((t) => t.pid).join(' ')} still there 30 s after SIGTERM`);
			break;
		}
		await (hasExited() ? sleep(50) : Promise.race([exited, sleep(50)]));
	}
}

/** Removes the profile; a failure is reported, not thrown (a leftover temporary directory is no test result). */
function removeProfile(dir) {
	try {
		fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
	} catch (e) {
		console.warn(`# could not remove the Chromium profile ${dir}: ${e.message}`);
	}
}

const execFileP = promisify(execFile);

/** Runs SQL as the superuser; returns psql's unaligned, tuples-only output. */
export async function sql(query) {
	const { stdout } = await execFileP(process.env.PSQL || 'psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', query]);
	return stdout.trim();
}

/** A run of tenant 7 (demo data: demo-alice sees it), `running` for 5 minutes with `processed` of 10. */
export async function makeRun(id, processed = 3) {
	await sql(`INSERT INTO operation_runs (id, workspace_id, tenant_id, user_id, type, status, context, summary_counts,
	           created_at, started_at) VALUES (${id}, 1, 7, 1, 'inventory.sync', 'running', '{}',
	           '{"total": 10, "processed": ${processed}}', now() - interval '5 minutes', now() - interval '5 minutes')`);
}

export const setProcessed = (id, n) =>
	sql(`UPDATE operation_runs SET summary_counts = '{"total": 10, "processed": ${n}}' WHERE id = ${id}`);

export const complete = (id) =>
	sql(`UPDATE operation_runs SET status = 'completed', outcome = 'succeeded', completed_at = now(),
	     summary_counts = '{"total": 10, "processed": 10}' WHERE id = ${id}`);

/** The gateway's /metrics: value(name, labels) sums every series of `name` whose labels include those. */
export async function metrics() {
	const text = await (await fetch(`${GW_URL}/metrics`)).text();
	const series = [];
	for (const line of text.split('\n')) {
		const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/);
		if (!m) continue;
		const labels = Object.fromEntries([...(m[2] || '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
		series.push({ name: m[1], labels, value: Number(m[3]) });
	}
	return {
		value: (name, want = {}) =>
			series.filter((s) => s.name === name && Object.entries(want).every(([k, v]) => s.labels[k] === String(v)))
				.reduce((a, s) => a + s.value, 0),
	};
}

/** Answers (any status) the gateway gave on a route ('run', 'review_pack'). */
export const answered = async (route) => (await metrics()).value('pollgate_requests_total', { route });
/** Requests held now on a kind ('run', 'review_pack'). */
export const held = async (kind) => (await metrics()).value('pollgate_waiters_held', { kind });

/** Polls fn() until it returns a truthy value (returned), or fails after timeout ms. */
export async function until(fn, what, timeout = 10_000, every = 50) {
	const deadline = Date.now() + timeout;
	let last;
	for (;;) {
		try {
			const v = await fn();
			if (v) return v;
			last = v;
		} catch (e) {
			last = e;
		}
		if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${last})`);
		await sleep(every);
	}
}

/** The demo page's URL for a run (and tenant 7's review pack), as demo-alice. */
export function demoUrl(run, extra = '') {
	return `${WEB_URL}/?api=${encodeURIComponent(GW_URL)}&token=demo-alice&run=${run}&tenant=7${extra}`;
}

/**
 * A new page in a window of its own, so it stays visible whatever other pages do (context.newPage() here
 * opens a tab in the current window, which hides the tab that was in front).
 */
export async function newWindow(browser, context) {
	const s = await browser.newBrowserCDPSession();
	try {
		const [page] = await Promise.all([
			context.waitForEvent('page'),
			s.send('Target.createTarget', { url: 'about:blank', newWindow: true }),
		]);
		return page;
	} finally {
		await s.detach().catch(() => {});
	}
}

/** Opens the demo page in a new window and records its requests to the gateway. */
export async function openDemo(B, run, extra = '') {
	const page = await newWindow(B.browser, B.context);
	const requests = []; // {method, url, at}
	page.on('request', (r) => {
		if (r.url().startsWith(GW_URL)) requests.push({ method: r.method(), url: r.url(), at: Date.now(), headers: r.headers() });
	});
	const errors = []; // uncaught exceptions in the page
	page.on('pageerror', (e) => errors.push(String(e)));
	await page.goto(demoUrl(run, extra));
	return { page, requests, errors };
}

/** The text of a field of a card: field(page, 'run', 'counts'). */
export const field = (page, card, f) => page.evaluate(([c, n]) => document.querySelector(`#${c}-card [data-f="${n}"]`).textContent, [card, f]);

/** Waits until field(page, card, f) satisfies pred (a string: starts with it). */
export function waitField(page, card, f, want, timeout = 10_000) {
	return page.waitForFunction(
		([c, n, w]) => {
			const el = document.querySelector(`#${c}-card [data-f="${n}"]`);
			return el && el.textContent.startsWith(w);
		},
		[card, f, want],
		{ timeout },
	);
}
