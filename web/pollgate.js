/**
 * pollgate.js — the browser client of pollgate's long-poll API (docs/http-api.md).
 *
 * One dependency-free ES module: `<script type="module">import { watch } from './pollgate.js'</script>`,
 * no build step. Types are in pollgate.d.ts beside it; web/README.md is the guide.
 *
 *   const w = watch('https://gw.example.com/v1/runs/42', {
 *     token: 'secret',                       // or leave it out: the pollgate_token cookie is sent
 *     onState(body, meta) { render(body); },  // a new representation (its ETag differs)
 *     onEnd(body) { done(body); },            // `poll: null`: the resource is finished; no more requests
 *     onError(err) { show(err.code); },       // err.status, err.code, err.final, err.retryInMs
 *   });
 *   w.pause(); w.resume(); w.stop();
 *
 * What it owns: one watch = one resource URL, one loop of conditional GETs (If-None-Match with the last
 * ETag, ?wait=N seconds), the decisions taken on every answer (deliver / ask again / wait Retry-After /
 * back off / fall back to plain polling / end), pausing while the page is hidden, and sharing the loop
 * between the tabs of one browser (Web Locks elect a leader per resource and credential, the leader
 * publishes on a BroadcastChannel). Nothing here touches the DOM.
 *
 * Callbacks only run when the representation changed (ETag differs), so a page that renders in onState
 * never repaints for a 304. No callback runs while the watch is paused; whatever happened meanwhile (the
 * latest state, the end) is delivered on resume.
 */

const DEFAULTS = Object.freeze({
	wait: 25, // seconds a request may be held; below every proxy's read timeout
	credentials: 'include', // fetch credentials mode: the cookie travels cross-origin with CORS credentials
	token: null, // a bearer token: sent as Authorization, and then the cookie is not consulted
	share: true, // one request per resource per browser: tabs elect a leader (Web Locks + BroadcastChannel)
	pauseWhenHidden: true, // no requests while document.hidden
	backoffBaseMs: 1000, // first delay after a failure (equal jitter: half of it fixed, half random)
	backoffMaxMs: 30000, // cap of the doubling delay
	fallbackAfter: 3, // long-polls cut short in a row (502/504, connection closed mid-hold) before plain polling
	fallbackIntervalMs: 5000, // plain polling period until a body gives poll.interval_ms
	longPollRetryMs: 300000, // plain polling tries long-polling again after this
	graceMs: 10000, // a request with no answer after wait + grace is abandoned (a dead connection)
});

const STOP = -1; // a decision: the loop ends

/** An error handed to onError. `final` tells whether the watch ended with it. */
export class PollgateError extends Error {
	constructor(message, init = {}) {
		super(message);
		this.name = 'PollgateError';
		this.status = init.status ?? 0; // HTTP status, 0 for a network error or a timeout
		this.code = init.code ?? 'network_error'; // the gateway's error.code, or network_error, timeout, bad_response, http_NNN
		this.final = !!init.final; // true: the watch has ended (401, 404, other 4xx)
		this.retryInMs = init.retryInMs ?? null; // when not final: the next request is sent after this
		this.requestId = init.requestId ?? null; // X-Request-Id of the answer, for the gateway's log
		if (init.cause !== undefined) this.cause = init.cause;
	}
}

/** Retry-After (delta-seconds or an HTTP date) -> milliseconds, or null when absent or unreadable. */
export function parseRetryAfter(value, nowMs = Date.now()) {
	if (value === null || value === undefined) return null;
	const s = String(value).trim();
	if (/^\d{1,9}$/.test(s)) return Number(s) * 1000;
	if (!/[a-z]/i.test(s)) return null; // "-1", "1.5": not a delay-seconds, and not a date either
	const t = Date.parse(s);
	return Number.isNaN(t) ? null : Math.max(0, t - nowMs);
}

/** The delay after the attempt-th failure in a row (1, 2, ...): base * 2^(attempt-1) capped at max, then
 * equal jitter (half fixed, half random), so a fleet of browsers does not come back in step. */
