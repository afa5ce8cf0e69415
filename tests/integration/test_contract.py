"""The HTTP contract of api.md, rule by rule, against the real binary and a real PostgreSQL.

Long-poll *timing* (holding, waking) lives in test_longpoll.py; this file checks what each answer is:
status, headers and body, for every numbered rule of "Answering" that does not need a hold.
"""

import json
import re
import time

import pytest

from helpers import (NOW, Raw, raw_request, add_tenant_member, add_workspace_member, grant_capability, http, make_demo_world,
                     make_pack, make_principal, make_run, make_token, make_user, set_run)

RUN_KEYS = ["id", "workspace_id", "tenant_id", "type", "status", "outcome", "summary_counts", "failure_summary",
            "created_at", "started_at", "completed_at"]
PACK_KEYS = ["id", "workspace_id", "tenant_id", "operation_run_id", "status", "generated_at", "expires_at",
             "file_size", "created_at", "updated_at"]
NEVER_SERVED = ["context", "options", "summary", "file_path", "file_disk", "user_id", "initiated_by_user_id"]
ETAG_RX = re.compile(r'^"[0-9a-f]{32}"$')


@pytest.fixture
def world(db):
    return make_demo_world(db)


@pytest.fixture
def gw(gateway, world):
    return gateway()


def assert_common_headers(r):
    assert r.headers.get("Cache-Control") == "no-store"
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    assert r.headers.get("X-Request-Id")
    if r.body:
        assert r.headers.get("Content-Type", "").startswith("application/json")


def assert_error(r, status, code):
    assert r.status == status, r
    assert_common_headers(r)
    body = r.json()
    assert list(body) == ["error"] and sorted(body["error"]) == ["code", "message"]
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body


# ---- 1. Authenticate ----

@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Basic dXNlcjpwdw=="},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer tok-nobody"},
    {"Authorization": "tok-alice"},
    {"Cookie": "pollgate_token=tok-nobody"},
    {"Cookie": "other=tok-alice"},
    # The header wins: a bad header is not rescued by a good cookie.
    {"Authorization": "Bearer tok-nobody", "Cookie": "pollgate_token=tok-alice"},
], ids=["none", "basic", "bearer-empty", "bearer-space", "unknown-token", "no-scheme", "unknown-cookie",
        "other-cookie", "bad-header-good-cookie"])
def test_missing_or_bad_credential_is_401_with_bearer_challenge(gw, db, headers):
    make_run(db, 1, 7, id=42, status="running")
    r = http("GET", gw.url + "/v1/runs/42?wait=0", headers=headers)
    assert_error(r, 401, "unauthorized")
    assert r.headers.get("WWW-Authenticate") == "Bearer"


