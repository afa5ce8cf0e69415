"""Helpers for pollgate's integration tests: rows in the reference schema, HTTP, many held requests.

Nothing here starts a process; conftest.py owns the fixtures (pg, db, gateway) and uses these.

Database helpers take an open psycopg2 connection in autocommit mode (the `db` fixture) and insert rows
with explicit fields, returning the new row's id. jsonb columns accept Python dicts/lists; any value may
be `Raw("now() - interval '5 seconds'")` to pass an SQL expression instead of a parameter.

HTTP helpers speak plain HTTP/1.1 with the standard library only (http.client, asyncio streams).
"""

import asyncio
import hashlib
import json
import os
import socket
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import http.client as _httpclient

import psycopg2
import psycopg2.extras
from psycopg2 import sql


REPO = Path(__file__).resolve().parents[2]
SCHEMA_SQL = REPO / "db" / "schema.sql"
MIGRATIONS_DIR = REPO / "db" / "migrations"
DEMO_SQL = REPO / "db" / "demo.sql"
GRANT_SQL = REPO / "db" / "grant.sql"

# The suite's gateways connect as GATEWAY_DB_USER, a LOGIN user that is only a member of GATEWAY_DB_ROLE,
# the SELECT-only role db/grant.sql makes (applied with -v role=GATEWAY_DB_ROLE: its default name,
# pollgate_gateway, is created and dropped by test_infra's demo check, so the suite's role has its own).
GATEWAY_DB_ROLE = "pollgate_gateway_test"
GATEWAY_DB_USER = "pollgate_gw"
# The same role, with REPLICATION (hint_source = logical; conftest.py creates it).
GATEWAY_DB_LOGICAL_USER = "pollgate_gw_logical"


def hint_source():
    """The hint source the suite's gateways use by default: $POLLGATE_HINT_SOURCE, else notify.
    scripts/test-integration.sh runs the hint-dependent files once more with logical."""
    v = os.environ.get("POLLGATE_HINT_SOURCE", "notify") or "notify"
    if v not in ("notify", "logical"):
        raise RuntimeError(f"POLLGATE_HINT_SOURCE={v!r}: use notify or logical")
    return v


def listen_session_name():
    """application_name of the gateway's hint session under the current hint source."""
    return "pollgate-logical" if hint_source() == "logical" else "pollgate-listen"


def migrations():
    """db/migrations/*.sql in name order."""
    return sorted(MIGRATIONS_DIR.glob("*.sql"))


# --------------------------------------------------------------------------------------------------
# Small utilities


def free_port(host="127.0.0.1"):
    """A TCP port on `host` that nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    """Poll `predicate()` until it returns a truthy value, which is returned; AssertionError after
    `timeout` seconds. Use this instead of sleeping whenever an outcome can be observed."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
            last_exc = None
        except Exception as e:  # the thing polled may not be up yet
            last_exc = e
        if time.monotonic() >= deadline:
            extra = f" (last error: {last_exc!r})" if last_exc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{extra}")
        time.sleep(interval)


def sha256(token):
    """SHA-256 of the token's UTF-8 bytes, as stored in access_tokens.token_sha256."""
    if isinstance(token, str):
        token = token.encode("utf-8")
    return hashlib.sha256(token).digest()


def bearer(token):
    """Headers for `Authorization: Bearer <token>`."""
    return {"Authorization": f"Bearer {token}"}


def pollgate_bin():
    """The binary under test: $POLLGATE_BIN, else ./pollgate at the top of the checkout."""
    return Path(os.environ.get("POLLGATE_BIN") or (REPO / "pollgate"))