export function backoffDelay(attempt, opts = {}, random = Math.random) {
	const base = opts.backoffBaseMs ?? DEFAULTS.backoffBaseMs;
	const max = opts.backoffMaxMs ?? DEFAULTS.backoffMaxMs;
	const n = Math.max(1, Math.min(attempt, 31));
	const d = Math.min(max, base * 2 ** (n - 1));
	return Math.round(d / 2 + (random() * d) / 2);
}

/** The delay a Retry-After of `ms` asks for: never sooner, up to a quarter (at most 5 s) later. */
export function retryAfterDelay(ms, random = Math.random) {
	return Math.round(ms + random() * Math.min(ms * 0.25, 5000));
}

/** Two FNV-1a hashes of a string as 16 hex digits: a partition key for the credential, so tabs that use
 * different tokens never share a loop, and no token appears in a lock or channel name. Not a secret. */
function credentialKey(s) {
	let a = 0x811c9dc5;
	let b = 0x01000193;
	for (let i = 0; i < s.length; i++) {
		const c = s.charCodeAt(i);
		a = Math.imul(a ^ c, 0x01000193) >>> 0;
		b = Math.imul(b ^ c, 0x5bd1e995) >>> 0;
	}
	return a.toString(16).padStart(8, '0') + b.toString(16).padStart(8, '0');
}

let nextId = 1;

/** Starts watching `url` (a pollgate resource: /v1/runs/{id} or /v1/tenants/{id}/review-pack). */
export function watch(url, options = {}) {
	return new Watcher(url, options);
}

/**
 * One watched resource. State: `active` (a loop runs in this tab, or this tab follows another's),
 * `paused`, `ended` (poll: null, or a final error) or `stopped`.
 *
 * Roles, when shared: `leader` (this tab's loop makes the requests and publishes), `follower` (another
 * tab's loop does; this one waits for the lock and listens), `idle` (paused/ended); `solo` when not
 * shared (option share: false, or no Web Locks / BroadcastChannel).
 */
export class Watcher {
	constructor(url, options = {}) {
		const o = { ...DEFAULTS };
		for (const [k, v] of Object.entries(options)) if (v !== undefined) o[k] = v;
		o.wait = Math.max(0, Math.min(3600, Math.floor(Number(o.wait))));
		if (!Number.isFinite(o.wait)) throw new TypeError('pollgate: wait must be a number of seconds');
		this._o = o;
		const clock = o.clock || {};
		const g = globalThis;
		this._env = {
			fetch: o.fetch || (g.fetch && g.fetch.bind(g)),
			now: clock.now || (() => Date.now()),
			setTimeout: clock.setTimeout || ((fn, ms) => g.setTimeout(fn, ms)),
			clearTimeout: clock.clearTimeout || ((id) => g.clearTimeout(id)),
			random: o.random || Math.random,
			document: 'document' in options ? options.document : g.document,
			window: 'window' in options ? options.window : typeof g.window === 'object' ? g.window : null,
			locks: 'locks' in options ? options.locks : g.navigator && g.navigator.locks,
			BroadcastChannel: 'BroadcastChannel' in options ? options.BroadcastChannel : g.BroadcastChannel,
		};
		if (typeof this._env.fetch !== 'function') throw new TypeError('pollgate: no fetch() here; pass options.fetch');
		this._onState = o.onState;
		this._onEnd = o.onEnd;
		this._onError = o.onError;

		const doc = this._env.document;
		const base = (doc && doc.baseURI) || (g.location && g.location.href) || undefined;
		const u = new URL(String(url), base);
		u.searchParams.delete('wait');
		u.searchParams.delete('since');
		u.hash = '';
		this.url = u.href;
		this.id = `${nextId++}.${Math.floor(this._env.random() * 1e9).toString(36)}`;
		this.key = `pollgate:v1:${this.url}#${credentialKey(o.token ? `bearer ${o.token}` : `cookie ${o.credentials}`)}`;

		this._latest = null; // {etag, body, meta}: the newest representation known, from the network or a tab
		this._deliveredEtag = null; // what onState last saw
		this._endDelivered = false;
		this._fatalError = null;
		this._errorDelivered = false;
		this._ended = false;
		this._stopped = false;
		this._active = false;
		this._pauses = new Set(); // 'user', 'hidden'
		this._role = 'idle';
		this._mode = o.wait > 0 ? 'long-poll' : 'polling';
		this._pollingSince = 0;
		this._intervalMs = o.fallbackIntervalMs;
		this._failures = 0; // failed answers in a row (backoff exponent)
		this._cuts = 0; // long-polls cut short in a row
		this._fast304 = 0; // 304s that came back at once to a long-poll, in a row
		this._notBefore = 0; // no request before this time (ms)
		this._serverDelay = false; // _notBefore came from Retry-After: kept across pause/resume and 'online'
		this._gen = 0; // loop generation: bumping it stops the running loop
		this._inflight = null; // AbortController of the request in flight
		this._sleepTimer = null;
		this._sleepResolve = null;
		this._lockAbort = null; // AbortController of a pending lock request
		this._releaseLock = null; // resolves the held lock's promise
		this.done = new Promise((resolve) => {
			this._resolveDone = resolve;
		});

		const { locks, BroadcastChannel: BC } = this._env;
		this._shared = !!(o.share && locks && typeof locks.request === 'function' && typeof BC === 'function');
		this._chan = null;
		if (this._shared) {
			this._chan = new BC(this.key);
			this._chan.onmessage = (e) => this._onMessage(e.data);
		}

		this._onVisibility = () => {
			if (doc.hidden) this._pauses.add('hidden');
			else this._pauses.delete('hidden');
			this._update();
		};
		if (o.pauseWhenHidden && doc && typeof doc.addEventListener === 'function') {
			if (doc.hidden) this._pauses.add('hidden');
			doc.addEventListener('visibilitychange', this._onVisibility);
		}
		this._onOnline = () => {
			if (!this._serverDelay) {
				this._notBefore = 0;
				this._wake();
			}
		};
		const win = this._env.window;
		if (win && typeof win.addEventListener === 'function') win.addEventListener('online', this._onOnline);

		this._update();
	}

