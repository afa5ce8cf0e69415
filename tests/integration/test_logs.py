"""Logs a shipper can use: logfmt and JSON lines that parse back to the right fields whatever a client
sends (issue 9, hole 6: log injection), the access log, and no secret in any of them.

Every test reads the real gateway's log file: the logfmt lines are parsed with the small parser below
(logfmt as Go's and Python's common parsers read it: key=value, a value either bare or double-quoted
with backslash escapes), the JSON lines with json.loads.
"""

import json
import re
import threading

import pytest

from helpers import (
    http, make_demo_world, make_run, make_token, raw_request, revoke_token, set_run, wait_for,
)


# ---- a logfmt reader, independent of the gateway's own ----

_ESC = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f"}


def parse_logfmt(line):
    """One logfmt line -> list of (key, value) in order; raises ValueError when it is not logfmt."""
    out, i, n = [], 0, len(line)
    while i < n:
        while i < n and line[i] == " ":
            i += 1
        if i >= n:
            break
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*=").match(line, i)
        if not m:
            raise ValueError(f"no key at {i}: {line[i:i + 30]!r}")
        key = m.group(0)[:-1]
        i = m.end()
        if i < n and line[i] == '"':
            i += 1
            val = []
            while True:
                if i >= n:
                    raise ValueError("unterminated quote")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = line[i + 1]
                    if e == "u":
                        val.append(chr(int(line[i + 2:i + 6], 16)))
                        i += 6
                        continue
                    val.append(_ESC[e])
                    i += 2
                    continue
                val.append(c)
                i += 1
            if i < n and line[i] != " ":
                raise ValueError("text after a closing quote")
            out.append((key, "".join(val)))
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            v = line[i:j]
            if '"' in v:
                raise ValueError(f"quote in a bare value: {v!r}")
            out.append((key, v))
            i = j
    return out


def logfmt_lines(text):
    return [parse_logfmt(line) for line in text.splitlines() if line]


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line]


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    make_run(db, 1, tenant_id=7, id=42, status="running")
    return w


# A path evhttp 2.1 takes as it is: a space, a forged rid= and level=, a quote, ESC and a CR.
HOSTILE_PATH = b'/v1/runs/42 rid=forged level=error "q\x1b[31mred\rts=0'


def _send_hostile(gw):
    data = b"GET " + HOSTILE_PATH + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    return raw_request(gw.host, gw.port, data, timeout=10.0)


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_a_forged_field_or_escape_in_the_path_cannot_reach_the_log(gateway, world, fmt):
    gw = gateway(log_level="debug", log_format=fmt, access_log="on")
    resp = _send_hostile(gw)
    assert resp.startswith(b"HTTP/1.1 "), resp[:100]
    gw.stop()
    raw = gw.log_path.read_bytes()
    assert b"\x1b" not in raw, "a raw ESC reached the log"
    assert b"\r" not in raw, "a raw CR reached the log"
    text = raw.decode()
    want_path = HOSTILE_PATH.decode()
    lines = logfmt_lines(text) if fmt == "logfmt" else json_lines(text)
    seen = 0
    for fields in lines:
        if fmt == "logfmt":
            keys = [k for k, _ in fields]
            assert len(keys) == len(set(keys)), f"a key twice (forged?): {fields}"
            d = dict(fields)
        else:
            d = fields
        if d.get("msg") in ("request", "access") and d.get("path") not in ("/readyz", "/healthz", "/metrics"):
            seen += 1
            assert d["path"] == want_path, d
            assert d["rid"] != "forged" and re.fullmatch(r"[A-Za-z0-9._:-]+", d["rid"]), d
            assert d["level"] in ("debug", "info"), d
    assert seen == 2, f"expected the request line and the access line, saw {seen}:\n{text}"


def test_json_lines_carry_every_field_as_a_member(gateway, world):
    gw = gateway(log_level="debug", log_format="json")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200
    gw.stop()
    lines = json_lines(gw.log())
    assert lines, "no log lines"
    for d in lines:
        assert set(("ts", "level", "priority", "msg")) <= set(d), d
        assert {"error": 3, "warn": 4, "info": 6, "debug": 7}[d["level"]] == d["priority"], d
        assert "=" not in d["msg"], f"fields left inside msg: {d}"
    started = [d for d in lines if d["msg"] == "pollgate started"]
    assert started and started[0]["pool"] >= 1 and isinstance(started[0]["pool"], int), started
    lp = [d for d in lines if d["msg"] == "long-poll"]
    assert lp and lp[0]["id"] == 42 and lp[0]["kind"] == "run" and isinstance(lp[0]["wait_ms"], int), lp


