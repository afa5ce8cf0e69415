"""Authorization matrix: every credential against every resource, checked against an oracle.

The world below is data (WORKSPACES, TENANTS, ROLE_CAPABILITIES, USERS, TOKENS, RUNS, PACKS). `World.verdict`
computes each (credential, resource) verdict straight from fixed-points.md "Credentials and entitlement":

  token   a row with token_sha256 = sha256(token), revoked_at IS NULL, expires_at NULL or in the future;
          anything else is 401 whatever the resource.
  run     the user is a member of the run's workspace; when tenant_id is set, also has a
          tenant_memberships row for that tenant. Plus the gateway's rule that the run's tenant must
          belong to the run's workspace (a tenant of another workspace, or no tenant row, denies).
  pack    the user is a member of the tenant's workspace, with a tenant_memberships row whose role holds
          exactly the capability `review_packs.view` in role_capabilities. A tenant without a pack is
          still 200 (state "none", review_pack null) for an entitled user.

Entitled: 200 whose body names the right run / the tenant's latest pack. Not entitled, missing, or an
id of the wrong shape: 404 byte-identical (status, every header but Date and X-Request-Id, body) to the
404 of a missing id. Bad credential: 401 byte-identical to the 401 of an unknown token.

The matrix is asked three times of one gateway (auth_cache_ttl = 1h): first on one keep-alive connection
per credential (cold: every verdict is read from the database, users of one resource batched together as
they race), then shuffled over a few connections that each carry every credential (warm: verdicts from
the per-(user, resource) cache, and no state may leak between users of one connection), then again after
access changes (change_access) with the oracle's World changed alike: the cached verdicts must not
outlive the change. Half the asks of a credential use the cookie instead of the Authorization header.
"""

import datetime
import json
import random
import threading
import time
from collections import defaultdict

from helpers import (KeepAlive, Raw, add_tenant_member, add_workspace_member, comparable, grant_capability,
                     make_pack, make_run, make_tenant, make_token, make_user, make_workspace, wait_for)

NOW = datetime.datetime.now(datetime.timezone.utc)  # only to decide, in the oracle, which tokens expired

# ---- the world -------------------------------------------------------------------------------------

WORKSPACES = {1: "Acme", 2: "Globex", 3: "Initech"}

# tenant id -> workspace id (None: a tenant row with no workspace, visible to nobody)
TENANTS = {11: 1, 12: 1, 13: 1, 21: 2, 22: 2, 31: 3, 40: None}

CAP = "review_packs.view"
ROLE_CAPABILITIES = [
    ("owner", CAP), ("owner", "runs.view"),
    ("auditor", CAP),
    ("readonly", "runs.view"),
    ("billing", "billing.manage"),
    ("shouty", "REVIEW_PACKS.VIEW"),        # not the capability: names are exact
    ("padded", CAP + " "),                  # nor is this
    ("nobody-has-this-role", CAP),
    # "guest" and "admin" hold nothing
]

# user id -> (name, {workspace: workspace role}, {tenant: tenant role})
USERS = {
    101: ("alice", {1: "admin"}, {11: "owner", 12: "readonly", 13: "auditor"}),
    102: ("bob", {1: "member"}, {}),
    103: ("carol", {2: "member"}, {21: "owner", 11: "owner"}),       # tenant 11 without workspace 1
    104: ("dave", {1: "member", 2: "member"}, {12: "billing", 21: "auditor", 22: "guest"}),
    105: ("erin", {}, {11: "owner", 21: "owner"}),                   # tenant rows, no workspace
    106: ("frank", {3: "member", 1: "member"}, {31: "shouty", 13: "owner", 11: "padded"}),
    107: ("grace", {1: "owner", 2: "owner", 3: "owner"},
          {11: "owner", 12: "owner", 13: "owner", 21: "owner", 22: "owner", 31: "owner", 40: "owner",
           9999: "owner"}),                                           # everything, and a tenant with no row
    108: ("heidi", {2: "owner"}, {}),                                 # a workspace role grants nothing
    109: ("ivan", {1: "member"}, {11: "nobody", 22: "auditor"}),      # 22 without workspace 2
    111: ("mallory", {}, {}),
    112: ("peggy", {3: "member"}, {31: "auditor", 12: "auditor"}),    # 12 without workspace 1
}