	// -- public

	/** Stops requests (an in-flight one is aborted) and callbacks until resume(), e.g. behind a modal.
	 * A leader hands the loop to another tab. */
	pause() {
		this._pauses.add('user');
		this._update();
	}

	/** Undoes pause(): delivers what changed meanwhile and asks again at once (unless a Retry-After runs). */
	resume() {
		this._pauses.delete('user');
		this._update();
	}

	/** Ends the watch for good: aborts the request, releases the tab lock, no more callbacks. */
	stop() {
		if (this._stopped) return;
		this._stopped = true;
		this._deactivate();
		this._release();
		if (this._chan) {
			this._chan.onmessage = null;
			this._chan.close();
			this._chan = null;
		}
		const doc = this._env.document;
		if (doc && typeof doc.removeEventListener === 'function') doc.removeEventListener('visibilitychange', this._onVisibility);
		const win = this._env.window;
		if (win && typeof win.removeEventListener === 'function') win.removeEventListener('online', this._onOnline);
		this._resolveDone({ reason: 'stopped' });
	}

	/** 'active', 'paused', 'ended' or 'stopped'. */
	get state() {
		if (this._stopped) return 'stopped';
		if (this._ended) return 'ended';
		return this._pauses.size ? 'paused' : 'active';
	}

	/** 'leader', 'follower', 'solo' or 'idle' (see the class comment). */
	get role() {
		return this._role;
	}

	/** 'long-poll', or 'polling' (wait=0 every poll.interval_ms) after long-polls were cut short. */
	get mode() {
		return this._mode;
	}

	/** The last representation known (delivered or not), or null. */
	get body() {
		return this._latest ? this._latest.body : null;
	}

	/** Its ETag, or null. */
	get etag() {
		return this._latest && !this._latest.etag.startsWith('body:') ? this._latest.etag : null;
	}

	// -- activation: runs a loop (solo/leader) or follows, whenever not paused, ended or stopped

	_update() {
		if (this._stopped) return;
		const want = !this._ended && this._pauses.size === 0;
		if (want && !this._active) this._activate();
		else if (!want && this._active) this._deactivate();
		this._flush();
	}

	_activate() {
		this._active = true;
		if (!this._serverDelay) this._notBefore = 0; // back from hidden/paused: ask at once, unless told to wait
		if (this._shared) {
			this._role = 'follower';
			this._post({ t: 'hello' });
			this._requestLock();
		} else {
			this._role = 'solo';
			this._startLoop();
		}
	}