def test_cookie_authenticates_when_there_is_no_authorization_header(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    r = http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Cookie": "a=b; pollgate_token=tok-alice; c=d"})
    assert r.status == 200


def test_cookie_name_comes_from_config(gateway, world, db):
    from helpers import assert_401, reference_401
    make_run(db, 1, 7, id=42, status="running")
    gw = gateway(auth_cookie="session")
    assert http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Cookie": "session=tok-alice"}).status == 200
    r = http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Cookie": "pollgate_token=tok-alice"})
    assert_401(r, reference_401(gw.url), "the default cookie name, renamed in the config")


def test_revoked_and_expired_tokens_are_401(gw, db):
    from helpers import assert_401, reference_401
    make_run(db, 1, 7, id=42, status="running")
    make_token(db, 1, "tok-revoked", revoked=True)
    make_token(db, 1, "tok-expired", expires_at=Raw("now() - interval '1 second'"))
    make_token(db, 1, "tok-later", expires_at=Raw("now() + interval '1 hour'"))
    ref = reference_401(gw.url)
    assert_401(gw.get("/v1/runs/42?wait=0", token="tok-revoked"), ref, "revoked")
    assert_401(gw.get("/v1/runs/42?wait=0", token="tok-expired"), ref, "expired")
    assert gw.get("/v1/runs/42?wait=0", token="tok-later").status == 200


def test_authentication_comes_before_anything_about_the_resource(gw, db):
    from helpers import assert_401, reference_401
    # A missing run and an existing one look the same to an anonymous caller: 401 both.
    make_run(db, 1, 7, id=42, status="running")
    ref = reference_401(gw.url)
    for path in ("/v1/runs/42", "/v1/runs/999999", "/v1/runs/abc", "/v1/tenants/7/review-pack"):
        assert_401(gw.get(path), ref, f"{path} without a credential")


# ---- 2. Missing or not entitled: one byte-identical 404 ----

def _comparable(r):
    hdrs = sorted((k.lower(), v) for k, v in r.headers.items_raw() if k.lower() not in ("date", "x-request-id"))
    return r.status, hdrs, r.body


def test_every_denial_is_the_same_404(gw, db):
    make_run(db, 1, 7, id=42, status="running")            # alice: tenants 7, 8 ; bob: 7 ; eve: ws 2
    make_run(db, 1, 8, id=43, status="running")            # bob is not in tenant 8
    make_run(db, 2, 9, id=44, status="running")            # another workspace
    make_run(db, 1, 9, id=45, status="running")            # tenant of another workspace
    make_pack(db, 1, 7, id=5, status="generating")
    cases = [
        ("/v1/runs/999999", "tok-alice"),                  # unknown id
        ("/v1/runs/abc", "tok-alice"),                     # malformed ids
        ("/v1/runs/0", "tok-alice"),
        ("/v1/runs/-1", "tok-alice"),
        ("/v1/runs/0042", "tok-alice"),
        ("/v1/runs/99999999999999999999", "tok-alice"),
        ("/v1/runs/43", "tok-bob"),                        # tenant not entitled
        ("/v1/runs/44", "tok-alice"),                      # other workspace
        ("/v1/runs/45", "tok-eve"),                        # tenant of another workspace
        ("/v1/runs/45", "tok-alice"),
        ("/v1/tenants/7/review-pack", "tok-bob"),          # capability missing
        ("/v1/tenants/9/review-pack", "tok-alice"),        # other workspace
        ("/v1/tenants/12345/review-pack", "tok-alice"),    # unknown tenant
        ("/v1/tenants/x/review-pack", "tok-alice"),
    ]
    first = None
    for path, token in cases:
        r = gw.get(path + "?wait=0", token=token)
        assert_error(r, 404, "not_found")
        if first is None:
            first = _comparable(r)
        assert _comparable(r) == first, f"{path} as {token} differs from the first 404"
    # And an unknown route looks the same too.
    assert _comparable(gw.get("/v2/nothing", token="tok-alice")) == first


def test_entitled_users_see_their_resources(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    make_run(db, 1, None, id=46, status="queued")  # tenantless: workspace membership is enough
    make_pack(db, 1, 7, id=5, status="generating")
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200
    assert gw.get("/v1/runs/42?wait=0", token="tok-bob").status == 200
    assert gw.get("/v1/runs/46?wait=0", token="tok-bob").status == 200
    assert gw.get("/v1/runs/46?wait=0", token="tok-eve").status == 404
    assert gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice").status == 200


# ---- 3. Representation and ETag ----

def test_run_body_has_exactly_the_contract_keys_and_never_the_private_ones(gw, db):
    make_run(db, 1, 7, id=42, status="running", user_id=1, context={"secret": "ctx"},
             summary_counts={"total": 10, "processed": 4}, created_at="2026-03-08T11:00:00Z",
             started_at="2026-03-08T11:00:02Z")
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert r.status == 200
    assert_common_headers(r)
    assert ETAG_RX.match(r.etag), r.etag
    body = r.json()
    assert list(body) == ["run", "state", "terminal", "poll"]
    assert list(body["run"]) == RUN_KEYS
    assert body["run"]["summary_counts"] == {"total": 10, "processed": 4}
    assert body["run"]["created_at"] == "2026-03-08T11:00:00Z"
    assert body["run"]["started_at"] == "2026-03-08T11:00:02Z"
    assert body["run"]["completed_at"] is None and body["run"]["outcome"] is None
    assert body["state"] == "running" and body["terminal"] is False
    assert body["poll"] == {"interval_ms": 10000}  # started long ago
    for key in NEVER_SERVED:
        assert f'"{key}"' not in r.body.decode()
    assert "ctx" not in r.body.decode()


def test_pack_body_has_exactly_the_contract_keys_and_never_the_private_ones(gw, db):
    make_pack(db, 1, 7, id=5, status="ready", options={"o": "secret-o"}, summary={"s": "secret-s"},
              file_path="/srv/secret.pdf", file_disk="s3-secret", file_size=1234, initiated_by_user_id=1,
              generated_at=NOW, expires_at=Raw("now() + interval '7 days'"))
    r = gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice")
    assert r.status == 200
    body = r.json()
    assert list(body) == ["review_pack", "state", "terminal", "poll"]
    assert list(body["review_pack"]) == PACK_KEYS
    assert body["review_pack"]["file_size"] == 1234
    assert body["state"] == "ready" and body["terminal"] is True and body["poll"] is None
    text = r.body.decode()
    for key in NEVER_SERVED:
        assert f'"{key}"' not in text
    assert "secret" not in text


def test_no_review_pack_is_state_none(gw, db):
    r = gw.get("/v1/tenants/8/review-pack?wait=0", token="tok-alice")
    assert r.status == 200
    assert r.json() == {"review_pack": None, "state": "none", "terminal": False, "poll": None}
    # Not active: the current version is answered 304 at once, never held.
    r2 = gw.get("/v1/tenants/8/review-pack?wait=30", token="tok-alice", etag=r.etag, timeout=5)
    assert r2.status == 304 and r2.elapsed < 2


def test_latest_pack_is_highest_created_at_then_id(gw, db):
    make_pack(db, 1, 7, id=5, status="ready", created_at="2026-01-02T00:00:00Z")
    make_pack(db, 1, 7, id=6, status="generating", created_at="2026-01-01T00:00:00Z")
    make_pack(db, 1, 7, id=9, status="queued", created_at="2026-01-01T00:00:00Z")
    assert gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice").json()["review_pack"]["id"] == 5
    # Equal created_at: the higher id wins.
    make_pack(db, 1, 8, id=10, status="ready", created_at="2026-01-01T00:00:00Z")
    make_pack(db, 1, 8, id=11, status="failed", created_at="2026-01-01T00:00:00Z")
    assert gw.get("/v1/tenants/8/review-pack?wait=0", token="tok-alice").json()["review_pack"]["id"] == 11


@pytest.mark.parametrize("status,outcome,state,terminal,active", [
    ("queued", None, "queued", False, True),
    ("running", None, "running", False, True),
    ("completed", "succeeded", "succeeded", True, False),
    ("completed", "partially_succeeded", "partial", True, False),
    ("completed", "failed", "failed", True, False),
    ("completed", "cancelled", "cancelled", True, False),
    ("completed", None, "unknown", False, False),
    ("completed", "exploded", "unknown", False, False),
    ("paused", None, "unknown", False, False),
])
def test_run_state_policy(gw, db, status, outcome, state, terminal, active):
    make_run(db, 1, 7, id=42, status=status, outcome=outcome)
    body = gw.get("/v1/runs/42?wait=0", token="tok-alice").json()
    assert body["state"] == state and body["terminal"] is terminal
    assert (body["poll"] is not None) is active
    assert body["run"]["status"] == status and body["run"]["outcome"] == outcome


@pytest.mark.parametrize("age,interval", [("0 seconds", 1000), ("5 seconds", 1000), ("30 seconds", 5000),
                                          ("2 minutes", 10000)])
def test_run_poll_interval_follows_age(gw, db, age, interval):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw(f"now() - interval '{age}'"))
    make_run(db, 1, 7, id=43, status="queued", created_at=Raw(f"now() - interval '{age}'"))
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").json()["poll"] == {"interval_ms": interval}
    assert gw.get("/v1/runs/43?wait=0", token="tok-alice").json()["poll"] == {"interval_ms": interval}


def test_etag_is_stable_and_follows_the_representation(gw, db):
    make_run(db, 1, 7, id=42, status="running", started_at=Raw("now() - interval '5 minutes'"))
    a = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    b = gw.get("/v1/runs/42?wait=0", token="tok-bob")
    assert a.etag == b.etag and a.body == b.body
    set_run(db, 42, summary_counts={"total": 3, "processed": 1})
    c = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert c.etag != a.etag and c.body != a.body


# ---- 4/5. Conditional requests ----

def test_no_version_or_an_old_one_gets_200_now(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    r = gw.get("/v1/runs/42?wait=30", token="tok-alice", timeout=5)
    assert r.status == 200 and r.elapsed < 2
    r2 = gw.get("/v1/runs/42?wait=30", token="tok-alice", etag='"0123456789abcdef0123456789abcdef"', timeout=5)
    assert r2.status == 200 and r2.elapsed < 2 and r2.etag == r.etag


def test_current_version_of_a_terminal_resource_is_304_now(gw, db):
    make_run(db, 1, 7, id=42, status="completed", outcome="succeeded")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    for kw in ({"etag": etag}, {"etag": "*"}):
        r = gw.get("/v1/runs/42?wait=30", token="tok-alice", timeout=5, **kw)
        assert r.status == 304 and r.elapsed < 2
        assert r.headers.get("ETag") == etag and r.body == b""
        assert r.headers.get("Cache-Control") == "no-store" and r.headers.get("X-Request-Id")
    r = gw.get(f"/v1/runs/42?wait=30&since={etag.strip(chr(34))}", token="tok-alice", timeout=5)
    assert r.status == 304


def test_if_none_match_wins_over_since(gw, db):
    make_run(db, 1, 7, id=42, status="completed", outcome="failed")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get(f"/v1/runs/42?wait=0&since={etag.strip(chr(34))}", token="tok-alice", etag='"deadbeef"')
    assert r.status == 200
    r = gw.get("/v1/runs/42?wait=0&since=deadbeef", token="tok-alice", etag=etag)
    assert r.status == 304


def test_if_none_match_list_and_weak_form_match(gw, db):
    make_run(db, 1, 7, id=42, status="completed", outcome="failed")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice", headers={"If-None-Match": f'"x", W/{etag}'})
    assert r.status == 304


def test_wait_zero_answers_current_version_at_once(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice", etag=etag, timeout=5)
    assert r.status == 304 and r.etag == etag and r.elapsed < 2


@pytest.mark.parametrize("wait", ["-1", "abc", "1.5", "", "1s", "0x10", "+3"])
def test_bad_wait_is_400(gw, db, wait):
    make_run(db, 1, 7, id=42, status="running")
    r = gw.get(f"/v1/runs/42?wait={wait}", token="tok-alice")
    assert_error(r, 400, "bad_request")


def test_unreadable_prefer_is_ignored(gateway, world, db):
    # No ?wait=, so Prefer is read: one it cannot read is ignored (RFC 7240) and the default applies;
    # a readable one among other preferences is honoured. The two waits differ so each is seen. The run
    # is an hour old, so its poll interval (part of the body) does not move during the holds.
    gw = gateway(default_wait="4s")
    old = Raw("now() - interval '1 hour'")
    make_run(db, 1, 7, id=42, status="running", created_at=old, started_at=old)
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    for prefer in ("wait=soon", "wait=-1", "wait", "wait=2x"):
        r = gw.get("/v1/runs/42", token="tok-alice", etag=etag, headers={"Prefer": prefer}, timeout=20)
        assert r.status == 304 and 3.5 <= r.elapsed < 7.5, (prefer, r, r.elapsed)
    r = gw.get("/v1/runs/42", token="tok-alice", etag=etag, headers={"Prefer": "respond-async, wait=2"}, timeout=20)
    assert r.status == 304 and 1.5 <= r.elapsed < 3.5, (r, r.elapsed)


# ---- methods, bodies, routes ----

@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405_with_allow(gw, db, method):
    r = http(method, gw.url + "/v1/runs/42", headers={"Authorization": "Bearer tok-alice"})
    assert_error(r, 405, "method_not_allowed")
    assert "GET" in r.headers.get("Allow", "")


def test_head_is_answered_like_get_without_a_body(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    get = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    r = http("HEAD", gw.url + "/v1/runs/42?wait=0", headers={"Authorization": "Bearer tok-alice"})
    assert r.status == 200 and r.body == b"" and r.etag == get.etag
    assert r.headers.get("Content-Length") == str(len(get.body))
    # On one keep-alive connection, a HEAD (answer or error) must not leak a body into the next answer.
    raw = raw_request(gw.host, gw.port,
                      b"HEAD /v1/runs/42?wait=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n\r\n"
                      b"HEAD /v1/runs/7?wait=0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n\r\n"
                      b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    parts = raw.split(b"\r\n\r\n")
    assert parts[0].startswith(b"HTTP/1.1 200 ") and parts[1].startswith(b"HTTP/1.1 404 ")
    assert parts[2].startswith(b"HTTP/1.1 200 ") and parts[3] == b'{"status":"ok"}'


def test_request_with_a_body_is_400(gw, db):
    make_run(db, 1, 7, id=42, status="running")
    r = http("GET", gw.url + "/v1/runs/42?wait=0", headers={"Authorization": "Bearer tok-alice"}, body=b"{}")
    assert_error(r, 400, "bad_request")


def test_unknown_routes_are_404(gw):
    for path in ["/", "/v1/runs", "/v1/runs/42/", "/v1/runs/42/x", "/v1/tenants/7", "/v1/tenants/7/review-pack/x"]:
        assert_error(gw.get(path, token="tok-alice"), 404, "not_found")


def test_healthz_and_readyz(gw):
    r = gw.get("/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}
    assert_common_headers(r)
    r = gw.get("/readyz")
    assert r.status == 200 and r.json() == {"status": "ready"}


def test_trusted_proxy_request_id_is_echoed_else_generated(gateway, world):
    gw = gateway(trusted_proxies="127.0.0.1/32")
    r = gw.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers.get("X-Request-Id") == "abc-123"
    gw2 = gateway()
    r = gw2.get("/healthz", headers={"X-Request-Id": "abc-123"})
    assert r.headers.get("X-Request-Id") not in (None, "", "abc-123")


def test_metrics_are_restricted_by_config(gateway, world):
    gw = gateway()
    m = gw.metrics()
    assert "pollgate_waiters_held" in " ".join(m)
    closed = gateway(metrics_allow="10.0.0.0/8")
    assert closed.get("/metrics").status == 404


def test_rows_with_nulls_where_the_schema_allows_them(gw, db):
    make_run(db, 1, 7, id=42, status=None, type=None, created_at=None)
    body = gw.get("/v1/runs/42?wait=0", token="tok-alice").json()
    assert body["state"] == "unknown" and body["terminal"] is False and body["poll"] is None
    assert body["run"]["status"] is None and body["run"]["type"] is None and body["run"]["created_at"] is None
    make_run(db, None, None, id=43, status="running")   # no workspace: visible to nobody
    assert gw.get("/v1/runs/43?wait=0", token="tok-alice").status == 404
    # A pack without created_at never outranks one with it.
    make_pack(db, 1, 7, id=5, status="ready", created_at="2026-01-01T00:00:00Z")
    make_pack(db, 1, 7, id=6, status="queued", created_at=None)
    assert gw.get("/v1/tenants/7/review-pack?wait=0", token="tok-alice").json()["review_pack"]["id"] == 5


def test_malformed_json_column_is_served_as_null_not_an_error(gw, db):
    # jsonb cannot hold malformed JSON; a huge number is what jansson cannot represent.
    make_run(db, 1, 7, id=42, status="running", summary_counts=Raw("'{\"n\": 1e400}'::jsonb"))
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert r.status == 200
    assert r.json()["run"]["summary_counts"] in (None, {"n": 1e400})


def split_response(raw):
    """(status, {lower-case header: value}, body) of the first raw HTTP/1.1 response in `raw`."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    return status, headers, rest[:n]


# What the contract promises for each: a 400 in the JSON shape with Connection: close (then the close),
# or an ordinary answer. Nothing is ever silently dropped, and a request with a body is never served.
@pytest.mark.parametrize("data,status,code", [
    (b"GARBAGE\r\n\r\n", 400, "bad_request"),
    (b"GET\r\n\r\n", 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/9.9\r\n\r\n", 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/1.1\r\nNoColonHeader\r\n\r\n", 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000, 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", 400, "bad_request"),
    (b"GET /v1/runs/1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\nContent-Length: 0\r\n"
     b"Content-Length: 0\r\n\r\n", 400, "bad_request"),
    (b"\x00\x01\x02\xff" * 1000 + b"\r\n\r\n", 400, "bad_request"),
    # A head that never ends: dropped at header_timeout without an answer (api.md, header_timeout).
    (b"\x00\x01\x02\xff" * 1000, None, None),
    # Well-formed HTTP with hostile bytes: ordinary answers (the credential is unreadable: 401).
    (b"GET /v1/runs/%00%ff HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \xff\xfe\r\n\r\n",
     401, "unauthorized"),
    (b"GET /v1/runs/1?wait=1&wait=abc&since=%22%22 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
     b"Authorization: Bearer tok-alice\r\n\r\n", 200, None),
], ids=["junk", "no-uri", "bad-version", "bad-header", "huge-header", "huge-body", "chunked-body", "two-lengths",
        "binary", "binary-unended", "bad-bytes", "odd-query"])
def test_malformed_http_never_harms_the_gateway(gateway, world, db, data, status, code):
    gw = gateway(header_timeout="2s")
    make_run(db, 1, 7, id=1, status="running")
    t0 = time.monotonic()
    raw = raw_request(gw.host, gw.port, data, timeout=10)  # reads until the gateway closes
    took = time.monotonic() - t0
    if status is None:
        assert raw == b"" and 1.5 <= took < 8, (raw[:300], took)
        assert gw.get("/healthz").status == 200
        return
    assert raw, "the connection was dropped without an answer"
    st, h, body = split_response(raw)
    assert st == status, raw[:300]
    assert h.get("connection", "").lower() == "close", raw[:300]
    assert h.get("content-type", "").startswith("application/json"), raw[:300]
    assert h.get("x-request-id") and h.get("cache-control") == "no-store", raw[:300]
    assert h.get("x-content-type-options") == "nosniff", raw[:300]
    if code is not None:
        assert json.loads(body) == {"error": {"code": code, "message": json.loads(body)["error"]["message"]}}
    else:
        assert json.loads(body)["run"]["id"] == 1
    # The gateway is still up and serving.
    assert gw.get("/healthz").status == 200
    assert gw.get("/v1/runs/1?wait=0", token="tok-alice").status == 200
