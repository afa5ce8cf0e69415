#!/usr/bin/python3
"""bench/hint_latency.py — wake latency with hint_source = logical against notify, in the same run.

    make bench-hints
    /usr/bin/python3 bench/hint_latency.py [--runs 20] [--waiters 5] [--updates 400] [--interval 0.05]
                                           [--json build/bench-hints.json]

One throwaway PostgreSQL cluster (the integration harness's PgCluster, wal_level = logical) and two real
gateways ($POLLGATE_BIN, default ./pollgate) on it at the same time: one with hint_source = notify (the
hint triggers + LISTEN), one with hint_source = logical (its temporary pgoutput slot). R runs, started an
hour ago (10 s safety-net interval, so every wake measured is a hint's); on each gateway W clients hold a
long-poll on every run and re-poll with the new ETag as soon as they are answered. A driver then commits
U single-row updates, one every --interval seconds, round-robin over the runs, each writing a sequence
number into summary_counts. A client records when the answer carrying that number arrived; latency = that
moment minus the moment COMMIT returned to the driver. Both gateways see every commit, so the two
distributions share the machine's load, one commit at a time.

The driver commits with synchronous_commit = on (PostgreSQL's default) unless --synchronous-commit off:
logical decoding reads only WAL that is flushed, so an asynchronous commit is hinted once the WAL writer
flushes it (within wal_writer_delay, 200 ms by default), while NOTIFY goes out at commit either way. The
cluster itself runs the harness's fsync = off.

Prints p50/p90/p99/max per hint source and the ratio of the p99s, and writes them to the JSON file.
Everything shares the machine's cores: the numbers are this box's, not the gateway's alone.
"""

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.dont_write_bytecode = True
sys.path.insert(0, str(REPO / "tests" / "integration"))

from conftest import Gateway, PgCluster  # noqa: E402
import helpers  # noqa: E402


