#!/usr/bin/python3
"""bench/triggers_bench.py — what the wake-up hints cost the application's writes.

    make bench-triggers
    /usr/bin/python3 bench/triggers_bench.py [--seconds 10] [--clients 1,8,32] [--rows 10000]
                                             [--sources none,notify,logical] [--synchronous-commit on|off]
                                             [--repeat 1]
                                             [--database URI] [--json PATH]

pgbench updates one random operation_runs row per transaction, changing a served column (summary_counts),
at each client count, once per hint source:

  notify  the hint triggers of db/migrations (pollgate_attach): every UPDATE sends a NOTIFY, and a
          session LISTENs and drains them as the gateway would
  logical no hint trigger (pollgate_attach_logical): a real ./pollgate with hint_source = logical streams
          the changes through its temporary pgoutput slot meanwhile (the cluster runs wal_level = logical
          for every source, so the columns differ only in the hint source)
  none    no hint trigger on operation_runs (pollgate_detach): the floor

A hint source is one entry of SOURCES below (setup and teardown on the benchmark database), so another
one is a few lines. The points are interleaved per client count (none, notify, none, notify, ...) so a
drift of the shared machine does not land on one source; before each point the table is vacuumed and a
checkpoint taken.

By default a throwaway cluster (initdb in a temporary directory, removed at the end) with PostgreSQL's
default durability (fsync on, synchronous_commit on), because the cost being measured sits in the commit:
a transaction that sent NOTIFY takes one database-wide lock before its commit record is written and holds
it until the commit is flushed, so notifying commits are serialised, and group commit cannot merge their
WAL flushes. --database URI uses that server instead (a superuser connection; the database
pollgate_bench_triggers is created and dropped there), which is how the test suite runs a one-second smoke.
--synchronous-commit off runs pgbench's sessions with synchronous_commit = off (a per-session setting an
application may choose): commits no longer wait for their flush, and neither does the lock.

Environment: BENCH_TRIGGERS_SECONDS, BENCH_TRIGGERS_CLIENTS and BENCH_TRIGGERS_SOURCES override the
defaults; POLLGATE_PG_BINDIR the PostgreSQL programs (default the newest /usr/lib/postgresql/N/bin);
POLLGATE_BIN the gateway the logical source runs (default ./pollgate).
Prints a table (tps per source per client count and each source's ratio to `none`) and writes
build/bench-triggers.json.
"""

import argparse
import glob
import json
import os
import platform
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg2

REPO = Path(__file__).resolve().parents[1]
BENCH_DB = "pollgate_bench_triggers"

PGBENCH_SCRIPT = """\\set id random(1, :rows)
\\set n random(1, 1000000000)
UPDATE operation_runs SET summary_counts = jsonb_build_object('total', 100, 'processed', :n) WHERE id = :id;
"""


def pg_bindir():
    env = os.environ.get("POLLGATE_PG_BINDIR")
    if env:
        return Path(env)
    found = sorted((int(Path(d).parent.name), d) for d in glob.glob("/usr/lib/postgresql/*/bin")
                   if Path(d).parent.name.isdigit() and os.path.exists(os.path.join(d, "pgbench")))
    if found:
        return Path(found[-1][1])
    pgbench = shutil.which("pgbench")
    if pgbench:
        return Path(pgbench).parent
    sys.exit("pgbench not found: install postgresql-15 (scripts/deps.sh) or set POLLGATE_PG_BINDIR")