HOUR = datetime.timedelta(hours=1)

# token -> (user id, expires_at, revoked_at); None for the user: no row at all
TOKENS = {
    "tok-alice": (101, NOW + HOUR, None),          # expires later: valid
    "tok-bob": (102, None, None),
    "tok-bob-2": (102, None, None),                # a second valid token of the same user
    "tok-carol": (103, None, None),
    "tok-dave": (104, None, None),
    "tok-erin": (105, None, None),
    "tok-frank": (106, None, None),
    "tok-grace": (107, None, None),
    "tok-heidi": (108, None, None),
    "tok-ivan": (109, None, None),
    "tok-mallory": (111, None, None),
    "tok-peggy": (112, None, None),
    "tok-grace-revoked": (107, None, NOW - HOUR),
    "tok-grace-expired": (107, NOW - datetime.timedelta(seconds=5), None),
    "tok-grace-revoked-later": (107, NOW + HOUR, NOW + HOUR),   # revoked_at set at all: revoked
    "tok-unknown": (None, None, None),
}

# run id -> (workspace id, tenant id, status, outcome)
RUNS = {
    1001: (1, None, "queued", None),
    1002: (1, None, "completed", "succeeded"),
    1011: (1, 11, "running", None),
    1012: (1, 12, "queued", None),
    1013: (1, 13, "completed", "failed"),
    1014: (1, 11, "weird", None),
    2001: (2, None, "running", None),
    2021: (2, 21, "running", None),
    2022: (2, 22, "completed", "cancelled"),
    3001: (3, None, "queued", None),
    3031: (3, 31, "running", None),
    1921: (1, 21, "running", None),     # tenant of workspace 2 on a run of workspace 1
    1931: (1, 31, "queued", None),
    2911: (2, 11, "running", None),
    3912: (3, 12, "running", None),
    1099: (1, 9999, "running", None),   # a tenant id with no tenants row (grace has a membership for it)
    1040: (1, 40, "running", None),     # a tenant with no workspace
    9001: (None, None, "running", None),
    9002: (None, 11, "running", None),
    7701: (77, None, "running", None),  # a workspace with no row
}
MISSING_RUNS = ["5", "999999", "9223372036854775807"]
BAD_RUN_IDS = ["abc", "0", "-1", "01011", "+1011", "1011abc", "1e3", "9223372036854775808",
               "18446744073709551616"]

# pack id -> (tenant id, workspace id, status, created_at)
PACKS = {
    501: (11, 1, "generating", "2026-03-08T09:50:00Z"),
    502: (12, 1, "ready", "2026-03-08T08:00:00Z"),
    503: (12, 1, "queued", "2026-03-08T09:59:00Z"),       # latest of 12
    504: (21, 2, "ready", "2026-03-08T09:55:00Z"),
    505: (31, 3, "failed", "2026-03-08T09:57:00Z"),
    506: (31, 3, "generating", "2026-03-08T09:57:00Z"),   # same created_at: higher id wins
    507: (40, 1, "generating", "2026-03-08T09:58:00Z"),
    508: (9999, 1, "generating", "2026-03-08T09:58:00Z"), # a pack whose tenant has no row
}
MISSING_TENANTS = ["5", "9999", "123456"]
BAD_TENANT_IDS = ["x", "0", "-11", "011"]


def build_world(db):
    for ws, name in WORKSPACES.items():
        make_workspace(db, id=ws, name=name)
    for t, ws in TENANTS.items():
        make_tenant(db, ws, id=t, name=f"tenant {t}")
    for role, cap in ROLE_CAPABILITIES:
        grant_capability(db, role, cap)
    for uid, (name, workspaces, tenants) in USERS.items():
        make_user(db, id=uid, email=f"{name}@test.invalid")
        for ws, role in workspaces.items():
            add_workspace_member(db, ws, uid, role=role)
        for t, role in tenants.items():
            add_tenant_member(db, t, uid, role=role)
    for token, (uid, expires_at, revoked_at) in TOKENS.items():
        if uid is None:
            continue
        tid = make_token(db, uid, token, expires_at=expires_at)
        if revoked_at is not None:
            with db.cursor() as cur:
                cur.execute("UPDATE access_tokens SET revoked_at = %s WHERE id = %s", (revoked_at, tid))
    for rid, (ws, tenant, status, outcome) in RUNS.items():
        make_run(db, ws, tenant, id=rid, status=status, outcome=outcome,
                 summary_counts={"total": 10, "processed": 3}, created_at=Raw("now() - interval '2 minutes'"),
                 started_at=None if status == "queued" else Raw("now() - interval '1 minute'"))
    for pid, (tenant, ws, status, created) in PACKS.items():
        make_pack(db, ws, tenant, id=pid, status=status, created_at=created, updated_at=created)