def run_pollgate(*args, timeout=20.0, env=None, input=None):
    """Run the binary to completion (e.g. "--version", or "--check-config", "-c", path); returns the
    CompletedProcess with text stdout and stderr."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([str(pollgate_bin())] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, env=full_env, input=input)


# --------------------------------------------------------------------------------------------------
# Rows


class Raw:
    """An SQL expression used verbatim as a column value, e.g. Raw("now()")."""

    def __init__(self, expr):
        self.expr = expr

    def __repr__(self):
        return f"Raw({self.expr!r})"


NOW = Raw("now()")

SCHEMA_TABLES = (
    "users",
    "workspaces",
    "tenants",
    "workspace_memberships",
    "tenant_memberships",
    "role_capabilities",
    "access_tokens",
    "operation_runs",
    "review_packs",
)

RUN_COLUMNS = frozenset((
    "id", "workspace_id", "tenant_id", "user_id", "type", "status", "outcome", "context",
    "summary_counts", "failure_summary", "created_at", "started_at", "completed_at",
))
PACK_COLUMNS = frozenset((
    "id", "workspace_id", "tenant_id", "operation_run_id", "initiated_by_user_id", "status", "options",
    "summary", "generated_at", "expires_at", "file_path", "file_disk", "file_size", "created_at",
    "updated_at",
))
TOKEN_COLUMNS = frozenset(("id", "user_id", "token_sha256", "expires_at", "revoked_at", "created_at"))


def _value(v):
    """One column value as an SQL fragment: Raw verbatim, dict/list as jsonb, else a parameter."""
    if isinstance(v, Raw):
        return sql.SQL(v.expr)
    if isinstance(v, (dict, list)):
        return sql.SQL("{}::jsonb").format(sql.Literal(json.dumps(v)))
    return sql.Literal(v)


def _check_columns(table, cols, allowed):
    bad = sorted(set(cols) - allowed)
    if bad:
        raise ValueError(f"{table}: unknown column(s) {bad}")


def insert_row(conn, table, returning="id", **cols):
    """INSERT one row with the given columns; returns the `returning` column (None for no RETURNING).
    Columns whose value is None are inserted as NULL (omit a key to get the column default)."""
    if table not in SCHEMA_TABLES:
        raise ValueError(f"not a schema table: {table}")
    names = list(cols)
    q = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(n) for n in names),
        sql.SQL(", ").join(_value(cols[n]) for n in names),
    )
    if returning:
        q = q + sql.SQL(" RETURNING {}").format(sql.Identifier(returning))
    with conn.cursor() as cur:
        cur.execute(q)
        return cur.fetchone()[0] if returning else None


def update_row(conn, table, key, key_value, **cols):
    """UPDATE table SET cols WHERE key = key_value; returns the number of rows changed."""
    if table not in SCHEMA_TABLES:
        raise ValueError(f"not a schema table: {table}")
    if not cols:
        raise ValueError("nothing to set")
    q = sql.SQL("UPDATE {} SET {} WHERE {} = {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(n), _value(v)) for n, v in cols.items()),
        sql.Identifier(key),
        sql.Literal(key_value),
    )
    with conn.cursor() as cur:
        cur.execute(q)
        return cur.rowcount


def _with_id(id, cols):
    if id is not None:
        cols["id"] = id
    return cols


def make_workspace(conn, id=None, name=None):
    """A workspace; returns its id."""
    return insert_row(conn, "workspaces", **_with_id(id, {"name": name or f"workspace {id or ''}".strip()}))


def make_tenant(conn, workspace_id, id=None, name=None):
    """A tenant in `workspace_id`; returns its id."""
    return insert_row(conn, "tenants", **_with_id(id, {"workspace_id": workspace_id,
                                                       "name": name or f"tenant {id or ''}".strip()}))


def make_user(conn, id=None, email=None):
    """A user; returns its id."""
    if email is None:
        email = f"user{id}@test.invalid" if id is not None else None
    return insert_row(conn, "users", **_with_id(id, {"email": email}))


def add_workspace_member(conn, workspace_id, user_id, role="member"):
    insert_row(conn, "workspace_memberships", returning=None,
               workspace_id=workspace_id, user_id=user_id, role=role)


def add_tenant_member(conn, tenant_id, user_id, role="member"):
    insert_row(conn, "tenant_memberships", returning=None, tenant_id=tenant_id, user_id=user_id, role=role)


def grant_capability(conn, role, capability):
    """role_capabilities row (no error if it exists already)."""
    with conn.cursor() as cur:
        cur.execute("INSERT INTO role_capabilities (role, capability) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (role, capability))


def make_token(conn, user_id, token, expires_at=None, revoked=False, id=None):
    """access_tokens row for `token` (stored as its SHA-256). expires_at: datetime, Raw or None;
    revoked=True sets revoked_at = now(). Returns the row id."""
    cols = {"user_id": user_id, "token_sha256": psycopg2.Binary(sha256(token)), "expires_at": expires_at,
            "revoked_at": NOW if revoked else None}
    return insert_row(conn, "access_tokens", **_with_id(id, cols))


def revoke_token(conn, token):
    """Sets revoked_at = now() on the token's row; returns rows changed."""
    with conn.cursor() as cur:
        cur.execute("UPDATE access_tokens SET revoked_at = now() WHERE token_sha256 = %s",
                    (psycopg2.Binary(sha256(token)),))
        return cur.rowcount


