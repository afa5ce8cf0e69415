"""A held answer's bytes (gateway/render.c): built once per version, written in one call, and the
connection left to evhttp exactly as if evhttp had written the answer.

Every waiter of one version shares its status line, headers and body; what is its own (X-Request-Id,
Date, CORS for its Origin, Connection: close) is added per answer. These tests read the answers off raw
sockets: the header set, the framing (Content-Length, HEAD), keep-alive after the answer, an answer the
socket cannot take at once, and HTTP/1.0, which keeps evhttp's own writer.
"""

import socket

import pytest

from helpers import make_demo_world, make_run, set_run, wait_for

ADMIN = "https://admin.example.com"


@pytest.fixture
def world(db):
    return make_demo_world(db)


def held(gw):
    return gw.metrics().value("pollgate_waiters_held", kind="run")


class Conn:
    """One keep-alive connection read by hand: every answer's status line, raw header lines and body."""

    def __init__(self, gw, rcvbuf=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(30)
        self.s.connect((gw.host, gw.port))
        self.buf = b""

    def send(self, method, path, headers, version="HTTP/1.1"):
        lines = [f"{method} {path} {version}", "Host: test"] + [f"{k}: {v}" for k, v in headers.items()]
        self.s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def _fill(self):
        b = self.s.recv(65536)
        if not b:
            raise EOFError("connection closed")
        self.buf += b

    def read(self, head_only=False):
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = [tuple(x.strip() for x in line.split(":", 1)) for line in lines]
        n = 0 if head_only else int(dict((k.lower(), v) for k, v in headers).get("content-length", "0"))
        while len(self.buf) < n:
            self._fill()
        body, self.buf = self.buf[:n], self.buf[n:]
        return status_line, headers, body

    def closed(self):
        """True once the peer has closed (after every byte it sent was read)."""
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, socket.timeout):
            return False

    def close(self):
        self.s.close()


def names(headers):
    return sorted(k.lower() for k, _ in headers)


def value(headers, name):
    (v,) = [v for k, v in headers if k.lower() == name.lower()]
    return v


def etag_of(gw, path):
    return gw.get(path + "?wait=0", token="tok-alice").etag


def test_a_held_200_carries_each_of_its_headers_once_and_the_waiter_s_own_lines(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = gateway(cors_origins=ADMIN)
    etag = etag_of(gw, "/v1/runs/42")
    conns = [Conn(gw) for _ in range(3)]
    for i, c in enumerate(conns):
        c.send("GET", "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag,
                                              "Origin": ADMIN})
    wait_for(lambda: held(gw) == 3, what="3 held")
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    answers = [c.read() for c in conns]
    bodies, rids = set(), set()
    for status, headers, body in answers:
        assert status == "HTTP/1.1 200 OK"
        assert names(headers) == sorted([
            "access-control-allow-credentials", "access-control-allow-origin", "access-control-expose-headers",
            "cache-control", "content-length", "content-type", "date", "etag", "vary", "x-content-type-options",
            "x-request-id"]), headers
        rids.add(value(headers, "X-Request-Id"))
        assert value(headers, "Access-Control-Allow-Origin") == ADMIN
        assert value(headers, "Vary") == "Origin"
        assert value(headers, "Cache-Control") == "no-store"
        assert value(headers, "X-Content-Type-Options") == "nosniff"
        assert value(headers, "Content-Type") == "application/json"
        assert int(value(headers, "Content-Length")) == len(body)
        assert value(headers, "ETag") != etag
        bodies.add(body)
    assert len(bodies) == 1 and b'"processed":2' in bodies.pop()
    assert len(rids) == 3  # each answer its own request id, the rest shared
    # Keep-alive: each connection serves its next request, and an unchanged version is a 304 with no body.
    new = value(answers[0][1], "ETag")
    for c in conns:
        c.send("GET", "/v1/runs/42?wait=1", {"Authorization": "Bearer tok-alice", "If-None-Match": new})
    for c in conns:
        status, headers, body = c.read()
        assert status == "HTTP/1.1 304 Not Modified" and body == b""
        assert "content-length" not in names(headers) and value(headers, "ETag") == new
        c.close()