# ---- the oracle ------------------------------------------------------------------------------------

class World:
    """What the database holds, as the oracle sees it: a copy of the tables above that the test can
    change in step with the database (see change_access)."""

    def __init__(self):
        self.tenants = dict(TENANTS)
        self.role_capabilities = set(ROLE_CAPABILITIES)
        self.users = {uid: (name, dict(ws), dict(t)) for uid, (name, ws, t) in USERS.items()}
        self.tokens = dict(TOKENS)

    def token_user(self, token):
        """The user a token authenticates, or None (401)."""
        uid, expires_at, revoked_at = self.tokens.get(token, (None, None, None))
        if uid is None or revoked_at is not None:
            return None
        if expires_at is not None and expires_at <= NOW:
            return None
        return uid

    def is_workspace_member(self, uid, ws):
        return ws is not None and ws in self.users[uid][1]

    def tenant_role(self, uid, tenant):
        return self.users[uid][2].get(tenant)

    def run_entitled(self, uid, rid):
        ws, tenant, _, _ = RUNS[rid]
        if not self.is_workspace_member(uid, ws):
            return False
        if tenant is None:
            return True
        # fixed-points.md: a tenant_memberships row for the run's tenant; the gateway: and that tenant
        # belongs to the run's workspace (no tenants row: it belongs to none).
        return self.tenant_role(uid, tenant) is not None and self.tenants.get(tenant, "no row") == ws

    def pack_entitled(self, uid, tenant):
        ws = self.tenants[tenant]
        role = self.tenant_role(uid, tenant)
        return self.is_workspace_member(uid, ws) and role is not None and (role, CAP) in self.role_capabilities

    def verdict(self, token, kind, key):
        """'401', '404', or '200'."""
        uid = self.token_user(token)
        if uid is None:
            return "401"
        if key is None:
            return "404"
        ok = self.run_entitled(uid, key) if kind == "run" else self.pack_entitled(uid, key)
        return "200" if ok else "404"


def latest_pack(tenant):
    packs = [(created, pid) for pid, (t, _, _, created) in PACKS.items() if t == tenant]
    return max(packs)[1] if packs else None


def resources():
    """(label, path, kind, key): every resource asked about; key is the run/tenant id when it exists."""
    out = [(f"run {rid}", f"/v1/runs/{rid}", "run", rid) for rid in RUNS]
    out += [(f"run {s!r} (missing)", f"/v1/runs/{s}", "run", None) for s in MISSING_RUNS + BAD_RUN_IDS]
    out += [(f"pack of {t}", f"/v1/tenants/{t}/review-pack", "pack", t) for t in TENANTS]
    out += [(f"pack of {s!r} (missing)", f"/v1/tenants/{s}/review-pack", "pack", None)
            for s in MISSING_TENANTS + BAD_TENANT_IDS]
    return out