def make_principal(conn, token, workspace_id, tenant_ids=(), role="owner", capabilities=(),
                   user_id=None, email=None):
    """A user with a token, a membership of `workspace_id`, a tenant_memberships row with `role` for each
    of `tenant_ids`, and `role` granted each of `capabilities`. The workspace and tenants must exist.
    Returns the user id."""
    uid = make_user(conn, id=user_id, email=email)
    add_workspace_member(conn, workspace_id, uid, role="member")
    for t in tenant_ids:
        add_tenant_member(conn, t, uid, role=role)
    for cap in capabilities:
        grant_capability(conn, role, cap)
    make_token(conn, uid, token)
    return uid


def make_run(conn, workspace_id, tenant_id=None, id=None, type="inventory.sync", status="queued", **cols):
    """operation_runs row; any other column by keyword (outcome, summary_counts, failure_summary,
    context, user_id, created_at, started_at, completed_at). Returns the id."""
    cols.update(workspace_id=workspace_id, tenant_id=tenant_id, type=type, status=status)
    _with_id(id, cols)
    _check_columns("operation_runs", cols, RUN_COLUMNS)
    return insert_row(conn, "operation_runs", **cols)


def set_run(conn, id, **cols):
    """UPDATE operation_runs SET cols WHERE id = id (fires the NOTIFY trigger). Returns rows changed."""
    _check_columns("operation_runs", cols, RUN_COLUMNS)
    return update_row(conn, "operation_runs", "id", id, **cols)


def make_pack(conn, workspace_id, tenant_id, id=None, status="generating", **cols):
    """review_packs row; any other column by keyword (operation_run_id, initiated_by_user_id, options,
    summary, generated_at, expires_at, file_path, file_disk, file_size, created_at, updated_at).
    Returns the id."""
    cols.update(workspace_id=workspace_id, tenant_id=tenant_id, status=status)
    _with_id(id, cols)
    _check_columns("review_packs", cols, PACK_COLUMNS)
    return insert_row(conn, "review_packs", **cols)


def set_pack(conn, id, **cols):
    """UPDATE review_packs SET cols WHERE id = id. updated_at is NOT touched unless given
    (pass updated_at=NOW to do what the application does). Returns rows changed."""
    _check_columns("review_packs", cols, PACK_COLUMNS)
    return update_row(conn, "review_packs", "id", id, **cols)


def make_demo_world(conn):
    """The shape of db/demo.sql in a few calls, for tests that just need a valid principal and
    resources: workspace 1 with tenants 7 and 8, workspace 2 with tenant 9; alice (token 'tok-alice',
    tenants 7 and 8 as 'owner' with review_packs.view), bob ('tok-bob', tenant 7 as 'readonly', no
    capability), eve ('tok-eve', workspace 2 / tenant 9 'owner'). No runs or packs.
    Returns a dict of the ids."""
    make_workspace(conn, id=1, name="Acme")
    make_workspace(conn, id=2, name="Globex")
    make_tenant(conn, 1, id=7, name="Acme EU")
    make_tenant(conn, 1, id=8, name="Acme US")
    make_tenant(conn, 2, id=9, name="Globex Main")
    alice = make_principal(conn, "tok-alice", 1, tenant_ids=(7, 8), role="owner",
                           capabilities=("review_packs.view",), user_id=1, email="alice@acme.test")
    bob = make_principal(conn, "tok-bob", 1, tenant_ids=(7,), role="readonly",
                         capabilities=("runs.view",), user_id=2, email="bob@acme.test")
    eve = make_principal(conn, "tok-eve", 2, tenant_ids=(9,), role="owner",
                         capabilities=("review_packs.view",), user_id=3, email="eve@globex.test")
    with conn.cursor() as cur:  # explicit ids above: keep later identity values clear of them
        for t in ("users", "workspaces", "tenants", "access_tokens", "operation_runs", "review_packs"):
            cur.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 1000)", (t,))
    return {"workspaces": (1, 2), "tenants": (7, 8, 9), "alice": alice, "bob": bob, "eve": eve,
            "tokens": {"alice": "tok-alice", "bob": "tok-bob", "eve": "tok-eve"}}


# --------------------------------------------------------------------------------------------------
# HTTP


