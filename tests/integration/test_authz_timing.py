"""Deny-as-not-found must not be separable by timing (api.md "Answering" 2).

A caller who may not see a resource gets the same 404 bytes as for a missing one; it must not be able to
tell the two apart by how long the answer takes either. Each test takes a few hundred `?wait=0` samples
per class, interleaved in a random order on one keep-alive connection (time.perf_counter() around one
complete request), checks every answer is the one 404, and compares medians.

The gateway trusts a (user, resource) verdict for auth_cache_ttl, so the main tests ask a *distinct* id
for every sample: each one is a real database read, for the missing ids as for the forbidden ones (300
forbidden runs, 300 tenants of each forbidden kind, 300 missing ids). A second test asks the *same* id
again and again, where the verdict cache (or the lack of one for a missing id) could make a difference.

Margins are wide on purpose (CI runs this under ASan on 2 shared cores): the medians must differ by less
than max(1 ms, 25 % of the larger one). The medians are printed and shown in the "pollgate notes"
summary. Such a margin cannot see a difference of one extra database round trip (~0.1-0.3 ms here), so a
last test checks that deterministically: a missing and a forbidden id cost the same statements
(pg_stat_statements), asked once, asked again, and asked for another id.
"""

import gc
import os
import random
import statistics

import pytest

from helpers import KeepAlive, comparable, pollgate_bin

N = 300
TOKEN = "tok-timing"
USER = 1
OWN_WS, OTHER_WS = 1, 2
OWN_TENANT = 10          # the user's tenant, with review_packs.view
LOCKED_TENANT = 11       # a tenant of the user's workspace the user has no membership of

# Every id of a class has the same number of digits as every other class's.
RUN_FORBIDDEN_WS = 2_000_000      # runs of another workspace
RUN_FORBIDDEN_TENANT = 3_000_000  # runs of the user's workspace, on a tenant the user is not in
RUN_MISSING = 4_000_000
TENANT_OTHER_WS = 2_000_000       # tenants of another workspace (with a pack)
TENANT_NO_CAP = 3_000_000         # tenants of the user's workspace, membership role without the capability
TENANT_MISSING = 4_000_000


def build_world(db, n=N):
    with db.cursor() as cur:
        cur.execute("INSERT INTO workspaces (id, name) VALUES (%s, 'mine'), (%s, 'theirs')", (OWN_WS, OTHER_WS))
        cur.execute("INSERT INTO users (id, email) VALUES (%s, 'timing@test.invalid')", (USER,))
        cur.execute("INSERT INTO workspace_memberships (workspace_id, user_id, role) VALUES (%s, %s, 'member')",
                    (OWN_WS, USER))
        cur.execute("INSERT INTO role_capabilities (role, capability) VALUES ('owner', 'review_packs.view'), "
                    "('readonly', 'runs.view')")
        cur.execute("INSERT INTO tenants (id, workspace_id, name) VALUES (%s, %s, 'own'), (%s, %s, 'locked')",
                    (OWN_TENANT, OWN_WS, LOCKED_TENANT, OWN_WS))
        cur.execute("INSERT INTO tenant_memberships (tenant_id, user_id, role) VALUES (%s, %s, 'owner')",
                    (OWN_TENANT, USER))
        cur.execute("INSERT INTO access_tokens (user_id, token_sha256) VALUES (%s, sha256(%s::bytea))",
                    (USER, TOKEN.encode()))
        # Runs of the other workspace, and runs of the user's workspace on the locked tenant.
        cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, summary_counts) "
                    "SELECT %s + g, %s, NULL, 'inventory.sync', 'running', '{\"total\": 10}' "
                    "FROM generate_series(0, %s - 1) g", (RUN_FORBIDDEN_WS, OTHER_WS, n + 50))
        cur.execute("INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, summary_counts) "
                    "SELECT %s + g, %s, %s, 'inventory.sync', 'running', '{\"total\": 10}' "
                    "FROM generate_series(0, %s - 1) g", (RUN_FORBIDDEN_TENANT, OWN_WS, LOCKED_TENANT, n + 50))
        # Tenants of the other workspace (each with a pack), and tenants of the user's workspace where the
        # user's role lacks the capability (each with a pack too).
        for base, ws, role in ((TENANT_OTHER_WS, OTHER_WS, None), (TENANT_NO_CAP, OWN_WS, "readonly")):
            cur.execute("INSERT INTO tenants (id, workspace_id, name) SELECT %s + g, %s, 't' "
                        "FROM generate_series(0, %s - 1) g", (base, ws, n + 50))
            cur.execute("INSERT INTO review_packs (workspace_id, tenant_id, status) SELECT %s, %s + g, "
                        "'generating' FROM generate_series(0, %s - 1) g", (ws, base, n + 50))
            if role:
                cur.execute("INSERT INTO tenant_memberships (tenant_id, user_id, role) SELECT %s + g, %s, %s "
                            "FROM generate_series(0, %s - 1) g", (base, USER, role, n + 50))
        cur.execute("ANALYZE")


