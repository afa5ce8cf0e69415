"""Denials that carry validators: api.md's rule 2 comes before rules 4 to 6.

A requester who may not see a resource, or asks for one that does not exist, gets the one 404 at once,
whatever else the request says: `If-None-Match: *`, an ETag it obtained while it was still entitled (or
that an entitled user obtained: the current one), `?since=`, a long `wait`, `Prefer: wait`, or `HEAD`. Such
a request is never held (a hold would tell "exists" from "missing", and an ETag that matches from one that
does not), and its 404 is byte-identical to the reference 404 of a missing id (status, every header but
Date and X-Request-Id in the same order, body).

Each case is asked on both routes and twice in a row (the first may need a read, the second may be decided
from what that read cached), while an entitled user holds the same resource, so the watch is live and
its cached view fresh: the path where a wrong shortcut would hold or answer 304.
"""

import time
import urllib.parse

import pytest

from helpers import (ManyGets, assert_same_404, http, make_demo_world, make_pack, make_principal, make_run,
                     missing_path, reference_404, set_pack, set_run, wait_for)

IMMEDIATE = 2.0  # seconds: "at once", with the margin a shared CPU under ASan needs (the hold is 30 s)

PATHS = {
    # kind: (path of the resource alice, carol and the holder see, path of eve's resource)
    "run": ("/v1/runs/42", "/v1/runs/43"),
    "review_pack": ("/v1/tenants/8/review-pack", "/v1/tenants/9/review-pack"),
}


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    # carol: tenant 8 as owner (review_packs.view); she loses tenant 8 in the "lost" cases.
    make_principal(db, "tok-carol", 1, tenant_ids=(8,), role="owner", capabilities=("review_packs.view",),
                   user_id=4, email="carol@acme.test")
    make_run(db, 1, 8, id=42, status="running")   # alice, carol
    make_run(db, 2, 9, id=43, status="running")   # eve only
    make_run(db, 1, 8, id=44, status="running")   # alice, carol; deleted in the "deleted" case
    make_pack(db, 1, 8, id=5, status="generating")  # tenant 8: alice, carol
    make_pack(db, 2, 9, id=6, status="generating")  # tenant 9: eve only
    return w


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def validator_cases(etag):
    """(name, method, query, headers) of every way to ask with a version or a hold, for one ETag."""
    since = urllib.parse.quote(etag.strip('"'), safe="")
    return [
        ("wait=30, no validator", "GET", "?wait=30", {}),
        ("If-None-Match: *", "GET", "?wait=30", {"If-None-Match": "*"}),
        ("If-None-Match: the ETag", "GET", "?wait=30", {"If-None-Match": etag}),
        ("?since= the ETag", "GET", f"?wait=30&since={since}", {}),
        ("Prefer: wait=30 and the ETag", "GET", "", {"Prefer": "wait=30", "If-None-Match": etag}),
        ("HEAD with the ETag", "HEAD", "?wait=30", {"If-None-Match": etag}),
        ("HEAD with *", "HEAD", "?wait=30", {"If-None-Match": "*"}),
    ]


def assert_every_validator_gets_the_404_at_once(gw, path, token, etag, kind):
    refs = {m: reference_404(gw.url, token, kind=kind, method=m) for m in ("GET", "HEAD")}
    failures = []
    for round_ in ("first", "second"):
        for name, method, query, headers in validator_cases(etag):
            h = bearer(token)
            h.update(headers)
            t0 = time.monotonic()
            r = http(method, gw.url + path + query, headers=h, timeout=40)
            took = time.monotonic() - t0
            what = f"{method} {path}{query} as {token}, {name}, {round_} time"
            if took >= IMMEDIATE:
                failures.append(f"{what}: answered {r.status} after {took:.2f}s (held)")
                continue
            try:
                assert_same_404(r, refs[method], what)
            except AssertionError as e:
                failures.append(str(e))
    assert not failures, "\n".join(failures)


def hold_entitled(gw, path, token, n=2):
    """n long-polls of an entitled user on `path`, held (the watch is live, its view cached)."""
    first = gw.get(path + "?wait=0", token=token)
    assert first.status == 200, first
    mg = ManyGets([(gw.url + path + "?wait=60", {**bearer(token), "If-None-Match": first.etag})] * n,
                  timeout=80).start()
    mg.wait_sent()
    return mg, first.etag


