"""A one-second smoke of `make bench-triggers` (bench/triggers_bench.py) on the session's cluster.

The benchmark itself is not part of make test (it takes minutes and its numbers belong to the machine); this
only proves the script still runs end to end: every hint source measured, the table printed, the JSON
written, and the `notify` point really sending hints (its LISTEN session received some) while `none` sent
none.
"""

import json
import os
import subprocess
import sys

import helpers
from helpers import REPO


def test_bench_triggers_smoke(pg, tmp_path):
    out = tmp_path / "bench-triggers.json"
    env = dict(os.environ, POLLGATE_BIN=str(helpers.pollgate_bin()))
    p = subprocess.run([sys.executable, str(REPO / "bench" / "triggers_bench.py"), "--database", pg.dsn,
                        "--seconds", "1", "--clients", "1", "--rows", "200", "--json", str(out)],
                       capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL, env=env)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "notify/none" in p.stdout, p.stdout
    data = json.loads(out.read_text())
    point = data["results"]["1"]
    assert point["none"]["tps"] > 0 and point["notify"]["tps"] > 0
    assert point["notify"]["notifications_received"] > 0
    assert "notifications_received" not in point["none"]
    assert point["notify"]["ratio_to_none"] > 0
    # The logical point ran a gateway with hint_source = logical that decoded the writers' commits.
    assert point["logical"]["tps"] > 0 and point["logical"]["transactions_decoded"] > 0
    assert "logical/none" in p.stdout, p.stdout
    # The benchmark database is gone again; the triggers of the session's own database are untouched.
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'pollgate_bench_triggers'",
                   dbname="postgres").strip() == "0"