class Client(threading.Thread):
    """One keep-alive connection long-polling one run, re-polling at once with the new ETag."""

    def __init__(self, gw, run, etag, arrivals, stop):
        super().__init__(daemon=True)
        self.gw, self.run_id, self.etag, self.arrivals, self.stop = gw, run, etag, arrivals, stop
        self.errors = 0

    def run(self):
        conn = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=60)
        while not self.stop.is_set():
            try:
                conn.request("GET", f"/v1/runs/{self.run_id}?wait=20",
                             headers={"Authorization": "Bearer tok-alice", "If-None-Match": self.etag})
                r = conn.getresponse()
                body = r.read()
                t = time.monotonic()
            except OSError:
                self.errors += 1
                conn.close()
                conn = http.client.HTTPConnection(self.gw.host, self.gw.port, timeout=60)
                time.sleep(0.05)
                continue
            if r.status == 200:
                self.etag = r.getheader("ETag")
                seq = json.loads(body)["run"]["summary_counts"].get("seq")
                if seq is not None:
                    self.arrivals.append((seq, t))
        conn.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--waiters", type=int, default=5, help="clients per run per gateway")
    ap.add_argument("--updates", type=int, default=400)
    ap.add_argument("--interval", type=float, default=0.05)
    ap.add_argument("--synchronous-commit", choices=("on", "off"), default="on",
                    help="the driver's synchronous_commit (default on, PostgreSQL's default; see below)")
    ap.add_argument("--json", default=str(REPO / "build" / "bench-hints.json"))
    args = ap.parse_args()

    binary = helpers.pollgate_bin()
    cluster = PgCluster()
    gws, clients, stop = [], [], threading.Event()
    workdir = Path(tempfile.mkdtemp(prefix="pollgate-hints-"))
    try:
        cluster.init()
        cluster.start()
        cluster.setup_database()
        conn = cluster.connect()
        helpers.make_demo_world(conn)
        for i in range(1, args.runs + 1):
            helpers.make_run(conn, 1, 7, id=i, status="running", started_at=helpers.Raw("now() - interval '1 hour'"))
        caps = {"max_waiters_per_principal": 100000, "max_waiters_per_client": 100000, "log_level": "warn"}
        sources = ("notify", "logical")
        for src in sources:
            db = cluster.gateway_logical_uri if src == "logical" else cluster.gateway_uri
            gw = Gateway(binary, workdir, f"gw-{src}", dict(caps, listen=f"127.0.0.1:{helpers.free_port()}",
                                                              database=db, hint_source=src))
            gws.append(gw)
            gw.start()
        arrivals = {src: [] for src in sources}
        for src, gw in zip(sources, gws):
            for i in range(1, args.runs + 1):
                etag = gw.get(f"/v1/runs/{i}?wait=0", token="tok-alice").etag
                for _ in range(args.waiters):
                    c = Client(gw, i, etag, arrivals[src], stop)
                    clients.append(c)
                    c.start()
        total = args.runs * args.waiters
        for gw in gws:
            helpers.wait_for(lambda: gw.metrics().value("pollgate_waiters_held", kind="run") == total, timeout=30,
                             what=f"{total} held on {gw.name}")

        commits = {}
        with conn.cursor() as cur:
            cur.execute(f"SET synchronous_commit = {args.synchronous_commit}")
            for seq in range(args.updates):
                run = seq % args.runs + 1
                cur.execute("UPDATE operation_runs SET summary_counts = jsonb_build_object('seq', %s) WHERE id = %s",
                            (seq, run))
                commits[seq] = time.monotonic()  # autocommit: COMMIT has returned
                time.sleep(args.interval)
        expected = args.updates * args.waiters
        try:
            helpers.wait_for(lambda: all(len(arrivals[s]) >= expected for s in sources), timeout=30,
                             what="every answer")
        except AssertionError:
            print({s: len(arrivals[s]) for s in sources}, "of", expected, file=sys.stderr)
            for s in sources:
                got = {q for q, _ in arrivals[s]}
                print(s, "missing seqs", sorted(set(range(args.updates)) - got)[:20], file=sys.stderr)
            raise
        result = {}
        for src in sources:
            lat = [(t - commits[seq]) * 1000.0 for seq, t in arrivals[src] if seq in commits]
            result[src] = {"answers": len(lat), "p50_ms": round(pct(lat, 50), 2), "p90_ms": round(pct(lat, 90), 2),
                           "p99_ms": round(pct(lat, 99), 2), "max_ms": round(max(lat), 2),
                           "mean_ms": round(statistics.mean(lat), 2)}
        waits = gws[1].metrics().value("pollgate_logical_visibility_waits_total")
        result["logical"]["visibility_waits"] = int(waits)
        ratio = result["logical"]["p99_ms"] / result["notify"]["p99_ms"] if result["notify"]["p99_ms"] else float("nan")
        print(f"hint latency: {args.runs} runs x {args.waiters} waiters per gateway, {args.updates} commits "
              f"{args.interval * 1000:.0f} ms apart, synchronous_commit={args.synchronous_commit}; both gateways "
              f"on one cluster at once")
        print(f"{'source':>8} {'answers':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for src in sources:
            r = result[src]
            print(f"{src:>8} {r['answers']:>8} {r['p50_ms']:>8.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} "
                  f"{r['max_ms']:>8.2f}")
        print(f"p99 logical / notify = {ratio:.2f} (target <= 2); the logical gateway held back {int(waits)} "
              f"commit(s) until new snapshots saw them")
        out = {"what": "commit-to-answer latency of a held long-poll, notify and logical gateways side by side",
               "runs": args.runs, "waiters_per_run": args.waiters, "updates": args.updates,
               "interval_s": args.interval, "synchronous_commit": args.synchronous_commit, "results": result, "p99_ratio_logical_to_notify": round(ratio, 3)}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
        print(f"wrote {args.json}")
    finally:
        stop.set()
        for gw in gws:
            try:
                gw.stop(timeout=30)
            except AssertionError as e:
                print(e, file=sys.stderr)
        for c in clients:
            c.join(5)
        cluster.destroy()


if __name__ == "__main__":
    main()