	_deactivate() {
		this._active = false;
		this._stopLoop();
		if (this._lockAbort) {
			this._lockAbort.abort();
			this._lockAbort = null;
		}
		// A leader that ended keeps the lock (see _finish); one that is paused hands over.
		if (!this._ended) this._release();
		this._role = 'idle';
	}

	_release() {
		if (this._releaseLock) {
			const r = this._releaseLock;
			this._releaseLock = null;
			r();
		}
	}

	_requestLock() {
		const ac = new AbortController();
		this._lockAbort = ac;
		const granted = () => {
			if (ac.signal.aborted || !this._active || this._stopped) return undefined;
			this._lockAbort = null;
			this._role = 'leader';
			return new Promise((resolve) => {
				this._releaseLock = resolve;
				this._startLoop();
			});
		};
		Promise.resolve()
			.then(() => this._env.locks.request(this.key, { signal: ac.signal }, granted))
			.catch(() => {
				if (ac.signal.aborted || this._stopped) return; // paused or ended before the lock came
				// Web Locks refused (an opaque origin, a sandboxed frame): this tab runs its own loop.
				this._shared = false;
				if (this._chan) {
					this._chan.onmessage = null;
					this._chan.close();
					this._chan = null;
				}
				if (this._lockAbort === ac) this._lockAbort = null;
				if (this._active && this._role !== 'leader') {
					this._role = 'solo';
					this._startLoop();
				}
			});
	}

	// -- cross-tab messages

	_post(msg) {
		if (!this._chan) return;
		try {
			this._chan.postMessage({ v: 1, from: this.id, ...msg });
		} catch (e) {
			// a body that cannot be cloned cannot happen with JSON; a closed channel is fine to ignore
		}
	}

	_onMessage(m) {
		if (!m || m.v !== 1 || this._stopped || m.from === this.id) return;
		switch (m.t) {
			case 'hello': // a tab (re)joined: the leader, or a tab that saw the end, tells it what is current
				if (this._fatalError) this._postFatal(this._fatalError);
				else if (this._latest && (this._role === 'leader' || this._ended)) {
					this._post({ t: this._ended ? 'end' : 'state', etag: this._latest.etag, body: this._latest.body, meta: this._latest.meta });
				}
				break;
			case 'state':
				if (this._ended || typeof m.etag !== 'string') break;
				this._learn(m.etag, m.body, { ...m.meta, source: 'tab' });
				this._flush();
				break;
			case 'end':
				if (this._ended || typeof m.etag !== 'string') break;
				this._learn(m.etag, m.body, { ...m.meta, source: 'tab' });
				this._finish(null, false);
				break;
			case 'fatal':
				if (this._ended || !m.error) break;
				this._finish(new PollgateError(m.error.message, { ...m.error, final: true }), false);
				break;
			default:
				break;
		}
	}

	_postFatal(err) {
		this._post({ t: 'fatal', error: { message: err.message, status: err.status, code: err.code, requestId: err.requestId } });
	}

	// -- delivery

	/** Records a representation; returns true when it is new. */
	_learn(etag, body, meta) {
		if (this._latest && this._latest.etag === etag) return false;
		this._latest = { etag, body, meta };
		const poll = body && body.poll;
		if (poll && Number.isFinite(poll.interval_ms) && poll.interval_ms > 0) this._intervalMs = Math.max(250, poll.interval_ms);
		return true;
	}

	/** Runs the callbacks owed, unless paused or stopped: the latest state if not seen, then the end or
	 * the final error. */
	_flush() {
		if (this._stopped || this._pauses.size) return;
		const l = this._latest;
		if (l && l.etag !== this._deliveredEtag && !this._fatalError) {
			this._deliveredEtag = l.etag;
			this._call(this._onState, l.body, l.meta);
			if (this._stopped || this._pauses.size) return; // a callback may pause or stop
		}
		if (this._ended && !this._fatalError && !this._endDelivered && l) {
			this._endDelivered = true;
			this._call(this._onEnd, l.body, l.meta);
			this._resolveDone({ reason: 'end', body: l.body });
		}
		if (this._fatalError && !this._errorDelivered) {
			this._errorDelivered = true;
			this._call(this._onError, this._fatalError);
			this._resolveDone({ reason: 'error', error: this._fatalError });
		}
	}

