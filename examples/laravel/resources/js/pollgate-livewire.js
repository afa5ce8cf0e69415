// examples/laravel/resources/js/pollgate-livewire.js — Alpine glue between pollgate's browser client
// (web/pollgate.js) and a Livewire component: it replaces `wire:poll.10s` on a view that shows one run or
// one tenant's review pack.
//
// What it does, for the Livewire component it sits in:
//   - watches the resource with watch() (long-polls through /pollgate/ on the page's own origin);
//   - calls $wire.$refresh() only when the state the view shows changed: each answer is reduced to a key
//     (run: status|outcome, review pack: id|status, or 'none') and compared with the key the server
//     rendered the view from, so the first answer after a render does not re-render for nothing;
//   - stops at `poll: null` (watch() ends by itself: terminal, unknown or no pack);
//   - pauses while a Filament action is mounted (its modal open), so a refresh never re-renders a form
//     the user is typing in, and resumes when it is closed; whatever changed meanwhile is then applied;
//   - leaves hidden tabs to watch(): nothing is sent while document.hidden, and the tab catches up at once
//     when it is shown again;
//   - on a 401 (a short-lived token expired) fetches a fresh credential from `renewUrl` once and starts
//     again; on a 404 (access lost) refreshes the component once so the app shows its own answer.
//
// Register it once, before Alpine starts (Livewire 3 starts Alpine itself; `alpine:init` runs first):
//
//     import { watch } from './vendor/pollgate.js';          // a copy of web/pollgate.js
//     import { registerPollgate } from './pollgate-livewire.js';
//     document.addEventListener('alpine:init', () => registerPollgate(window.Alpine, watch));
//
// and use it through the Blade component resources/views/components/pollgate/watch.blade.php.
// tests/browser/unit/livewire-glue.test.js runs this file against the real web/pollgate.js, a fake
// gateway and a fake $wire.

/** The key of what a view shows, per resource kind. Blade renders the same key from the model. */
export const KEYS = {
	run: (body) => (body.run ? `${body.run.status ?? ''}|${body.run.outcome ?? ''}` : 'missing'),
	review_pack: (body) => (body.review_pack ? `${body.review_pack.id}|${body.review_pack.status ?? ''}` : 'none'),
};

/** Livewire properties that are non-empty while a Filament action (and its modal) is mounted: v3 keeps one
 * per place an action lives, v4 only the first. */
export const MODAL_PROPERTIES = ['mountedActions', 'mountedTableActions', 'mountedInfolistActions', 'mountedFormComponentActions'];

/** A credential renewal is tried at most this often; a second 401 sooner ends the watch. */
const RENEW_MIN_INTERVAL_MS = 30000;

/** The last refresh per URL: a view re-rendered for key K whose new element again sees K as different
 * from what it was rendered with (Blade and KEYS disagree) must not refresh in a loop. */
const LOOP_GUARD_MS = 5000;
const lastRefresh = new Map();

function nonEmpty(v) {
	if (Array.isArray(v)) return v.length > 0;
	if (v && typeof v === 'object') return Object.keys(v).length > 0;
	return Boolean(v);
}

/**
 * The Alpine component. config:
 *   url        the resource, e.g. '/pollgate/v1/runs/42' (required)
 *   kind       'run' or 'review_pack' (which KEYS entry), or key: a function body -> string
 *   rendered   the key the server rendered the view from (Blade computes it from the model)
 *   token      a bearer token (data-attribute mode); omit in cookie mode
 *   renewUrl   an app route that issues a fresh credential (JSON {"token": ...}, or sets the cookie)
 *   wait       seconds a request may be held (default: watch()'s 25)
 * deps: { watch } (required), { fetch, now } for tests.
 */
export function pollgateRefresh(config, deps) {
	const watchFn = deps.watch;
	const fetchFn = deps.fetch || ((...a) => globalThis.fetch(...a));
	const now = deps.now || (() => Date.now());
	const keyOf = typeof config.key === 'function' ? config.key : KEYS[config.kind || 'run'];
	if (!keyOf) throw new Error(`pollgateRefresh: unknown kind ${config.kind}`);

	return {
		/** For the view: 'live', 'paused', 'finished', 'stopped' or 'error'. */
		status: 'live',
		shown: config.rendered ?? null,
		_w: null,
		_modal: false,
		_renewedAt: -Infinity,
		_refusedOnce: false,

		init() {
			this._start(config.token ?? null);
			const wire = this.$wire;
			for (const prop of MODAL_PROPERTIES) {
				if (wire && wire[prop] !== undefined && typeof wire.$watch === 'function') wire.$watch(prop, () => this._guard());
			}
			this._guard();
		},

		destroy() {
			if (this._w) this._w.stop();
			this._w = null;
		},

		_start(token) {
			if (this._w) this._w.stop();
			const opts = {
				credentials: 'same-origin',
				onState: (body) => this._onState(body),
				onEnd: () => {
					this.status = 'finished';
				},
				onError: (err) => this._onError(err),
			};
			if (token) opts.token = token;
			if (config.wait !== undefined) opts.wait = config.wait;
			if (deps.options) Object.assign(opts, deps.options);
			this._w = watchFn(config.url, opts);
			this.status = 'live';
			if (this._modal) this._w.pause();
		},

		_onState(body) {
			const key = keyOf(body);
			if (key === this.shown) return; // what the view already shows: no re-render
			this.shown = key;
			const last = lastRefresh.get(config.url);
			if (last && last.key === key && now() - last.at < LOOP_GUARD_MS) {
				console.warn(`pollgate: ${config.url} was just refreshed for '${key}' but rendered '${config.rendered}': ` +
					'the Blade key and KEYS disagree; not refreshing again');
				return;
			}
			lastRefresh.set(config.url, { key, at: now() });
			if (this.$wire) this.$wire.$refresh();
		},

		async _onError(err) {
			if (!err.final) return; // 429/503/network: watch() retries by itself
			if (err.status === 401 && config.renewUrl && now() - this._renewedAt >= RENEW_MIN_INTERVAL_MS) {
				this._renewedAt = now();
				try {
					const r = await fetchFn(config.renewUrl, { credentials: 'same-origin', headers: { Accept: 'application/json' } });
					if (!r.ok) throw new Error(`renew: HTTP ${r.status}`);
					const data = r.status === 204 ? null : await r.json().catch(() => null);
					if (this._w === null) return; // destroyed meanwhile
					this._start(data && data.token ? data.token : null);
					return;
				} catch (e) {
					// fall through: the watch stays ended
				}
			}
			this.status = 'error';
			if (err.status === 404 && !this._refusedOnce && this.$wire) {
				this._refusedOnce = true;
				this.$wire.$refresh(); // the app decides what a user without access sees
			}
		},

		/** The modal guard: paused while any Filament action is mounted. */
		_guard() {
			const wire = this.$wire;
			const open = Boolean(wire) && MODAL_PROPERTIES.some((p) => nonEmpty(wire[p]));
			if (open === this._modal || !this._w) {
				this._modal = open;
				return;
			}
			this._modal = open;
			if (open) {
				this._w.pause();
				if (this.status === 'live') this.status = 'paused';
			} else {
				this._w.resume(); // delivers what changed meanwhile, then asks again at once
				if (this.status === 'paused') this.status = 'live';
			}
		},
	};
}

/** Alpine.data('pollgateRefresh', ...) with pollgate's watch(). Call it from an `alpine:init` listener. */
export function registerPollgate(Alpine, watch) {
	Alpine.data('pollgateRefresh', (config) => pollgateRefresh(config, { watch }));
}