def wait_held(gw, kind, n):
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind=kind) == n, timeout=15,
             what=f"{n} held {kind} waiters")


def wake_and_check(db, path, mg, n):
    """Change the held resource at `path`: its holders get the new state (the denied requests left them
    alone)."""
    if path.startswith("/v1/runs/"):
        set_run(db, int(path.rsplit("/", 1)[1]), summary_counts={"woken": 1})
    else:
        set_pack(db, {"/v1/tenants/8/review-pack": 5, "/v1/tenants/9/review-pack": 6}[path], status="queued")
    rs = mg.results()
    assert [r.status for r in rs] == [200] * n, rs


@pytest.mark.parametrize("kind", list(PATHS))
def test_a_forbidden_resource_asked_with_its_current_etag_is_the_404_at_once(gateway, world, db, kind):
    # eve holds her resource; alice asks for it with the ETag eve holds (the current one).
    eves = PATHS[kind][1]
    gw = gateway(auth_cache_ttl="1h")
    mg, etag = hold_entitled(gw, eves, "tok-eve")
    wait_held(gw, kind, 2)
    assert_every_validator_gets_the_404_at_once(gw, eves, "tok-alice", etag, kind)
    assert gw.metrics().value("pollgate_waiters_held", kind=kind) == 2
    wake_and_check(db, eves, mg, 2)


@pytest.mark.parametrize("kind", list(PATHS))
def test_a_missing_resource_asked_with_an_etag_is_the_404_at_once(gateway, world, db, kind):
    # An ETag that is current elsewhere (alice's resource, held by her meanwhile).
    mine = PATHS[kind][0]
    gw = gateway(auth_cache_ttl="1h")
    mg, etag = hold_entitled(gw, mine, "tok-alice")
    wait_held(gw, kind, 2)
    assert_every_validator_gets_the_404_at_once(gw, missing_path(kind), "tok-alice", etag, kind)
    assert_every_validator_gets_the_404_at_once(gw, "/v1/runs/abc" if kind == "run" else "/v1/tenants/x/review-pack",
                                                "tok-alice", etag, kind)
    wake_and_check(db, mine, mg, 2)


@pytest.mark.parametrize("kind", list(PATHS))
def test_an_etag_obtained_while_entitled_gets_the_404_at_once_after_the_loss(gateway, world, db, kind):
    # carol reads the resource while entitled, alice holds it; carol loses tenant 8; once the gateway
    # knows (a plain request of hers is the 404), every request of hers with her old ETag is the 404 at
    # once, never held.
    mine = PATHS[kind][0]
    gw = gateway(auth_cache_ttl="1h")
    carols = gw.get(mine + "?wait=0", token="tok-carol")
    assert carols.status == 200
    mg, etag = hold_entitled(gw, mine, "tok-alice")
    wait_held(gw, kind, 2)
    assert etag == carols.etag  # one representation for every entitled user
    with db.cursor() as cur:
        cur.execute("DELETE FROM tenant_memberships WHERE user_id = 4 AND tenant_id = 8")
    wait_for(lambda: gw.get(mine + "?wait=0", token="tok-carol").status == 404, timeout=10,
             what="carol's loss known to the gateway")
    assert_every_validator_gets_the_404_at_once(gw, mine, "tok-carol", carols.etag, kind)
    assert gw.metrics().value("pollgate_waiters_held", kind=kind) == 2
    wake_and_check(db, mine, mg, 2)


def test_an_etag_of_a_deleted_run_gets_the_404_at_once(gateway, world, db):
    gw = gateway(auth_cache_ttl="1h")
    etag = gw.get("/v1/runs/44?wait=0", token="tok-alice").etag
    mg = ManyGets([(gw.url + "/v1/runs/44?wait=60", {**bearer("tok-carol"), "If-None-Match": etag})] * 2,
                  timeout=80).start()
    mg.wait_sent()
    wait_held(gw, "run", 2)
    with db.cursor() as cur:
        cur.execute("DELETE FROM operation_runs WHERE id = 44")
    # The held ones are answered the 404 (as a missing id's, with the framing they asked with) ...
    for r in mg.results():
        assert_same_404(r, reference_404(gw.url, "tok-carol", close=True), "held, then the run deleted")
    # ... and every later request with the old ETag gets it at once.
    assert_every_validator_gets_the_404_at_once(gw, "/v1/runs/44", "tok-alice", etag, "run")