class Cluster:
    """A throwaway cluster with default durability, on a unix socket in its own directory."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.base = Path(tempfile.mkdtemp(prefix="pollgate-bt-", dir="/tmp"))
        self.data = self.base / "data"
        self.root = os.geteuid() == 0
        self.port = 5432

    def owner(self, argv):
        return ["runuser", "-u", "postgres", "--"] + argv if self.root else argv

    def run(self, argv):
        p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            log = (self.base / "log").read_text(errors="replace") if (self.base / "log").exists() else ""
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}\n{p.stdout}{p.stderr}\n{log[-2000:]}")
        return p

    def start(self):
        if self.root:
            shutil.chown(self.base, "postgres", "postgres")
        self.run(self.owner([str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-locale"]))
        with open(self.data / "postgresql.conf", "a") as f:
            f.write(f"\n# bench/triggers_bench.py: defaults but for these\nport = {self.port}\n"
                    f"listen_addresses = ''\nunix_socket_directories = '{self.base}'\nmax_connections = 100\n"
                    "shared_buffers = 256MB\nmax_wal_size = 4GB\n"
                    "# the logical source needs these; every source runs with them, for a fair comparison\n"
                    "wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n")
        self.run(self.owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"), "-w",
                             "-t", "60", "start"]))

    def conninfo(self, dbname):
        return f"host={self.base} port={self.port} user=postgres dbname={dbname}"

    def destroy(self):
        if (self.data / "PG_VERSION").exists():
            subprocess.run(self.owner([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                                       "stop"]), capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


def dsn_with_db(conninfo, dbname):
    """conninfo (URI or key=value) pointing at `dbname` instead."""
    if conninfo.startswith(("postgresql://", "postgres://")):
        return re.sub(r"^(postgres(?:ql)?://[^/?]*)(/[^?]*)?", lambda m: m.group(1) + "/" + dbname, conninfo)
    return f"{conninfo} dbname={dbname}"


class Listener(threading.Thread):
    """One LISTEN session draining every hint, as the gateway's would."""

    def __init__(self, conninfo):
        super().__init__(daemon=True)
        self.conn = psycopg2.connect(conninfo, application_name="pollgate-bench-listen")
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            for c in ("pollgate_run", "pollgate_review_pack", "pollgate_access"):
                cur.execute(f"LISTEN {c}")
        self.received = 0
        self.stopping = False

    def run(self):
        while not self.stopping:
            if select.select([self.conn], [], [], 0.2)[0]:
                self.conn.poll()
                self.received += len(self.conn.notifies)
                self.conn.notifies.clear()

    def stop(self):
        self.stopping = True
        self.join()
        self.conn.close()


def exec_sql(conn, text):
    with conn.cursor() as cur:
        cur.execute(text)


def migrations_sql():
    return [m.read_text() for m in sorted((REPO / "db" / "migrations").glob("*.sql"))]


# A hint source: what to do before its points and after them, on an autocommit connection to the
# benchmark database; `listen` = a LISTEN session drains the hints meanwhile.
def notify_setup(conn):
    for text in migrations_sql():
        exec_sql(conn, text)


def notify_teardown(conn):
    exec_sql(conn, "SELECT pollgate_detach('operation_runs')")


def none_setup(conn):
    exec_sql(conn, "SELECT pollgate_detach('operation_runs')")


class LogicalGateway:
    """./pollgate with hint_source = logical on the benchmark database, for the length of a point."""

    def __init__(self, conninfo):
        import urllib.request
        self._urlopen = urllib.request.urlopen
        self.dir = Path(tempfile.mkdtemp(prefix="pollgate-bt-gw-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = self.dir / "pollgate.conf"
        conf.write_text(f"listen = 127.0.0.1:{self.port}\ndatabase = \"{conninfo}\"\nhint_source = logical\n"
                        "log_level = warn\n")
        binary = os.environ.get("POLLGATE_BIN") or str(REPO / "pollgate")
        self.log = open(self.dir / "pollgate.log", "wb")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"pollgate exited {self.proc.returncode}:\n{self.log_text()}")
            try:
                with self._urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"pollgate not ready within 30 s:\n{self.log_text()}")
            time.sleep(0.05)

    def log_text(self):
        return (self.dir / "pollgate.log").read_text(errors="replace")[-3000:]

    def metric(self, name):
        with self._urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[1])
        return None

    def stop(self):
        try:
            transactions = self.metric("pollgate_logical_transactions_total")
        finally:
            self.proc.terminate()
            self.proc.wait(30)
            self.log.close()
            shutil.rmtree(self.dir, ignore_errors=True)
        return int(transactions or 0)


