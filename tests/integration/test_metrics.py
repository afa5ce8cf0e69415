"""Metrics an operator can alert on: /metrics from a live gateway checked by Prometheus's own promtool
(Debian's `prometheus` package), every series there from the first scrape, the process and build
figures against /proc, the hold-duration histogram, and the shipped alert rules (conf/prometheus/) and
Grafana dashboard (conf/grafana/) checked against the names a live scrape really has.
"""

import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from helpers import REPO, http, make_demo_world, make_run, run_pollgate, set_run, wait_for

RULES = REPO / "conf" / "prometheus" / "pollgate.rules.yml"
RULE_TESTS = REPO / "conf" / "prometheus" / "pollgate.rules.test.yml"
DASHBOARD = REPO / "conf" / "grafana" / "pollgate.json"

REASONS = ("changed", "terminal", "unchanged", "timeout", "denied", "revoked", "unauthorized", "drain", "cap",
           "error", "disconnect")


def promtool():
    path = shutil.which("promtool")
    assert path, "promtool not found: install Debian's prometheus package (scripts/deps.sh does)"
    return path


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    make_run(db, 1, tenant_id=7, id=42, status="running")
    return w


def scrape(gw):
    r = http("GET", gw.url + "/metrics", timeout=10.0)
    assert r.status == 200
    return r.body.decode()