def change_access(db, w):
    """Change who may see what, in the database and in the oracle's World alike. Returns probes
    (token, path, status): one pair per change whose answer flips once the gateway has heard of it."""
    probes = []
    with db.cursor() as cur:
        # A tenant moves to another workspace: run 1012 (workspace 1, tenant 12) is now a run on a tenant of
        # another workspace, and tenant 12's pack needs workspace 2.
        cur.execute("UPDATE tenants SET workspace_id = 2 WHERE id = 12")
        w.tenants[12] = 2
        probes.append(("tok-grace", "/v1/runs/1012", 404))
        # A role gains the capability: dave (workspace 2, tenant 12 as billing) now sees tenant 12's pack.
        grant_capability(db, "billing", CAP)
        w.role_capabilities.add(("billing", CAP))
        probes.append(("tok-dave", "/v1/tenants/12/review-pack", 200))
        # A tenant membership goes.
        cur.execute("DELETE FROM tenant_memberships WHERE tenant_id = 11 AND user_id = 101")
        del w.users[101][2][11]
        probes.append(("tok-alice", "/v1/runs/1011", 404))
        # A workspace membership comes and one goes.
        add_workspace_member(db, 1, 105)
        w.users[105][1][1] = "member"
        probes.append(("tok-erin", "/v1/runs/1001", 200))
        cur.execute("DELETE FROM workspace_memberships WHERE workspace_id = 2 AND user_id = 108")
        del w.users[108][1][2]
        probes.append(("tok-heidi", "/v1/runs/2001", 404))
        # A token is revoked (the user's other token stays good).
        cur.execute("UPDATE access_tokens SET revoked_at = now() WHERE token_sha256 = sha256('tok-bob-2'::bytea)")
        w.tokens["tok-bob-2"] = (102, None, NOW)
        probes.append(("tok-bob-2", "/v1/runs/1001", 401))
    return probes


# ---- asking the gateway ----------------------------------------------------------------------------

def credential_headers(token, use_cookie):
    if use_cookie:
        return {"Cookie": f"theme=dark; pollgate_token={token}"}
    return {"Authorization": f"Bearer {token}"}


def check(kind, key, want, r, ref404, ref401):
    """'' when the answer `r` is what the oracle wants (`want`: '200', '404', '401'), else a reason."""
    if want == "401":
        if r.status != 401:
            return f"want 401, got {r.status} {r.body[:120]!r}"
        if comparable(r) != ref401:
            return f"401 differs from an unknown token's: {comparable(r)} vs {ref401}"
        return ""
    if want == "404":
        if r.status != 404:
            return f"want the 404, got {r.status} {r.body[:160]!r}"
        if comparable(r) != ref404:
            return f"404 differs from a missing id's: {comparable(r)} vs {ref404}"
        return ""
    if r.status != 200:
        return f"want 200, got {r.status} {r.body[:120]!r}"
    try:
        body = json.loads(r.body)
    except ValueError:
        return f"200 with a body that is not JSON: {r.body[:120]!r}"
    if kind == "run":
        run = body.get("run") or {}
        ws, tenant, _, _ = RUNS[key]
        if (run.get("id"), run.get("workspace_id"), run.get("tenant_id")) != (key, ws, tenant):
            return f"200 for the wrong run: {run}"
    else:
        pid = latest_pack(key)
        pack = body.get("review_pack")
        if pid is None:
            if pack is not None or body.get("state") != "none" or body.get("poll") is not None:
                return f"tenant without a pack, got {body}"
        elif pack is None or (pack.get("id"), pack.get("tenant_id")) != (pid, key):
            return f"want pack {pid} of tenant {key}, got {pack}"
    return ""


class Case:
    __slots__ = ("token", "label", "kind", "key", "path", "cookie")

    def __init__(self, token, label, kind, key, path, cookie):
        self.token, self.label, self.kind, self.key, self.path, self.cookie = token, label, kind, key, path, cookie


def ask_all(url, cases, connections):
    """Ask every case; `connections` is a list of case-index lists, one keep-alive connection (and
    thread) each, all at once. Returns {index: Response}."""
    results = {}
    errors = []
    lock = threading.Lock()

    def worker(indices):
        got = {}
        try:
            with KeepAlive(url, timeout=30) as c:
                for i in indices:
                    got[i] = c.get(cases[i].path + "?wait=0", headers=credential_headers(cases[i].token, cases[i].cookie))
        except Exception as e:  # surfaced below
            errors.append(f"{cases[i].token} {cases[i].path}: {e!r}")
        with lock:
            results.update(got)

    threads = [threading.Thread(target=worker, args=(idx,)) for idx in connections]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, f"requests failed: {errors[:3]}"
    assert len(results) == sum(len(c) for c in connections), "some requests got no answer"
    return results


def mismatches(name, world, cases, results, ref404, ref401):
    out = []
    for i, c in enumerate(cases):
        why = check(c.kind, c.key, world.verdict(c.token, c.kind, c.key), results[i], ref404, ref401)
        if why:
            out.append(f"[{name}] {c.token} ({'cookie' if c.cookie else 'bearer'}) -> {c.label}: {why}")
    return out