def logical_setup(conn):
    notify_setup(conn)
    exec_sql(conn, "SELECT pollgate_attach_logical('operation_runs', 'run', 'id')")


SOURCES = {
    "none": {"setup": none_setup, "teardown": lambda conn: None, "listen": False,
             "what": "no hint trigger on operation_runs"},
    "notify": {"setup": notify_setup, "teardown": notify_teardown, "listen": True,
               "what": "pollgate_attach row triggers (pg_notify per UPDATE), one LISTEN session draining"},
    "logical": {"setup": logical_setup, "teardown": notify_teardown, "listen": False, "gateway": True,
                "what": "no trigger (pollgate_attach_logical); ./pollgate with hint_source = logical streaming "
                        "the changes through a temporary pgoutput slot"},
}


def run_pgbench(bindir, conninfo, script, clients, seconds, rows, sync):
    jobs = min(clients, max(2, os.cpu_count() or 2))
    env = dict(os.environ, PGOPTIONS=f"-c synchronous_commit={sync}")
    argv = [str(bindir / "pgbench"), "-n", "-f", str(script), "-c", str(clients), "-j", str(jobs), "-T", str(seconds),
            "-D", f"rows={rows}", conninfo]
    p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=seconds * 4 + 60,
                       env=env)
    if p.returncode != 0:
        raise RuntimeError(f"pgbench exited {p.returncode}:\n{p.stdout}\n{p.stderr}")
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout)
    if not m:
        raise RuntimeError(f"no tps in pgbench's output:\n{p.stdout}")
    failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
    return float(m.group(1)), int(failed.group(1)) if failed else 0