def run_path(i):
    return f"/v1/runs/{i}?wait=0"


def pack_path(i):
    return f"/v1/tenants/{i}/review-pack?wait=0"


def sample(url, classes, rng):
    """classes: {name: [path, ...]}. Every path is asked once, all classes interleaved in a random order on
    one keep-alive connection. Returns {name: [seconds, ...]} and the comparable() of every answer."""
    order = [(name, p) for name, paths in classes.items() for p in paths]
    rng.shuffle(order)
    times = {name: [] for name in classes}
    answers = {name: set() for name in classes}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with KeepAlive(url) as c:
        # Warm up the connection, the principal cache and both statements outside the samples.
        for p in (run_path(RUN_MISSING - 1), pack_path(TENANT_MISSING - 1), run_path(RUN_FORBIDDEN_WS + N + 49),
                  pack_path(TENANT_NO_CAP + N + 49)) * 5:
            c.get(p, headers=headers)
        gc_was = gc.isenabled()
        gc.disable()
        try:
            for name, p in order:
                r = c.get(p, headers=headers)
                times[name].append(r.elapsed)
                answers[name].add((p.split("?")[0].rsplit("/", 2)[0], repr(comparable(r))))
        finally:
            if gc_was:
                gc.enable()
        assert c.connects == 1, f"the gateway closed the keep-alive connection {c.connects - 1} times"
    return times, answers


def ms(x):
    return x * 1000.0


def summarize(times):
    return {name: statistics.median(t) for name, t in times.items()}


def compare(label, med, missing, others, notes):
    """Assert each class in `others` has a median within the margin of the `missing` class's."""
    binary = os.path.relpath(pollgate_bin(), os.getcwd()) if os.path.isabs(pollgate_bin()) else str(pollgate_bin())
    line = f"{label} [{binary}]: medians " + ", ".join(f"{k} {ms(v):.3f} ms" for k, v in med.items())
    print(line)
    notes(line)
    bad = []
    for other in others:
        a, b = med[missing], med[other]
        margin = max(0.001, 0.25 * max(a, b))
        if abs(a - b) >= margin:
            bad.append(f"{missing} {ms(a):.3f} ms vs {other} {ms(b):.3f} ms: differ by {ms(abs(a - b)):.3f} ms "
                       f">= margin {ms(margin):.3f} ms")
    assert not bad, f"{label}: a denial is separable from a missing id by timing:\n" + "\n".join(bad)


def check_all_the_same_404(answers):
    """Every sample of every class got the one 404 (per route: runs and tenants may be compared apart,
    but api.md wants them identical too)."""
    distinct = {a for s in answers.values() for _, a in s}
    assert len(distinct) == 1, f"the samples got different answers: {answers}"
    assert "404" in next(iter(distinct))


@pytest.fixture
def world(db):
    build_world(db)