class Headers(dict):
    """Response headers, case-insensitive on lookup. A repeated header keeps its last value here;
    get_all(name) has every value in order."""

    def __init__(self, pairs=()):
        super().__init__()
        self._all = []
        for k, v in pairs:
            self._all.append((k, v))
            super().__setitem__(k.lower(), v)

    def __getitem__(self, k):
        return super().__getitem__(k.lower())

    def __contains__(self, k):
        return super().__contains__(k.lower())

    def get(self, k, default=None):
        return super().get(k.lower(), default)

    def get_all(self, k):
        k = k.lower()
        return [v for name, v in self._all if name.lower() == k]

    def items_raw(self):
        """(name, value) pairs as received, in order."""
        return list(self._all)


class Response:
    """One HTTP response. Unpacks as (status, headers, body). status is 0 and `error` is set when no
    response was read (connection refused/reset, timeout). `elapsed` is seconds from sending the
    request to the end of the response."""

    __slots__ = ("status", "headers", "body", "elapsed", "error", "request")

    def __init__(self, status, headers, body, elapsed=0.0, error=None, request=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.elapsed = elapsed
        self.error = error
        self.request = request

    def __iter__(self):
        return iter((self.status, self.headers, self.body))

    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def etag(self):
        return self.headers.get("ETag")

    def __repr__(self):
        err = f" error={self.error!r}" if self.error else ""
        return f"<Response {self.status} {len(self.body or b'')}B {self.elapsed:.3f}s{err}>"


def http(method, url, headers=None, body=None, timeout=70.0):
    """One request on a fresh connection (closed afterwards). Returns a Response, which unpacks as
    (status, headers, body). Connection errors raise (use async_many_get for error-tolerant bulk)."""
    u = urllib.parse.urlsplit(url)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    if isinstance(body, str):
        body = body.encode("utf-8")
    conn = _httpclient.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
    t0 = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        r = conn.getresponse()
        data = r.read()
        return Response(r.status, Headers(r.getheaders()), data, time.monotonic() - t0)
    finally:
        conn.close()


def get(url, headers=None, timeout=70.0):
    return http("GET", url, headers=headers, timeout=timeout)


def get_json(url, headers=None, timeout=70.0):
    """GET; returns (status, headers, parsed JSON body or None for an empty body)."""
    r = http("GET", url, headers=headers, timeout=timeout)
    return r.status, r.headers, r.json()


def raw_request(host, port, data, timeout=10.0, read_until_close=True):
    """Send raw bytes on a fresh TCP connection and return every byte received until the peer closes
    (or `timeout`). For malformed-request tests."""
    chunks = []
    with socket.create_connection((host, port), timeout=timeout) as s:
        if data:
            s.sendall(data)
        deadline = time.monotonic() + timeout
        while read_until_close and time.monotonic() < deadline:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                b = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                break
            if not b:
                break
            chunks.append(b)
    return b"".join(chunks)


# --------------------------------------------------------------------------------------------------
# Many held requests at once: one asyncio loop, one socket per request, no thread per request.


def _normalise_request(req):
    """url | (url, headers) | {"url":..., "headers":..., "method":...} -> (method, url, headers)."""
    if isinstance(req, str):
        return "GET", req, {}
    if isinstance(req, dict):
        return req.get("method", "GET"), req["url"], dict(req.get("headers") or {})
    url, headers = req
    return "GET", url, dict(headers or {})


async def _one_request(req, timeout, connect_sem, sent_cb):
    method, url, headers = _normalise_request(req)
    u = urllib.parse.urlsplit(url)
    path = (u.path or "/") + ("?" + u.query if u.query else "")
    host, port = u.hostname, u.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    writer = None
    t0 = time.monotonic()
    try:
        async with connect_sem:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            writer.write(payload)
            await writer.drain()
        t0 = time.monotonic()
        sent_cb()

        async def read_response():
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionError("connection closed before a response")
            parts = status_line.decode("latin-1").split(" ", 2)
            status = int(parts[1])
            pairs = []
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                pairs.append((k.strip(), v.strip()))
            hdrs = Headers(pairs)
            if status == 304 or status == 204 or 100 <= status < 200 or method == "HEAD":
                body = b""
            elif "content-length" in hdrs:
                body = await reader.readexactly(int(hdrs["content-length"]))
            elif hdrs.get("transfer-encoding", "").lower() == "chunked":
                body = b""
                while True:
                    size = int((await reader.readline()).split(b";")[0].strip(), 16)
                    if size == 0:
                        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    body += await reader.readexactly(size)
                    await reader.readline()
            else:
                body = await reader.read()
            return status, hdrs, body

        status, hdrs, body = await asyncio.wait_for(read_response(), timeout)
        return Response(status, hdrs, body, time.monotonic() - t0, request=req)
    except Exception as e:  # reported per request, never raised: bulk callers check .status/.error
        return Response(0, Headers(), b"", time.monotonic() - t0, error=e, request=req)
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except Exception:
                pass


class ManyGets:
    """Hold many requests concurrently from one background thread running one asyncio loop.

        with ManyGets(requests, timeout=40) as mg:
            mg.wait_sent()          # every request written to its socket
            ...change the database...
            responses = mg.results()  # list of Response, in request order

    requests: iterable of url strings, (url, headers) tuples, or {"url", "headers", "method"} dicts.
    timeout: per request, from connect to the end of the response. connect_concurrency bounds how
    many connections are being opened at the same moment (not how many are held).
    Remember the process's descriptor limit: conftest raises the soft RLIMIT_NOFILE to the hard one.
    """

    def __init__(self, requests, timeout=60.0, connect_concurrency=200):
        self.requests = list(requests)
        self.timeout = timeout
        self.connect_concurrency = connect_concurrency
        self._sent = 0
        self._sent_lock = threading.Lock()
        self._all_sent = threading.Event()
        self._done = threading.Event()
        self._results = None
        self._exc = None
        self._thread = None
        if not self.requests:
            self._all_sent.set()

    def _on_sent(self):
        with self._sent_lock:
            self._sent += 1
            if self._sent == len(self.requests):
                self._all_sent.set()

    @property
    def sent(self):
        """How many requests have been written so far."""
        return self._sent

    async def _main(self):
        sem = asyncio.Semaphore(self.connect_concurrency)
        tasks = [_one_request(r, self.timeout, sem, self._on_sent) for r in self.requests]
        return await asyncio.gather(*tasks)

    def _run(self):
        try:
            self._results = asyncio.run(self._main())
        except BaseException as e:  # surfaced by results()
            self._exc = e
        finally:
            self._all_sent.set()
            self._done.set()

    def start(self):
        self._thread = threading.Thread(target=self._run, name="many-gets", daemon=True)
        self._thread.start()
        return self

    def wait_sent(self, timeout=30.0):
        """Block until every request has been written (failed connects count as not sent: this then
        returns when the loop finishes). AssertionError on timeout."""
        if not self._all_sent.wait(timeout):
            raise AssertionError(f"only {self._sent}/{len(self.requests)} requests sent after {timeout}s")

    def results(self, timeout=None):
        """Wait for every response (default: the per-request timeout plus a margin) and return the
        list of Response in request order."""
        if timeout is None:
            timeout = self.timeout + 30.0
        if not self._done.wait(timeout):
            raise AssertionError(f"requests still outstanding after {timeout}s")
        if self._exc is not None:
            raise self._exc
        return self._results

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        # Always let the loop finish so no socket outlives the block.
        self._done.wait(self.timeout + 30.0)
        return False


def async_many_get(requests, timeout=60.0, connect_concurrency=200):
    """Send every request at once and wait for all responses; returns the list of Response in request
    order (status 0 with .error for a request that got none). For holding requests while something
    else happens, use ManyGets."""
    return ManyGets(requests, timeout=timeout, connect_concurrency=connect_concurrency).start().results()


# --------------------------------------------------------------------------------------------------
# Many requests in a row on one connection


class KeepAlive:
    """One persistent HTTP/1.1 connection for many requests in a row (http.client), e.g. a table of
    cases or timing samples without a TCP handshake per request. Not thread-safe: one per thread.

        with KeepAlive(gw.url) as c:
            r = c.get("/v1/runs/42?wait=0", headers=bearer("tok"))

    get()/request() return a Response whose `elapsed` is time.perf_counter() seconds from writing the
    request to the last body byte. When the server closed the connection (it answered
    `Connection: close`, or dropped an idle one), the next request opens a new one; `connects` counts
    the connections opened."""

    def __init__(self, url, timeout=30.0):
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.timeout = timeout
        self.conn = None
        self.connects = 0

    def _open(self):
        self.conn = _httpclient.HTTPConnection(self.host, self.port, timeout=self.timeout)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connects += 1

    def request(self, method, path, headers=None):
        for attempt in (0, 1):
            fresh = self.conn is None
            if fresh:
                self._open()
            try:
                t0 = time.perf_counter()
                self.conn.request(method, path, headers=dict(headers or {}))
                r = self.conn.getresponse()
                data = r.read()
                elapsed = time.perf_counter() - t0
            except (_httpclient.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.close()
                if fresh or attempt:  # a brand-new connection failing is a real failure
                    raise
                continue
            resp = Response(r.status, Headers(r.getheaders()), data, elapsed, request=(method, path))
            if r.will_close:
                self.close()
            return resp
        raise AssertionError("unreachable")

    def get(self, path, headers=None):
        return self.request("GET", path, headers=headers)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def comparable(r):
    """(status, sorted headers but Date and X-Request-Id, body) of a Response: equal for two answers
    that must be byte-identical (api.md: every 404 alike, whatever the reason)."""
    hdrs = sorted((k.lower(), v) for k, v in r.headers.items_raw() if k.lower() not in ("date", "x-request-id"))
    return r.status, hdrs, r.body


# --------------------------------------------------------------------------------------------------
# Denials: the reference 404 and 401 a denial must be identical to

MISSING_ID = 987654321987  # no test inserts this id: a run or tenant that does not exist


def missing_path(kind="run"):
    """The path of a resource that does not exist: kind 'run' or 'review_pack'."""
    return f"/v1/runs/{MISSING_ID}" if kind == "run" else f"/v1/tenants/{MISSING_ID}/review-pack"


def wire_headers(r):
    """The headers of a Response as received (names, values, order), but Date and X-Request-Id: what two
    answers that must be indistinguishable have to share."""
    return [(k, v) for k, v in r.headers.items_raw() if k.lower() not in ("date", "x-request-id")]


def reference_404(base_url, token, kind="run", method="GET", close=False):
    """The reference 404: `method` on a missing id of `kind`, asked now by `token` with ?wait=0.
    close=True sends `Connection: close` (as ManyGets does), which the answer echoes: build the reference
    with the framing of the answer it is compared with."""
    h = {"Authorization": f"Bearer {token}"}
    if close:
        h["Connection"] = "close"
    r = http(method, base_url + missing_path(kind) + "?wait=0", headers=h, timeout=10.0)
    assert r.status == 404, f"the reference 404 ({method} {missing_path(kind)} as {token}) is {r!r}"
    assert r.headers.get("Cache-Control") == "no-store" and r.headers.get("X-Request-Id"), r.headers.items_raw()
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers.items_raw()
    if method != "HEAD":
        assert json.loads(r.body)["error"]["code"] == "not_found", r.body
    return r


def reference_401(base_url, method="GET", close=False):
    """The reference 401: a token nobody issued, on an existing route."""
    h = {"Authorization": "Bearer tok-never-issued"}
    if close:
        h["Connection"] = "close"
    r = http(method, base_url + missing_path("run") + "?wait=0", headers=h, timeout=10.0)
    assert r.status == 401, f"the reference 401 is {r!r}"
    return r


def assert_same_404(r, ref, what=""):
    """`r` is the reference 404 `ref` byte for byte: status, every header but Date and X-Request-Id (same
    names, values and order) and body. A denial must not tell forbidden from missing."""
    why = f" ({what})" if what else ""
    assert r.status == 404, f"want the 404{why}, got {r!r} {r.body[:200]!r}"
    assert wire_headers(r) == wire_headers(ref), f"headers differ from the reference 404{why}: " \
                                                 f"{wire_headers(r)} vs {wire_headers(ref)}"
    assert r.body == ref.body, f"body differs from the reference 404{why}: {r.body[:200]!r} vs {ref.body[:200]!r}"


def assert_401(r, ref=None, what=""):
    """`r` is a 401 with `WWW-Authenticate: Bearer` and the JSON error body (code unauthorized); with
    `ref` (reference_401), also identical to it but for Date and X-Request-Id."""
    why = f" ({what})" if what else ""
    assert r.status == 401, f"want 401{why}, got {r!r} {r.body[:200]!r}"
    assert r.headers.get_all("WWW-Authenticate") == ["Bearer"], f"{r.headers.items_raw()}{why}"
    assert r.headers.get("Cache-Control") == "no-store" and r.headers.get("X-Request-Id"), r.headers.items_raw()
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers.items_raw()
    body = json.loads(r.body)
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"], body
    assert body["error"]["code"] == "unauthorized" and body["error"]["message"], body
    if ref is not None:
        assert wire_headers(r) == wire_headers(ref), f"headers differ from the reference 401{why}: " \
                                                     f"{wire_headers(r)} vs {wire_headers(ref)}"
        assert r.body == ref.body, f"body differs from the reference 401{why}"
