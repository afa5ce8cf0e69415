"""Operations (issue 4): log files survive rotation, and every line of a request carries its id."""

import re
import signal

import pytest

from helpers import make_demo_world, make_run, wait_for


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    make_run(db, 1, 7, id=42, status="running")
    return w


def test_sighup_reopens_the_log_file_after_rotation(gateway, world, tmp_path):
    log = tmp_path / "pollgate.log"
    gw = gateway(log_file=str(log), log_level="debug")
    wait_for(lambda: log.exists() and log.stat().st_size > 0, timeout=10, what="the first lines in log_file")
    # logrotate's default (create): move the file away, then ask for a reopen.
    rotated = tmp_path / "pollgate.log.1"
    log.rename(rotated)
    gw.get("/v1/runs/42?wait=0", token="tok-alice")  # still written to the moved file (the open descriptor)
    gw.send_signal(signal.SIGHUP)
    wait_for(lambda: log.exists() and "config reloaded" in log.read_text(), timeout=10,
             what="a new log file after SIGHUP")
    r = gw.get("/v1/runs/42?wait=0", token="tok-alice")
    rid = r.headers["X-Request-Id"]
    wait_for(lambda: rid in log.read_text(), timeout=10, what="the next request in the new file")
    assert rid not in rotated.read_text()
    gw.stop()
    assert "pollgate stopped" in log.read_text()


def test_every_log_line_of_a_request_carries_its_request_id(gateway, world, db):
    gw = gateway(log_level="debug", trusted_proxies="127.0.0.1/32")
    etag = gw.get("/v1/runs/42?wait=0", token="tok-alice").etag
    r = gw.get("/v1/runs/42?wait=1", token="tok-alice", etag=etag, headers={"X-Request-Id": "edge-7f3a-01"})
    assert r.status == 304 and r.headers["X-Request-Id"] == "edge-7f3a-01"
    r = gw.get("/v1/runs/43?wait=0", token="tok-alice", headers={"X-Request-Id": "edge-7f3a-02"})
    assert r.status == 404 and r.headers["X-Request-Id"] == "edge-7f3a-02"
    gw.stop()
    text = gw.log()
    for rid in ("edge-7f3a-01", "edge-7f3a-02"):
        lines = [l for l in text.splitlines() if rid in l]
        assert any('msg="request"' in l for l in lines), lines
        assert any('msg="answered"' in l for l in lines), lines
        assert all(re.search(rf"\brid={re.escape(rid)}\b", l) for l in lines), lines
    # And request lines never lack one.
    for l in text.splitlines():
        if 'msg="request"' in l or 'msg="answered"' in l or 'msg="long-poll"' in l:
            assert re.search(r"\brid=\S+", l), l
