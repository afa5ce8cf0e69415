// pollgate.d.ts — types of pollgate.js (the browser client of pollgate's long-poll API).

/** The `poll` member of a body: how often the resource may change; `null` once it is not active. */
export interface Poll {
	interval_ms: number;
}

/** Any pollgate representation: a run or a review pack plus these members (api.md, "Bodies"). */
export interface Representation {
	state: string;
	terminal: boolean;
	poll: Poll | null;
	[key: string]: unknown;
}

export interface RunBody extends Representation {
	run: {
		id: number;
		workspace_id: number;
		tenant_id: number | null;
		type: string;
		status: string;
		outcome: string | null;
		summary_counts: Record<string, unknown> | null;
		failure_summary: unknown;
		created_at: string | null;
		started_at: string | null;
		completed_at: string | null;
	};
}

export interface ReviewPackBody extends Representation {
	review_pack: {
		id: number;
		workspace_id: number;
		tenant_id: number;
		operation_run_id: number | null;
		status: string;
		generated_at: string | null;
		expires_at: string | null;
		file_size: number | null;
		created_at: string | null;
		updated_at: string | null;
	} | null;
}

/** Where a delivered representation came from. */
export interface Meta {
	/** HTTP status of the answer that carried it (200). */
	status: number;
	/** Its strong ETag (null if a proxy dropped it; the body text then tells versions apart). */
	etag: string | null;
	/** X-Request-Id of that answer. */
	requestId: string | null;
	/** 'network': this tab's request; 'tab': another tab's request, shared over a BroadcastChannel. */
	source: 'network' | 'tab';
	/** Date.now() when the answer arrived. */
	receivedAt: number;
}

/** What onError gets. */
export class PollgateError extends Error {
	constructor(message: string, init?: Partial<Pick<PollgateError, 'status' | 'code' | 'final' | 'retryInMs' | 'requestId' | 'cause'>>);
	readonly name: 'PollgateError';
	/** HTTP status; 0 for a network error or a timeout. */
	status: number;
	/** The gateway's error code (unauthorized, not_found, too_many_waiters, unavailable, ...), or
	 * network_error, timeout, bad_response, http_NNN. */
	code: string;
	/** true: the watch ended with this error (401, 404, any other 4xx but 408/429). */
	final: boolean;
	/** Not final: the next request is sent after this many milliseconds. */
	retryInMs: number | null;
	requestId: string | null;
	cause?: unknown;
}

/** A clock, for tests: every timer and every elapsed time of the library goes through it. */
export interface Clock {
	now(): number;
	setTimeout(fn: () => void, ms: number): unknown;
	clearTimeout(id: unknown): void;
}

export interface WatchOptions<B extends Representation = Representation> {
	/** A new representation (its ETag differs from the last one delivered). The final one too, before onEnd. */
	onState?: (body: B, meta: Meta) => void;
	/** The body said `poll: null` (terminal, unknown, no pack): no request is sent for it again. */
	onEnd?: (body: B, meta: Meta) => void;
	/** A failed answer. `final` errors (401, 404, ...) end the watch; the others are retried by themselves. */
	onError?: (err: PollgateError) => void;

	/** Seconds a request may be held (`?wait=`); 0 polls at poll.interval_ms. Default 25. */
	wait?: number;
	/** A bearer token, sent as `Authorization: Bearer ...`. Without it the cookie (pollgate_token) authenticates. */
	token?: string | null;
	/** fetch()'s credentials mode. Default 'include' (the cookie is sent cross-origin; the gateway must list
	 * the page's origin in cors_origins). 'same-origin' behind a proxy on the page's own origin. */
	credentials?: RequestCredentials;
	/** One request per resource per browser: tabs elect a leader with Web Locks and share its answers on a
	 * BroadcastChannel. Default true; per-tab where those APIs are missing. */
	share?: boolean;
	/** No requests while `document.hidden`; catch up at once when visible again. Default true. */
	pauseWhenHidden?: boolean;
	/** First delay after a failure, doubled per failure in a row up to backoffMaxMs, with jitter. Default 1000. */
	backoffBaseMs?: number;
	/** Default 30000. */
	backoffMaxMs?: number;
	/** Long-polls cut short in a row (502/504, or the connection closed mid-hold) before falling back to
	 * plain polling (wait=0 every poll.interval_ms). Default 3. */
	fallbackAfter?: number;
	/** Plain polling period before any body gave poll.interval_ms. Default 5000. */
	fallbackIntervalMs?: number;
	/** After this long in plain polling, long-polling is tried again. Default 300000 (5 min). */
	longPollRetryMs?: number;
	/** A request still unanswered wait + graceMs after it was sent is abandoned and retried. Default 10000. */
	graceMs?: number;

	/** For tests and unusual hosts: replacements of the globals the library uses. */
	fetch?: typeof fetch;
	clock?: Clock;
	random?: () => number;
	/** The document whose visibility pauses the watch (null: none). */
	document?: Pick<Document, 'hidden' | 'addEventListener' | 'removeEventListener'> & { baseURI?: string } | null;
	/** Where 'online' events come from (null: none). */
	window?: Pick<Window, 'addEventListener' | 'removeEventListener'> | null;
	/** navigator.locks, or null to stay per-tab. */
	locks?: Pick<LockManager, 'request'> | null;
	BroadcastChannel?: typeof BroadcastChannel | null;
}

export type WatchResult<B> =
	| { reason: 'end'; body: B }
	| { reason: 'error'; error: PollgateError }
	| { reason: 'stopped' };

export class Watcher<B extends Representation = Representation> {
	constructor(url: string | URL, options?: WatchOptions<B>);
	/** The resource URL, absolute, without wait/since. */
	readonly url: string;
	/** The Web Lock and BroadcastChannel name shared by the tabs watching this URL with this credential. */
	readonly key: string;
	/** Settles when the watch is over: the end, a final error, or stop(). */
	readonly done: Promise<WatchResult<B>>;
	/** 'active', 'paused', 'ended' or 'stopped'. */
	readonly state: 'active' | 'paused' | 'ended' | 'stopped';
	/** 'leader' (this tab requests for every tab), 'follower' (another tab does), 'solo' (not shared), 'idle'. */
	readonly role: 'leader' | 'follower' | 'solo' | 'idle';
	/** 'long-poll', or 'polling' after long-polls were cut short by something in between. */
	readonly mode: 'long-poll' | 'polling';
	/** The newest representation known, delivered or not. */
	readonly body: B | null;
	readonly etag: string | null;
	/** No requests (the one in flight is aborted) and no callbacks until resume(); a leader hands over. */
	pause(): void;
	/** Delivers what changed meanwhile and asks again at once (a running Retry-After is still honoured). */
	resume(): void;
	/** Ends the watch: aborts, releases the tab lock, closes the channel; no more callbacks. */
	stop(): void;
}

/** Starts watching a pollgate resource URL. */
export function watch<B extends Representation = Representation>(url: string | URL, options?: WatchOptions<B>): Watcher<B>;

/** Retry-After (seconds or an HTTP date) in milliseconds, or null. */
export function parseRetryAfter(value: string | null | undefined, nowMs?: number): number | null;

/** The delay after the attempt-th failure in a row: min(max, base * 2^(attempt-1)), half of it random. */
export function backoffDelay(attempt: number, opts?: { backoffBaseMs?: number; backoffMaxMs?: number }, random?: () => number): number;

/** A Retry-After of `ms` with jitter: between ms and ms + min(ms / 4, 5 s). */
export function retryAfterDelay(ms: number, random?: () => number): number;