def test_authorization_matrix(gateway, db, notes):
    build_world(db)
    world = World()
    gw = gateway(auth_cache_ttl="1h")  # the warm passes come from the verdict cache, so it must be dropped on change

    # The reference answers a denial must be identical to.
    with KeepAlive(gw.url) as c:
        ref404 = comparable(c.get("/v1/runs/987654321?wait=0", headers={"Authorization": "Bearer tok-grace"}))
        ref404_pack = comparable(c.get("/v1/tenants/987654321/review-pack?wait=0",
                                       headers={"Authorization": "Bearer tok-grace"}))
        ref401 = comparable(c.get("/v1/runs/1001?wait=0", headers={"Authorization": "Bearer tok-never-issued"}))
    assert ref404[0] == 404 and ref401[0] == 401
    assert ref404_pack == ref404, "a missing tenant's 404 differs from a missing run's"
    assert ("www-authenticate", "Bearer") in ref401[1]

    rng = random.Random(20260308)
    table = resources()
    cases = [Case(token, label, kind, key, path, rng.random() < 0.5)
             for token in TOKENS for label, path, kind, key in table]
    by_want = defaultdict(int)
    for c in cases:
        by_want[world.verdict(c.token, c.kind, c.key)] += 1
    # The matrix must exercise every verdict, in both routes, for it to mean anything.
    assert by_want["200"] >= 50 and by_want["404"] >= 200 and by_want["401"] >= 100, dict(by_want)
    for kind in ("run", "pack"):
        kinds = {world.verdict(c.token, c.kind, c.key) for c in cases if c.kind == kind}
        assert kinds == {"200", "404", "401"}, (kind, kinds)

    def shuffled_over(n):
        order = list(range(len(cases)))
        rng.shuffle(order)
        return [order[k::n] for k in range(n)]

    t0 = time.monotonic()
    # Pass 1, cold: one connection per credential, each in its own shuffled order, all racing (users of
    # one resource land in the same batched read).
    per_token = defaultdict(list)
    for i, c in enumerate(cases):
        per_token[c.token].append(i)
    for idx in per_token.values():
        rng.shuffle(idx)
    cold = ask_all(gw.url, cases, list(per_token.values()))
    # Pass 2, warm: every case again, shuffled over 4 connections that each carry every credential.
    warm = ask_all(gw.url, cases, shuffled_over(4))
    bad = mismatches("cold", world, cases, cold, ref404, ref401) + mismatches("warm", world, cases, warm, ref404,
                                                                                 ref401)

    # Pass 3: access changes (a tenant moves workspace, a role gains the capability, memberships come and go,
    # a token is revoked) while every verdict is cached for an hour. Once the gateway has heard of each
    # change, the whole matrix must follow the changed world.
    probes = change_access(db, world)
    with KeepAlive(gw.url) as c:
        for token, path, status in probes:
            wait_for(lambda: c.get(path + "?wait=0", headers=credential_headers(token, False)).status == status,
                     timeout=10, what=f"{token} on {path} -> {status} after the change")
    changed = ask_all(gw.url, cases, shuffled_over(4))
    bad += mismatches("after change", world, cases, changed, ref404, ref401)
    flipped = sum(1 for c in cases if World().verdict(c.token, c.kind, c.key) != world.verdict(c.token, c.kind, c.key))
    elapsed = time.monotonic() - t0

    size = (f"{len(cases)} cases = {len(TOKENS)} credentials x {len(table)} resources "
            f"({sum(1 for r in table if r[2] == 'run')} run paths, {sum(1 for r in table if r[2] == 'pack')} "
            f"review-pack paths); expected 200/404/401 = {by_want['200']}/{by_want['404']}/{by_want['401']}; "
            f"asked cold, warm and after {len(probes)} access changes ({flipped} verdicts flipped) = "
            f"{3 * len(cases)} requests in {elapsed:.2f}s")
    print(size)
    notes(size)
    assert not bad, (f"{len(bad)} of {3 * len(cases)} answers differ from the oracle:\n"
                     + "\n".join(bad[:80]) + ("\n..." if len(bad) > 80 else ""))
