"""A one-second smoke of `make bench-triggers` (bench/triggers_bench.py) on the session's cluster.

The benchmark itself is not part of make test (it takes minutes and its numbers belong to the machine); this
only proves the script still runs end to end: both hint sources measured, the table printed, the JSON
written, and the `notify` point really sending hints (its LISTEN session received some) while `none` sent
none.
"""

import json
import subprocess
import sys

from helpers import REPO


def test_bench_triggers_smoke(pg, tmp_path):
    out = tmp_path / "bench-triggers.json"
    p = subprocess.run([sys.executable, str(REPO / "bench" / "triggers_bench.py"), "--database", pg.dsn,
                        "--seconds", "1", "--clients", "1", "--rows", "200", "--json", str(out)],
                       capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "notify/none" in p.stdout, p.stdout
    data = json.loads(out.read_text())
    point = data["results"]["1"]
    assert point["none"]["tps"] > 0 and point["notify"]["tps"] > 0
    assert point["notify"]["notifications_received"] > 0
    assert "notifications_received" not in point["none"]
    assert point["notify"]["ratio_to_none"] > 0
    # The benchmark database is gone again; the triggers of the session's own database are untouched.
    assert pg.psql("SELECT count(*) FROM pg_database WHERE datname = 'pollgate_bench_triggers'",
                   dbname="postgres").strip() == "0"
