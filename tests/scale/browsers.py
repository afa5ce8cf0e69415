"""Browser-like long-poll clients for the scale-out suite and bench/scale_cost.py: a pool of asyncio
clients in one background thread, each following the client library's rules (web/pollgate.js,
docs/http-api.md "The long-poll loop") and checking every answer it gets.

Each client owns one keep-alive connection (to a proxy or a gateway) and loops:

    GET /v1/runs/ID?wait=W   (If-None-Match: the ETag of the last 200, once it has one)
    200  -> check the ETag against the body (see below), check the version did not go back, keep both
    304  -> check the ETag is the one it sent; ask again at once
    429 / 503 with Retry-After -> wait that long (plus a little jitter), ask again
    a network error (refused, reset, closed before an answer, timeout) -> back off (0.25 s doubling,
         capped at 4 s, equal jitter) on a fresh connection
    anything else -> counted, backed off
    `Connection: close` on an answer -> the next request opens a new connection

What a client records (all plain counters and the last values, cheap enough for 10,000 clients):
  version      the run's summary_counts.processed in the last 200 (the test's writer only increases it)
  etag         the ETag of the last 200 (sent back as If-None-Match)
  n200, n304   answers by status; other[status] for the rest
  cut          requests that got no answer (connection refused/reset/closed, or timed out)
  stale        200s whose version was LOWER than one the client already had (an answer older than its ETag)
  bad_etag     200s whose ETag is not the one computed from the body, and 304s with another ETag than sent
  last_at      time.monotonic() of the last 200 (the representation may change without the version:
               the poll interval grows with the run's age)
  version_at   time.monotonic() of the 200 that brought the current version
  done_status  401 or 404, after which the client stops (as the library does), at done_at
ETag of a body, computed here and never taken from the gateway: '"' + the first 32 hex digits of the
SHA-256 of the body bytes + '"' (docs/http-api.md, policy/policy.c).

Nothing here asserts: the tests read the counters (Pool.totals(), Pool.clients) and decide.
"""

import asyncio
import collections
import hashlib
import json
import random
import threading
import time