def test_missing_and_forbidden_take_the_same_time_distinct_ids(gateway, world, notes):
    gw = gateway(log_level="info")  # debug lines on every request would only add noise
    rng = random.Random(1)
    classes = {
        "run-missing": [run_path(RUN_MISSING + i) for i in range(N)],
        "run-other-workspace": [run_path(RUN_FORBIDDEN_WS + i) for i in range(N)],
        "run-locked-tenant": [run_path(RUN_FORBIDDEN_TENANT + i) for i in range(N)],
        "pack-missing-tenant": [pack_path(TENANT_MISSING + i) for i in range(N)],
        "pack-other-workspace": [pack_path(TENANT_OTHER_WS + i) for i in range(N)],
        "pack-no-capability": [pack_path(TENANT_NO_CAP + i) for i in range(N)],
    }
    times, answers = sample(gw.url, classes, rng)
    check_all_the_same_404(answers)
    med = summarize(times)
    compare("runs, distinct ids", {k: v for k, v in med.items() if k.startswith("run")},
            "run-missing", ["run-other-workspace", "run-locked-tenant"], notes)
    compare("review packs, distinct ids", {k: v for k, v in med.items() if k.startswith("pack")},
            "pack-missing-tenant", ["pack-other-workspace", "pack-no-capability"], notes)


def test_missing_and_forbidden_take_the_same_time_repeated_id(gateway, world, notes):
    # The same id asked again and again: the forbidden verdict may come from the cache (auth_cache_ttl,
    # long here), a missing id has nothing to cache. Either way the two must not be told apart.
    gw = gateway(log_level="info", auth_cache_ttl="1h")
    rng = random.Random(2)
    n = 200
    classes = {
        "run-missing": [run_path(RUN_MISSING)] * n,
        "run-other-workspace": [run_path(RUN_FORBIDDEN_WS)] * n,
        "run-locked-tenant": [run_path(RUN_FORBIDDEN_TENANT)] * n,
        "pack-missing-tenant": [pack_path(TENANT_MISSING)] * n,
        "pack-other-workspace": [pack_path(TENANT_OTHER_WS)] * n,
        "pack-no-capability": [pack_path(TENANT_NO_CAP)] * n,
    }
    times, answers = sample(gw.url, classes, rng)
    check_all_the_same_404(answers)
    med = summarize(times)
    compare("runs, repeated id", {k: v for k, v in med.items() if k.startswith("run")},
            "run-missing", ["run-other-workspace", "run-locked-tenant"], notes)
    compare("review packs, repeated id", {k: v for k, v in med.items() if k.startswith("pack")},
            "pack-missing-tenant", ["pack-other-workspace", "pack-no-capability"], notes)


def test_missing_and_forbidden_cost_the_same_queries(gateway, world, pg, db):
    # The deterministic half of the timing tests: per request, a missing id and a forbidden one send the
    # same statements the same number of times (the medians above only bound what noise can hide).
    gw = gateway(log_level="info", auth_cache_ttl="1h")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    classes = {
        "run-missing": (run_path(RUN_MISSING), run_path(RUN_MISSING + 1)),
        "run-other-workspace": (run_path(RUN_FORBIDDEN_WS), run_path(RUN_FORBIDDEN_WS + 1)),
        "run-locked-tenant": (run_path(RUN_FORBIDDEN_TENANT), run_path(RUN_FORBIDDEN_TENANT + 1)),
        "pack-missing-tenant": (pack_path(TENANT_MISSING), pack_path(TENANT_MISSING + 1)),
        "pack-other-workspace": (pack_path(TENANT_OTHER_WS), pack_path(TENANT_OTHER_WS + 1)),
        "pack-no-capability": (pack_path(TENANT_NO_CAP), pack_path(TENANT_NO_CAP + 1)),
    }
    cost = {}
    with KeepAlive(gw.url) as c:
        c.get(run_path(RUN_MISSING - 1), headers=headers)  # the token lookup, outside the counts
        for name, (repeated, other) in classes.items():
            with db.cursor() as cur:
                cur.execute("SELECT pg_stat_statements_reset()")
            for p in (repeated, other, repeated, repeated):  # a first ask, another id, then the same again
                assert c.get(p, headers=headers).status == 404
            cost[name] = sorted((s["query"][:50], s["calls"]) for s in pg.statements()
                                if "pg_stat_statements" not in s["query"] and "pg_notification_queue_usage" not in
                                s["query"])
    assert cost["run-missing"] and cost["pack-missing-tenant"], cost  # each ask is a database read
    assert cost["run-other-workspace"] == cost["run-missing"] and cost["run-locked-tenant"] == cost["run-missing"], cost
    assert (cost["pack-other-workspace"] == cost["pack-missing-tenant"]
            and cost["pack-no-capability"] == cost["pack-missing-tenant"]), cost