	_call(fn, ...args) {
		if (typeof fn !== 'function') return;
		try {
			fn(...args);
		} catch (e) {
			// A page's callback must not break the loop.
			if (globalThis.console) console.error('pollgate: callback threw', e);
		}
	}

	/** The watch is over: `err` null for poll: null, else the final error. `publish`: tell the other tabs. */
	_finish(err, publish) {
		this._ended = true;
		if (err) this._fatalError = err;
		this._stopLoop();
		if (this._lockAbort) {
			this._lockAbort.abort();
			this._lockAbort = null;
		}
		if (publish && this._shared) {
			if (err) this._postFatal(err);
			else this._post({ t: 'end', etag: this._latest.etag, body: this._latest.body, meta: this._latest.meta });
		}
		// A leader keeps the lock after the end (or a final error), so no waiting tab takes over to ask
		// again, and answers the hello of a tab that opens later with the end, so that one sends nothing
		// either. Until stop(), or the tab closes: the next tab then asks once and is told again.
		this._active = false;
		this._role = this._releaseLock ? 'leader' : 'idle';
		this._flush();
	}

	// -- the loop (solo, or leader)

	_startLoop() {
		const gen = ++this._gen;
		// From a microtask: the first request never goes out from inside watch() or a callback.
		Promise.resolve().then(() => this._loop(gen)).catch((e) => {
			if (globalThis.console) console.error('pollgate: loop failed', e);
		});
	}

	_stopLoop() {
		this._gen++;
		if (this._inflight) {
			this._inflight.abort();
			this._inflight = null;
		}
		this._wake();
	}

	_sleep(ms) {
		return new Promise((resolve) => {
			this._sleepResolve = resolve;
			this._sleepTimer = this._env.setTimeout(() => {
				this._sleepTimer = null;
				this._sleepResolve = null;
				resolve();
			}, ms);
		});
	}

	_wake() {
		if (this._sleepTimer !== null) {
			this._env.clearTimeout(this._sleepTimer);
			this._sleepTimer = null;
		}
		if (this._sleepResolve) {
			const r = this._sleepResolve;
			this._sleepResolve = null;
			r();
		}
	}

	async _loop(gen) {
		while (gen === this._gen) {
			const d = this._notBefore - this._env.now();
			if (d > 0) {
				await this._sleep(d);
				continue; // re-check: woken early by 'online', or stopped
			}
			this._serverDelay = false;
			const wait = this._nextWait();
			const r = await this._request(wait);
			if (gen !== this._gen) return; // paused, handed over or stopped meanwhile: the answer is dropped
			const delay = this._decide(r, wait);
			if (delay === STOP || gen !== this._gen) return;
			this._notBefore = delay > 0 ? this._env.now() + delay : 0;
		}
	}

	_nextWait() {
		const o = this._o;
		if (o.wait === 0) return 0;
		if (this._mode === 'polling' && this._env.now() - this._pollingSince >= o.longPollRetryMs) {
			this._mode = 'long-poll'; // try again: the proxy may have been fixed
			this._cuts = 0;
		}
		return this._mode === 'long-poll' ? o.wait : 0;
	}

	async _request(wait) {
		const o = this._o;
		const env = this._env;
		const headers = {};
		const etag = this.etag;
		if (etag) headers['If-None-Match'] = etag;
		if (o.token) headers.Authorization = `Bearer ${o.token}`;
		const u = new URL(this.url);
		u.searchParams.set('wait', String(wait));
		const ac = new AbortController();
		this._inflight = ac;
		let timedOut = false;
		const timer = env.setTimeout(() => {
			timedOut = true;
			ac.abort();
		}, wait * 1000 + o.graceMs);
		const t0 = env.now();
		try {
			const res = await env.fetch(u.href, { method: 'GET', headers, credentials: o.credentials, cache: 'no-store', signal: ac.signal });
			const text = res.status === 304 ? '' : await res.text();
			return { res, text, elapsed: env.now() - t0 };
		} catch (error) {
			return { error, timedOut, elapsed: env.now() - t0 };
		} finally {
			env.clearTimeout(timer);
			if (this._inflight === ac) this._inflight = null;
		}
	}