def _access(gw, fmt, path=None):
    text = path.read_text() if path else gw.log()
    lines = logfmt_lines(text) if fmt == "logfmt" else json_lines(text)
    out = []
    for fields in lines:
        d = dict(fields) if fmt == "logfmt" else fields
        if d.get("msg") == "access":
            out.append(d)
    return out


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_access_log_one_line_per_answer_with_its_reason(gateway, world, db, tmp_path, fmt):
    access = tmp_path / "access.log"
    gw = gateway(log_level="warn", log_format=fmt, access_log=str(access))
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag                      # 200 changed
    assert gw.get("/v1/runs/42?wait=1", token="tok-alice", etag=etag).status == 304   # held, timeout
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "r", gw.get("/v1/runs/42?wait=20", token="tok-alice", etag=etag)))
    t.start()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held") >= 1, what="held")
    set_run(db, 42, status="running", summary_counts={"n": 1})                         # held, changed
    t.join(20)
    assert box["r"].status == 200
    assert gw.get("/v1/runs/999?wait=0", token="tok-alice").status == 404             # denied
    assert gw.get("/v1/runs/42?wait=0").status == 401                                 # unauthorized
    assert http("GET", gw.url + "/healthz").status == 200                             # ok
    n_before_stop = len(_access(gw, fmt, access))
    gw.stop()
    lines = _access(gw, fmt, access)
    # the readiness checks and metrics scrapes are logged too; the rest in order
    lines = [d for d in lines if d["route"] not in ("metrics", "readyz")]  # the fixture's and wait_for's
    assert [(d["route"], int(d["status"]), d["reason"]) for d in lines] == [
        ("run", 200, "changed"), ("run", 304, "timeout"), ("run", 200, "changed"),
        ("run", 404, "denied"), ("run", 401, "unauthorized"), ("healthz", 200, "ok")], lines
    for d in lines:
        assert d["client"] == "127.0.0.1" and d["method"] == "GET" and d["rid"], d
        assert int(d["bytes"]) >= 0 and int(d["hold_ms"]) >= 0, d
    assert int(lines[0]["bytes"]) > 100 and int(lines[1]["bytes"]) == 0
    assert 900 <= int(lines[1]["hold_ms"]) < 10000, lines[1]
    assert int(lines[2]["hold_ms"]) >= 1, lines[2]
    if fmt == "json":
        assert isinstance(lines[0]["status"], int) and isinstance(lines[0]["hold_ms"], int)
    # nothing of it went to the main log (log_level = warn, access log in its own file)
    assert "access" not in gw.log()
    assert n_before_stop >= 6


def test_access_log_off_by_default(gateway, world):
    gw = gateway(log_level="info")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200
    gw.stop()
    assert 'msg="access"' not in gw.log()


# ---- secrets never logged, in any format ----

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxIiwiZXhwIjo0MTAyNDQ0ODAwfQ."
       "c2lnbmF0dXJlLXRoYXQtaXMtbm90LXZhbGlkLWF0LWFsbA")


def test_no_token_jwt_or_password_in_any_log_format(gateway, world, db, pg, tmp_path):
    good = "sk-live-1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f"
    revoked = "sk-live-revoked-77aa66bb55cc44dd33ee"
    cookie_tok = "sk-cookie-0a9b8c7d6e5f4a3b2c1d0e9f"
    password = "pw-Zq8xV3nL0pR7tW2y"
    make_token(db, world["alice"], good)
    make_token(db, world["alice"], revoked)
    make_token(db, world["alice"], cookie_tok)
    # trust authentication ignores the password, so the gateway connects with it in its URI
    dsn = f"postgresql://{pg.gateway_user}:{password}@{pg.host}:{pg.port}/{pg.dbname}"
    bad_dsn = f"host=127.0.0.1 port=1 user=gw password='{password}' dbname=x connect_timeout=2"
    secrets = (good, revoked, cookie_tok, JWT, password)
    for fmt in ("logfmt", "json"):
        access = tmp_path / f"access-{fmt}.log"
        gw = gateway(log_level="debug", log_format=fmt, access_log=str(access), database=dsn)
        for tok in (good, revoked, JWT):
            gw.get("/v1/runs/42?wait=0", token=tok)
            http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Authorization": f"Bearer {tok} junk"})
            http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Authorization": f"Basic {tok}"})
            http("GET", gw.url + f"/v1/runs/42?wait=0&access_token={tok}")
            raw_request(gw.host, gw.port, f"GET /v1/runs/42 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                        f"Authorization: Bearer {tok}\r\nAuthorization: Bearer {tok}\r\n\r\n".encode())
        http("GET", gw.url + "/v1/tenants/7/review-pack?wait=0",
             headers={"Cookie": f"theme=dark; pollgate_token={cookie_tok}; sid={JWT}"})
        etag = gw.get("/v1/runs/42?wait=0", token=revoked).etag
        box = {}
        t = threading.Thread(target=lambda: box.setdefault("r", gw.get("/v1/runs/42?wait=15", token=revoked,
                                                                      etag=etag)))
        t.start()
        wait_for(lambda: gw.metrics().value("pollgate_waiters_held") >= 1, what="held")
        revoke_token(db, revoked)
        t.join(20)
        assert box["r"].status == 401
        gw.reload(log_level="debug", log_format=fmt, access_log=str(access), database=dsn)
        gw.stop()
        # A gateway that cannot connect logs the failure (with libpq's message), never the password.
        bad = gateway(wait_ready=None, log_level="debug", log_format=fmt, database=f'"{bad_dsn}"')
        bad.wait_log(r"db connect failed|connect failed", timeout=15)
        bad.stop()
        texts = {"log": gw.log(), "access": access.read_text(), "failing log": bad.log()}
        assert "long-poll" in texts["log"] and "access" in texts["access"], "nothing was logged: proves nothing"
        for name, text in texts.items():
            for s in secrets:
                assert s not in text, f"{s!r} appears in the {fmt} {name}"
        db.cursor().execute("UPDATE access_tokens SET revoked_at = NULL")


def test_access_log_file_is_reopened_on_sighup(gateway, world, tmp_path):
    access = tmp_path / "access.log"
    gw = gateway(log_level="info", access_log=str(access))
    assert http("GET", gw.url + "/healthz").status == 200
    wait_for(lambda: "route=healthz" in access.read_text(), what="the first access line")
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)                      # what logrotate does, then it signals
    gw.reload()
    gw.wait_log(r"config reloaded")
    assert http("GET", gw.url + "/healthz").status == 200
    wait_for(lambda: access.exists() and "route=healthz" in access.read_text(), what="a line in the new file")
    assert rotated.read_text().count("route=healthz") == 1