def test_a_held_head_gets_the_get_headers_and_no_body_and_the_connection_stays_framed(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = gateway()
    etag = etag_of(gw, "/v1/runs/42")
    c = Conn(gw)
    c.send("HEAD", "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag})
    wait_for(lambda: held(gw) == 1, what="1 held")
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    status, headers, _ = c.read(head_only=True)
    assert status == "HTTP/1.1 200 OK"
    full = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert int(value(headers, "Content-Length")) == len(full.body)
    # The next answer on the connection starts right after the head: no body bytes in between.
    c.send("GET", "/v1/runs/42?wait=0", {"Authorization": "Bearer tok-alice"})
    status, headers, body = c.read()
    assert status == "HTTP/1.1 200 OK" and body == full.body
    c.close()


def test_connection_close_asked_by_the_client_is_answered_and_honoured(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = gateway()
    etag = etag_of(gw, "/v1/runs/42")
    c = Conn(gw)
    c.send("GET", "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag,
                                          "Connection": "close"})
    wait_for(lambda: held(gw) == 1, what="1 held")
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    status, headers, body = c.read()
    assert status == "HTTP/1.1 200 OK" and body
    assert value(headers, "Connection") == "close"
    assert c.closed()
    c.close()


def test_an_answer_the_socket_cannot_take_at_once_arrives_whole_and_the_connection_goes_on(gateway, world, db):
    # ~5.6 MB of incompressible JSON: more than a socket's send buffer can ever grow to (tcp_wmem's
    # maximum is 4 MB), so the writev is partial and the rest goes through the bufferevent.
    with db.cursor() as cur:
        cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, failure_summary) "
                    "VALUES (42, 1, 7, 'inventory.sync', 'running', jsonb_build_object('errors', "
                    "(SELECT jsonb_agg(md5(g::text)) FROM generate_series(1, 160000) g)))")
    gw = gateway()
    etag = etag_of(gw, "/v1/runs/42")
    c = Conn(gw, rcvbuf=4096)
    c.send("GET", "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag})
    wait_for(lambda: held(gw) == 1, what="1 held")
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    status, headers, body = c.read()
    assert status == "HTTP/1.1 200 OK"
    assert len(body) == int(value(headers, "Content-Length")) > 5_000_000
    run = __import__("json").loads(body)["run"]
    assert run["summary_counts"] == {"total": 10, "processed": 2} and len(run["failure_summary"]["errors"]) == 160000
    c.send("GET", "/v1/runs/42?wait=0", {"Authorization": "Bearer tok-alice", "If-None-Match": value(headers, "ETag")})
    status, _, body = c.read()
    assert status == "HTTP/1.1 304 Not Modified" and body == b""
    c.close()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == 0, what="nothing held")


def test_a_held_http_1_0_request_is_answered_in_1_0_and_closed(gateway, world, db):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = gateway()
    etag = etag_of(gw, "/v1/runs/42")
    c = Conn(gw)
    c.send("GET", "/v1/runs/42?wait=30", {"Authorization": "Bearer tok-alice", "If-None-Match": etag},
           version="HTTP/1.0")
    wait_for(lambda: held(gw) == 1, what="1 held")
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    status, headers, _ = c.read(head_only=True)
    assert status == "HTTP/1.0 200 OK"
    assert "connection" not in names(headers) or value(headers, "Connection").lower() == "close"
    body = c.buf  # HTTP/1.0 without keep-alive: the body ends where the connection does
    while True:
        b = c.s.recv(65536)
        if not b:
            break
        body += b
    assert b'"processed":2' in body and body.endswith(b"}")
    c.close()
