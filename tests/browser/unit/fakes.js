// Fakes for the unit tests of web/pollgate.js under node --test: a virtual clock, a scripted gateway
// behind a fake fetch(), an in-memory Web Locks manager, and a document whose visibility a test flips.

/** Lets every pending promise callback, setImmediate and BroadcastChannel delivery run. */
export async function settle(rounds = 12) {
	for (let i = 0; i < rounds; i++) await new Promise((r) => setImmediate(r));
}

/** A virtual clock: timers run only when a test calls advance(). */
export class Clock {
	constructor() {
		this.t = 1_000_000;
		this.timers = new Map();
		this.seq = 0;
		this.now = () => this.t;
		this.setTimeout = (fn, ms) => {
			const id = ++this.seq;
			this.timers.set(id, { at: this.t + Math.max(0, ms || 0), fn });
			return id;
		};
		this.clearTimeout = (id) => {
			this.timers.delete(id);
		};
	}

	/** Moves time forward by ms, running every timer due on the way, in order. */
	async advance(ms) {
		const end = this.t + ms;
		await settle();
		for (;;) {
			let next = null;
			for (const [id, tm] of this.timers) if (tm.at <= end && (next === null || tm.at < next[1].at)) next = [id, tm];
			if (next === null) break;
			this.timers.delete(next[0]);
			this.t = Math.max(this.t, next[1].at);
			next[1].fn();
			await settle();
		}
		this.t = end;
		await settle();
	}
}

/**
 * A scripted gateway. Every fetch() becomes a request object pushed on `requests`, handed to the next
 * function of `script` (or `fallback`; none: it is held until the test answers it):
 *   req.url, req.wait, req.inm (If-None-Match), req.auth (Authorization), req.credentials, req.at,
 *   req.aborted, req.respond(status, {etag, body, headers, after}), req.fail(after)
 */
export class FakeGateway {
	constructor(clock) {
		this.clock = clock;
		this.requests = [];
		this.script = [];
		this.fallback = null;
		this.fetch = (url, init = {}) =>
			new Promise((resolve, reject) => {
				const u = new URL(url);
				const headers = init.headers || {};
				const req = {
					url,
					wait: Number(u.searchParams.get('wait')),
					inm: headers['If-None-Match'] ?? null,
					auth: headers.Authorization ?? null,
					credentials: init.credentials,
					cache: init.cache,
					at: clock.now(),
					done: false,
					aborted: false,
				};
				const later = (after, fn) => (after > 0 ? clock.setTimeout(fn, after) : fn());
				req.respond = (status, { etag = null, body = null, headers: h = {}, after = 0 } = {}) =>
					later(after, () => {
						if (req.done) return;
						req.done = true;
						const hdrs = { ...h };
						if (etag) hdrs.ETag = etag;
						const text = status === 304 || body === null ? null : typeof body === 'string' ? body : JSON.stringify(body);
						resolve(new Response(text, { status, headers: hdrs }));
					});
				req.fail = (after = 0) =>
					later(after, () => {
						if (req.done) return;
						req.done = true;
						reject(new TypeError('Failed to fetch'));
					});
				if (init.signal) {
					init.signal.addEventListener('abort', () => {
						if (req.done) return;
						req.done = true;
						req.aborted = true;
						reject(new DOMException('The operation was aborted.', 'AbortError'));
					});
				}
				this.requests.push(req);
				const h = this.script.length ? this.script.shift() : this.fallback;
				if (h) h(req);
			});
	}

	get last() {
		return this.requests[this.requests.length - 1];
	}
}

/** navigator.locks for one process: exclusive locks granted in request order; `signal` aborts a wait. */
export class FakeLocks {
	constructor() {
		this.queues = new Map();
	}

	request(name, opts, cb) {
		if (typeof opts === 'function') {
			cb = opts;
			opts = {};
		}
		return new Promise((resolve, reject) => {
			const q = this.queues.get(name) || [];
			this.queues.set(name, q);
			const entry = { cb, resolve, reject, held: false };
			const signal = opts && opts.signal;
			if (signal) {
				if (signal.aborted) {
					reject(new DOMException('aborted', 'AbortError'));
					return;
				}
				signal.addEventListener('abort', () => {
					const i = q.indexOf(entry);
					if (!entry.held && i >= 0) {
						q.splice(i, 1);
						reject(new DOMException('aborted', 'AbortError'));
					}
				});
			}
			q.push(entry);
			this._grant(name);
		});
	}

	_grant(name) {
		const q = this.queues.get(name);
		if (!q || !q.length || q[0].held) return;
		const e = q[0];
		e.held = true;
		Promise.resolve()
			.then(() => e.cb({ name, mode: 'exclusive' }))
			.then(e.resolve, e.reject)
			.finally(() => {
				q.shift();
				this._grant(name);
			});
	}

	/** 1 while someone holds the lock `name`, else 0. */
	holderCount(name) {
		const q = this.queues.get(name);
		return q ? q.filter((e) => e.held).length : 0;
	}
}

/** A document whose `hidden` a test sets with setHidden(), firing visibilitychange. */
export class FakeDocument extends EventTarget {
	constructor(hidden = false) {
		super();
		this.hidden = hidden;
		this.baseURI = 'http://127.0.0.1:8081/';
	}

	setHidden(h) {
		this.hidden = h;
		this.dispatchEvent(new Event('visibilitychange'));
	}
}

/** A run body as the gateway serves it. */
export function runBody(id, state, processed = 0, intervalMs = 1000) {
	const terminal = ['succeeded', 'failed', 'partial', 'cancelled'].includes(state);
	return {
		run: { id, workspace_id: 1, tenant_id: 7, type: 'inventory.sync', status: terminal ? 'completed' : state, outcome: null,
			summary_counts: { total: 10, processed }, failure_summary: null, created_at: '2026-03-08T11:00:00Z',
			started_at: null, completed_at: null },
		state,
		terminal,
		poll: terminal ? null : { interval_ms: intervalMs },
	};
}

export const ERR = (code, message = 'x') => ({ error: { code, message } });