def etag_of(body):
    """The strong ETag pollgate must send for these body bytes."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class Client:
    __slots__ = ("idx", "run", "token", "src", "port", "done_status", "done_at", "etag", "version", "n200", "n304", "other", "cut", "stale",
                 "bad_etag", "last_at", "version_at", "history", "errors", "in_flight", "sent_at", "last_error")

    def __init__(self, idx, run, token, src=None, port=None):
        self.idx, self.run, self.token, self.src, self.port = idx, run, token, src, port
        self.done_status = None   # 401 or 404: the library stops asking (credential gone / no access)
        self.done_at = 0.0
        self.etag = None
        self.version = -1
        self.n200 = self.n304 = self.cut = self.stale = self.bad_etag = 0
        self.other = {}
        self.last_at = 0.0
        self.version_at = 0.0
        self.history = collections.deque(maxlen=8)  # (sent, answered, status, version) of the last answers
        self.errors = []      # the first few error descriptions (for a failing test's message)
        self.in_flight = False
        self.sent_at = 0.0
        self.last_error = None

    def note_error(self, what):
        self.last_error = what
        if len(self.errors) < 3:
            self.errors.append(what)


class Pool:
    """Clients long-polling through `host:port` from one background thread.

        pool = Pool("127.0.0.1", port, [(run_id, token), ...], wait=25, sources=["127.0.1.1", ...])
        (a spec may name its own port: (run_id, token, port))
        pool.start(); pool.wait_versions({run: v, ...}); ...; pool.stop()

    sources: loopback addresses the clients connect from (round robin), so a gateway behind a proxy sees
    many client addresses, as it would with browsers (its per-client cap applies to each)."""

    def __init__(self, host, port, specs, wait=25, sources=None, connect_concurrency=100, backoff_max=4.0):
        self.host, self.port, self.wait = host, port, wait
        sources = list(sources or [None])
        self.clients = [Client(i, s[0], s[1], sources[i % len(sources)], s[2] if len(s) > 2 else port)
                        for i, s in enumerate(specs)]
        self.connect_concurrency = connect_concurrency
        self.backoff_max = backoff_max
        self._stop = None
        self._loop = None
        self._thread = None
        self._started = threading.Event()
        self.exc = None

    # -- the client loop

    async def _connect(self, c):
        async with self._sem:
            local = (c.src, 0) if c.src else None
            return await asyncio.wait_for(asyncio.open_connection(self.host, c.port, local_addr=local), 10)

    def _request(self, c):
        lines = [f"GET /v1/runs/{c.run}?wait={self.wait} HTTP/1.1", f"Host: {self.host}:{c.port}",
                 f"Authorization: Bearer {c.token}"]
        if c.etag:
            lines.append(f"If-None-Match: {c.etag}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    async def _read(reader):
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        hdrs = {}
        for line in lines[1:]:
            if line:
                k, _, v = line.partition(":")
                hdrs[k.strip().lower()] = v.strip()
        n = 0 if status in (204, 304) else int(hdrs.get("content-length", "0"))
        body = await reader.readexactly(n) if n else b""
        return status, hdrs, body

    def _backoff(self, attempt):
        d = min(self.backoff_max, 0.25 * (2 ** attempt))
        return d / 2 + random.random() * d / 2

    async def _client(self, c):
        self._writers[c.idx] = None
        try:
            await self._loop_client(c)
        except asyncio.CancelledError:
            pass
        finally:
            w = self._writers.pop(c.idx, None)
            if w is not None:
                w.close()

    async def _loop_client(self, c):
        reader = writer = None
        failures = 0
        while not self._stop.is_set():
            if writer is None:
                try:
                    reader, writer = await self._connect(c)
                    self._writers[c.idx] = writer
                except (OSError, asyncio.TimeoutError) as e:
                    c.cut += 1
                    c.note_error(f"connect: {e!r}")
                    failures += 1
                    await self._sleep(self._backoff(failures))
                    continue
            sent_etag = c.etag
            try:
                c.in_flight = True
                c.sent_at = time.monotonic()
                writer.write(self._request(c))
                status, hdrs, body = await asyncio.wait_for(self._read(reader), self.wait + 20)
            except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError,
                    IndexError, asyncio.TimeoutError) as e:
                c.in_flight = False
                if self._stop.is_set():
                    break
                c.cut += 1
                c.note_error(f"no answer: {e!r}")
                writer.close()
                reader = writer = None
                failures += 1
                await self._sleep(self._backoff(failures))
                continue
            c.in_flight = False
            c.history.append((c.sent_at, time.monotonic(), status, c.version))
            if hdrs.get("connection", "").lower() == "close":
                writer.close()
                reader = writer = None
            if status == 200:
                failures = 0
                c.n200 += 1
                tag = hdrs.get("etag")
                if tag != etag_of(body):
                    c.bad_etag += 1
                    c.note_error(f"200 ETag {tag} is not {etag_of(body)} computed from the body")
                try:
                    version = json.loads(body)["run"]["summary_counts"]["processed"]
                except (ValueError, KeyError, TypeError):
                    version = c.version
                if version < c.version:
                    c.stale += 1
                    c.note_error(f"200 with processed={version} after {c.version}")
                if version > c.version:
                    c.version_at = time.monotonic()
                c.version = max(c.version, version)
                c.etag = tag
                c.last_at = time.monotonic()
            elif status == 304:
                failures = 0
                c.n304 += 1
                if hdrs.get("etag") != sent_etag:
                    c.bad_etag += 1
                    c.note_error(f"304 ETag {hdrs.get('etag')} for If-None-Match {sent_etag}")
            elif status in (401, 404):
                c.done_status, c.done_at = status, time.monotonic()
                break
            else:
                c.other[status] = c.other.get(status, 0) + 1
                c.note_error(f"{status} {body[:120]!r}")
                ra = hdrs.get("retry-after")
                if ra is not None and ra.isdigit():
                    await self._sleep(int(ra) * (1 + random.random() / 4))
                else:
                    failures += 1
                    await self._sleep(self._backoff(failures))
        if writer is not None:
            writer.close()

    async def _sleep(self, s):
        try:
            await asyncio.wait_for(self._stop.wait(), s)
        except asyncio.TimeoutError:
            pass

    async def _main(self):
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._sem = asyncio.Semaphore(self.connect_concurrency)
        self._writers = {}
        self._tasks = [asyncio.ensure_future(self._client(c)) for c in self.clients]
        self._started.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for t in self._tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()

    def _halt(self):
        self._stop.set()
        for t in self._tasks:
            t.cancel()  # a held request is abandoned where it is (its socket closed), not counted

    def _run(self):
        try:
            asyncio.run(self._main())
        except BaseException as e:  # surfaced by stop()
            self.exc = e
        finally:
            self._started.set()

    # -- control, from the test's thread

    def start(self):
        self._thread = threading.Thread(target=self._run, name="browsers", daemon=True)
        self._thread.start()
        self._started.wait(10)
        return self

    def stop(self, timeout=30.0):
        """Stop every client (a request in flight is abandoned, not counted) and join the thread."""
        if self._loop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._halt)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("browser clients did not stop")
        if self.exc is not None:
            raise self.exc

    def totals(self):
        t = {"clients": len(self.clients), "200": 0, "304": 0, "cut": 0, "stale": 0, "bad_etag": 0, "other": {}}
        for c in self.clients:
            t["200"] += c.n200
            t["304"] += c.n304
            t["cut"] += c.cut
            t["stale"] += c.stale
            t["bad_etag"] += c.bad_etag
            for k, v in c.other.items():
                t["other"][k] = t["other"].get(k, 0) + v
        t["errors"] = t["cut"] + sum(t["other"].values())
        return t

    def error_samples(self, n=5):
        out = []
        for c in self.clients:
            for e in c.errors:
                out.append(f"client {c.idx} run {c.run}: {e}")
                if len(out) >= n:
                    return out
        return out

    def lagging(self, want):
        """Clients whose version is below want[run] (want: {run: version})."""
        return [c for c in self.clients if c.version < want.get(c.run, -1)]

    def wait_versions(self, want, timeout, what="every client at the current version"):
        """Block until every client has seen want[run]; returns the seconds it took. AssertionError
        (with a sample of the laggards) on timeout."""
        t0 = time.monotonic()
        deadline = t0 + timeout
        while True:
            late = self.lagging(want)
            if not late:
                return time.monotonic() - t0
            if time.monotonic() > deadline:
                sample = ", ".join(f"client {c.idx} run {c.run} at {c.version} (want {want[c.run]}; "
                                   f"last error {c.last_error})" for c in late[:5])
                raise AssertionError(f"{len(late)} clients not at the current version after {timeout}s "
                                     f"({what}): {sample}")
            time.sleep(0.01)