	_backoff(n) {
		return backoffDelay(n, this._o, this._env.random);
	}

	/** A long-poll came back short of its wait with no answer: a proxy in between may be cutting them. */
	_noteCut() {
		this._cuts++;
		if (this._mode === 'long-poll' && this._cuts >= this._o.fallbackAfter) {
			this._mode = 'polling';
			this._pollingSince = this._env.now();
			this._cuts = 0;
		}
	}

	_transient(err, delay) {
		err.retryInMs = delay;
		this._call(this._onError, err);
		return delay;
	}

	/** What to do with one answer: the delay before the next request (0: at once), or STOP. */
	_decide(r, wait) {
		const o = this._o;
		const longPoll = wait > 0;
		if (r.error) {
			this._failures++;
			// Closed mid-hold: not at once (that is a refused connection, the gateway is down) and well before
			// the wait ran out (that is our own timeout).
			if (longPoll && !r.timedOut && r.elapsed >= 1000 && r.elapsed < wait * 900) this._noteCut();
			const code = r.timedOut ? 'timeout' : 'network_error';
			const msg = r.timedOut ? `no answer within ${wait + o.graceMs / 1000} s` : `request failed: ${r.error && r.error.message}`;
			return this._transient(new PollgateError(msg, { code, cause: r.error }), this._backoff(this._failures));
		}
		const res = r.res;
		const status = res.status;
		const requestId = res.headers.get('X-Request-Id');
		if (status === 200) {
			let body;
			try {
				body = JSON.parse(r.text);
			} catch (e) {
				body = undefined;
			}
			if (body === null || typeof body !== 'object') {
				this._failures++;
				const err = new PollgateError('the answer is not a JSON object', { status, code: 'bad_response', requestId });
				return this._transient(err, this._backoff(this._failures));
			}
			this._failures = 0;
			this._cuts = 0;
			this._fast304 = 0;
			const etag = res.headers.get('ETag');
			const meta = { status, etag, requestId, source: 'network', receivedAt: Date.now() };
			const isNew = this._learn(etag || `body:${r.text}`, body, meta);
			if (body.poll === null || body.poll === undefined) {
				this._finish(null, true);
				return STOP;
			}
			if (isNew) {
				this._post({ t: 'state', etag: this._latest.etag, body, meta });
				this._flush();
			}
			// Without an ETag (a proxy dropped it, or CORS does not expose it) no request can be conditional:
			// asking again at once would be answered at once, so poll at the interval.
			if (!etag || !longPoll) return this._intervalMs;
			return 0;
		}
		if (status === 304) {
			this._failures = 0;
			if (longPoll && wait >= 2 && r.elapsed < 1000) {
				// Answered at once with nothing new: a drain, or something in between that does not hold.
				// Never spin: back off, growing while it lasts.
				this._fast304++;
				return this._backoff(this._fast304);
			}
			this._fast304 = 0;
			this._cuts = 0;
			return longPoll ? 0 : this._intervalMs;
		}
		let code = `http_${status}`;
		let message = `HTTP ${status}`;
		try {
			const j = JSON.parse(r.text);
			if (j && j.error && typeof j.error.code === 'string') {
				code = j.error.code;
				if (typeof j.error.message === 'string') message = j.error.message;
			}
		} catch (e) {
			// not the gateway's JSON (a proxy's page): keep http_NNN
		}
		const err = new PollgateError(message, { status, code, requestId });
		if (status === 429 || status === 503) {
			this._failures++;
			const ra = parseRetryAfter(res.headers.get('Retry-After'), this._env.now());
			if (ra !== null && ra > 0) {
				const delay = retryAfterDelay(ra, this._env.random);
				this._transient(err, delay);
				this._serverDelay = true;
				return delay;
			}
			return this._transient(err, this._backoff(this._failures));
		}
		if (status === 502 || status === 504) {
			this._failures++;
			if (longPoll) this._noteCut();
			return this._transient(err, this._backoff(this._failures));
		}
		if (status >= 400 && status < 500 && status !== 408) {
			// 401 (token gone), 404 (not found or access lost), 400/405 (a bug here): asking again cannot help.
			err.final = true;
			this._finish(err, true);
			return STOP;
		}
		this._failures++;
		return this._transient(err, this._backoff(this._failures));
	}
}