def env_default(name, default):
    return os.environ.get(name) or default


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=int, default=int(env_default("BENCH_TRIGGERS_SECONDS", "10")))
    ap.add_argument("--clients", default=env_default("BENCH_TRIGGERS_CLIENTS", "1,8,32"))
    ap.add_argument("--sources", default=env_default("BENCH_TRIGGERS_SOURCES", "none,notify,logical"))
    ap.add_argument("--rows", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=int(env_default("BENCH_TRIGGERS_REPEAT", "1")),
                    help="measure each point this many times, interleaved with the other sources; the table "
                         "shows the median (a shared machine drifts)")
    ap.add_argument("--synchronous-commit", choices=("on", "off"), default=env_default("BENCH_TRIGGERS_SYNC", "on"),
                    help="synchronous_commit of pgbench's sessions (default on, PostgreSQL's default)")
    ap.add_argument("--database", help="a superuser conninfo/URI of an existing server (default: a throwaway "
                                       "cluster with default durability)")
    ap.add_argument("--json", default=str(REPO / "build" / "bench-triggers.json"))
    args = ap.parse_args()

    clients = list(dict.fromkeys(int(c) for c in args.clients.split(",") if c.strip()))
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    for s in sources:
        if s not in SOURCES:
            sys.exit(f"unknown hint source {s!r} (known: {', '.join(SOURCES)})")
    if args.seconds < 1 or not clients or min(clients) < 1:
        sys.exit("--seconds and every --clients value must be >= 1")

    bindir = pg_bindir()
    cluster = None
    t_start = time.monotonic()
    try:
        if args.database:
            admin = args.database
        else:
            cluster = Cluster(bindir)
            cluster.start()
            admin = cluster.conninfo("postgres")
        conn = psycopg2.connect(admin)
        conn.autocommit = True
        exec_sql(conn, f"DROP DATABASE IF EXISTS {BENCH_DB}")
        exec_sql(conn, f"CREATE DATABASE {BENCH_DB}")
        settings = {}
        with conn.cursor() as cur:
            for k in ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers"):
                cur.execute(f"SHOW {k}")
                settings[k] = cur.fetchone()[0]
        conn.close()

        target = dsn_with_db(admin, BENCH_DB)
        bconn = psycopg2.connect(target)
        bconn.autocommit = True
        exec_sql(bconn, (REPO / "db" / "schema.sql").read_text())
        exec_sql(bconn, f"INSERT INTO operation_runs (id, workspace_id, tenant_id, type, status, context, "
                        f"summary_counts) SELECT g, 1, 1 + g % 50, 'inventory.sync', 'running', "
                        f"'{{\"source\": \"bench\"}}', '{{\"total\": 100, \"processed\": 0}}' "
                        f"FROM generate_series(1, {args.rows}) g")
        for text in migrations_sql():
            exec_sql(bconn, text)
        script_dir = Path(tempfile.mkdtemp(prefix="pollgate-bt-script-"))
        script = script_dir / "update_run.sql"
        script.write_text(PGBENCH_SCRIPT)

        results = {}
        print(f"bench-triggers: {args.seconds}s per point, clients {clients}, sources {sources}, "
              f"{args.rows} rows; PostgreSQL {settings['server_version']} fsync={settings['fsync']} "
              f"synchronous_commit={args.synchronous_commit} (pgbench sessions)", flush=True)
        for c in clients:
            for rep in range(max(1, args.repeat)):
                for s in sources:
                    src = SOURCES[s]
                    src["setup"](bconn)
                    exec_sql(bconn, "VACUUM operation_runs")
                    exec_sql(bconn, "CHECKPOINT")
                    listener = Listener(target) if src["listen"] else None
                    if listener:
                        listener.start()
                    gw = LogicalGateway(target) if src.get("gateway") else None
                    decoded = None
                    try:
                        tps, failed = run_pgbench(bindir, target, script, c, args.seconds, args.rows,
                                                  args.synchronous_commit)
                    finally:
                        if listener:
                            listener.stop()
                        if gw:
                            # Let it catch up with the stream (bounded), then count what it decoded.
                            t_end = time.monotonic() + 10
                            while time.monotonic() < t_end and (gw.metric("pollgate_logical_lag_bytes") or 0) > 0:
                                time.sleep(0.1)
                            decoded = gw.stop()
                        src["teardown"](bconn)
                    point = results.setdefault(str(c), {}).setdefault(s, {"tps_runs": [], "failed": 0})
                    point["tps_runs"].append(round(tps, 1))
                    point["tps"] = round(statistics.median(point["tps_runs"]), 1)
                    point["failed"] += failed
                    if listener:
                        point["notifications_received"] = point.get("notifications_received", 0) + listener.received
                    if gw:
                        point["transactions_decoded"] = point.get("transactions_decoded", 0) + decoded
                    print(f"  clients={c:<3} {s:<8} {tps:10.1f} tps", flush=True)
        bconn.close()
        shutil.rmtree(script_dir, ignore_errors=True)
        if args.database:
            conn = psycopg2.connect(admin)
            conn.autocommit = True
            exec_sql(conn, f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
            conn.close()
    finally:
        if cluster:
            cluster.destroy()

    # The table: one column per source, then each source's ratio to `none`.
    others = [s for s in sources if s != "none"]
    head = f"{'clients':>7}  " + "".join(f"{s + ' tps':>12}" for s in sources)
    if "none" in sources:
        head += "".join(f"{s + '/none':>14}" for s in others)
    print()
    print(head)
    for c in clients:
        row = results[str(c)]
        line = f"{c:>7}  " + "".join(f"{row[s]['tps']:>12.0f}" for s in sources)
        if "none" in sources:
            for s in others:
                ratio = row[s]["tps"] / row["none"]["tps"] if row["none"]["tps"] else float("nan")
                row[s]["ratio_to_none"] = round(ratio, 3)
                line += f"{ratio:>14.2f}"
        print(line)
    out = {
        "what": "pgbench: one UPDATE of a random operation_runs row (summary_counts) per transaction",
        "seconds_per_point": args.seconds,
        "rows": args.rows,
        "repeat": args.repeat,
        "clients": clients,
        "sources": {s: SOURCES[s]["what"] for s in sources},
        "server": settings,
        "pgbench_synchronous_commit": args.synchronous_commit,
        "cluster": "existing (--database)" if args.database else "throwaway, default durability",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "results": results,
        "elapsed_s": round(time.monotonic() - t_start, 1),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.json} ({out['elapsed_s']} s)")


if __name__ == "__main__":
    main()