def series_names(text):
    return {m.group(1) for m in re.finditer(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", text, re.M)}


def test_every_series_is_there_from_the_start(gateway, world):
    gw = gateway(log_level="info")
    m = gw.metrics()  # before any request of ours: only the fixture's /readyz checks have happened
    for route in ("run", "review_pack", "healthz", "readyz", "metrics"):
        for status in ("200", "304", "401", "404", "429", "503"):
            key = f'pollgate_requests_total{{route="{route}",status="{status}"}}'
            assert key in m, f"{key} missing from a fresh gateway"
    assert m['pollgate_requests_total{route="run",status="503"}'] == 0
    for reason in REASONS:
        assert m[f'pollgate_hold_duration_seconds_count{{reason="{reason}"}}'] == 0
        assert m[f'pollgate_hold_duration_seconds_bucket{{reason="{reason}",le="+Inf"}}'] == 0
    assert "pollgate_notification_queue_usage_ratio" in m
    assert "pollgate_notification_queue_usage" not in m  # renamed: the unit suffix
    assert m["pollgate_max_waiters"] == 100000


def test_build_info_and_process_metrics_match_the_process(gateway, world):
    gw = gateway(log_level="info", max_waiters=1234)
    m = gw.metrics()
    version = run_pollgate("--version").stdout.split()[-1]
    assert m[f'pollgate_build_info{{version="{version}"}}'] == 1
    assert m["pollgate_max_waiters"] == 1234
    pid = gw.proc.pid
    # start time: /proc/<pid>/stat field 22 + btime, the same source; and within a minute of now
    with open(f"/proc/{pid}/stat") as f:
        after = f.read().rsplit(")", 1)[1].split()
    start_ticks = int(after[22 - 3])
    btime = next(int(l.split()[1]) for l in open("/proc/stat") if l.startswith("btime "))
    want_start = btime + start_ticks / os.sysconf("SC_CLK_TCK")
    assert abs(m["process_start_time_seconds"] - want_start) < 0.02
    assert abs(m["process_start_time_seconds"] - time.time()) < 120
    # descriptors: the process's own count at about the same moment (a connection or two may differ)
    assert abs(m["process_open_fds"] - len(os.listdir(f"/proc/{pid}/fd"))) <= 3
    soft = next(l.split()[3] for l in open(f"/proc/{pid}/limits") if l.startswith("Max open files"))
    assert m["process_max_fds"] == int(soft)
    rss_kb = next(int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS:"))
    assert 0.5 * rss_kb * 1024 < m["process_resident_memory_bytes"] < 2 * rss_kb * 1024
    assert m["process_virtual_memory_bytes"] >= m["process_resident_memory_bytes"]
    # CPU: grows when the gateway works
    cpu0 = m["process_cpu_seconds_total"]
    for _ in range(300):
        gw.get("/v1/runs/42?wait=0", token="tok-alice")
    assert gw.metrics()["process_cpu_seconds_total"] > cpu0


def test_hold_duration_histogram_by_reason(gateway, world, db):
    gw = gateway(log_level="info")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag                       # changed, at once
    assert gw.get("/v1/runs/42?wait=1", token="tok-alice", etag=etag).status == 304    # timeout after ~1 s
    box = {}
    t = threading.Thread(target=lambda: box.setdefault(
        "r", gw.get("/v1/runs/42?wait=20", token="tok-alice", etag=etag)))
    t.start()
    wait_for(lambda: gw.metrics().value("pollgate_waiters_held") >= 1, what="held")
    set_run(db, 42, status="running", summary_counts={"n": 1})
    t.join(20)
    assert box["r"].status == 200
    assert gw.get("/v1/runs/999?wait=0", token="tok-alice").status == 404             # denied
    m = gw.metrics()
    h = "pollgate_hold_duration_seconds"
    assert m[f'{h}_count{{reason="changed"}}'] == 2
    assert m[f'{h}_count{{reason="timeout"}}'] == 1
    assert m[f'{h}_count{{reason="denied"}}'] == 1
    assert 0.9 <= m[f'{h}_sum{{reason="timeout"}}'] < 10
    assert m[f'{h}_bucket{{reason="timeout",le="0.5"}}'] == 0
    assert m[f'{h}_bucket{{reason="timeout",le="5"}}'] == 1
    assert m[f'{h}_bucket{{reason="changed",le="+Inf"}}'] == 2
    # cumulative buckets never decrease
    for reason in REASONS:
        vals = [v for n, lab, v in m.series if n == f"{h}_bucket" and lab["reason"] == reason]
        assert vals == sorted(vals) and vals[-1] == m[f'{h}_count{{reason="{reason}"}}']


def test_promtool_check_metrics_on_a_live_scrape(gateway, world, db):
    gw = gateway(log_level="info")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    gw.get("/v1/runs/42?wait=1", token="tok-alice", etag=etag)
    gw.get("/v1/runs/7?wait=0", token="nope")
    text = scrape(gw)
    r = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        f"promtool check metrics: rc={r.returncode}\n{r.stdout}\n{r.stderr}"
    # promtool would flag a counter without _total; check it can fail on this text
    bad = text.replace("pollgate_db_queries_total", "pollgate_db_queries")
    r = subprocess.run([promtool(), "check", "metrics"], input=bad, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 or r.stdout.strip() or r.stderr.strip()


def test_alert_rules_check_and_their_unit_tests_pass():
    r = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and "SUCCESS: 7 rules found" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True, timeout=60,
                       cwd=RULE_TESTS.parent)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    alerts = set(re.findall(r"^\s*- alert: (\w+)", RULES.read_text(), re.M))
    assert alerts == {"PollgateListenDown", "PollgateDatabaseUnreachable", "PollgateHigh503Rate",
                      "PollgateNotificationQueueFilling", "PollgateWaitersNearMax", "PollgateWakeLatencyHigh",
                      "PollgateHintTriggerMissing"}
    tested = set(re.findall(r"alertname: (\w+)", RULE_TESTS.read_text()))
    assert tested == alerts, f"alerts without a unit test: {alerts - tested}"


def _metric_names_in(expr):
    """Metric names a PromQL expression reads (identifiers that are pollgate_* or process_*)."""
    return set(re.findall(r"\b((?:pollgate|process)_[a-zA-Z0-9_]+)", expr))


def test_rules_and_dashboard_read_only_metrics_a_live_gateway_exports(gateway, world):
    gw = gateway(log_level="info")
    live = series_names(scrape(gw))
    dash = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(panels):
        for p in panels:
            exprs.extend(t["expr"] for t in p.get("targets", []) if "expr" in t)
            walk(p.get("panels", []))
    walk(dash["panels"])
    assert len(exprs) >= 20, "the dashboard has fewer queries than expected"
    for v in dash["templating"]["list"]:
        if v.get("type") == "query":
            exprs.append(v["definition"])
    used = set().union(*(_metric_names_in(e) for e in exprs))
    missing = used - live
    assert not missing, f"the dashboard queries metrics a live gateway does not export: {sorted(missing)}"
    rule_exprs = re.findall(r"expr: \|?\s*\n?((?:.+\n)+?)\s*for:", RULES.read_text())
    rule_used = set().union(*(_metric_names_in(e) for e in rule_exprs))
    assert len(rule_used) >= 6
    assert not rule_used - live, f"the rules read metrics a live gateway does not export: {sorted(rule_used - live)}"
    # every exported pollgate_ series family is on the dashboard somewhere (histograms by their _bucket/_count)
    families = {re.sub(r"_(bucket|sum|count)$", "", n) for n in live if n.startswith("pollgate_")}
    shown = {re.sub(r"_(bucket|sum|count)$", "", n) for n in used}
    assert not families - shown, f"exported but on no panel: {sorted(families - shown)}"
