#!/usr/bin/python3
"""tests/browser/harness.py — the stage for the browser suite: a throwaway PostgreSQL cluster, the real
gateway and a static server for web/, then a command (the Node driver), then everything torn down.

    tests/browser/harness.py [--keep] -- node --test e2e/

What it starts (all on free ports of 127.0.0.1, in a temporary directory):
  * PostgreSQL (initdb as the `postgres` user when run as root: initdb refuses root), database `pollgate`
    with db/schema.sql, db/migrations/*.sql, db/demo.sql (the demo tokens: demo-alice, ...), db/grant.sql's
    SELECT-only role and a LOGIN user in it that the gateway connects as, as the integration suite does;
  * the gateway, $POLLGATE_BIN or ./pollgate, with cors_origins set to the static server's origin;
  * `python3 -m http.server` serving web/ (the library and the demo page).

The command gets, in its environment: PGHOST, PGPORT, PGDATABASE, PGUSER (psql/libpq reach the database
as the superuser), PSQL (psql's path), GW_URL, WEB_URL, GW_LOG, ARTIFACTS (build/browser/, for
screenshots). Its exit code is the harness's, unless the gateway then fails to exit 0 on SIGTERM or its
log holds a sanitizer report: that fails the run too. On failure the gateway's log tail is printed.
Standard library only.
"""

import argparse
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
GATEWAY_DB_ROLE = "pollgate_gateway_browser"
GATEWAY_DB_USER = "pollgate_gw_browser"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def say(msg):
    print(f"harness: {msg}", flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bindir():
    env = os.environ.get("POLLGATE_PG_BINDIR")
    if env:
        return Path(env)
    found = sorted((int(Path(d).parent.name), d) for d in glob.glob("/usr/lib/postgresql/*/bin")
                   if Path(d).parent.name.isdigit() and os.path.exists(os.path.join(d, "initdb")))
    if found:
        return Path(found[-1][1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    sys.exit("harness: PostgreSQL server programs not found (scripts/deps.sh installs postgresql-15)")


def wait_http(url, timeout, proc=None, what="server"):
    deadline = time.monotonic() + timeout
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited {proc.returncode} during start-up")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not answering {url} within {timeout} s")
        time.sleep(0.05)


class Cluster:
    def __init__(self, base):
        self.bindir = pg_bindir()
        self.as_root = os.geteuid() == 0
        self.base = base
        self.datadir = base / "pg"
        self.logfile = base / "postgres.log"
        self.port = free_port()

    def owner(self, argv):
        return ["runuser", "-u", "postgres", "--"] + argv if self.as_root else argv

    def run(self, argv, **kw):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           stdin=subprocess.DEVNULL, **kw)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, argv))} exited {p.returncode}:\n{p.stdout}")
        return p.stdout

    def start(self):
        if self.as_root:
            shutil.chown(self.base, "postgres", "postgres")
        self.run(self.owner([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres", "-A", "trust",
                             "-E", "UTF8", "--no-locale", "--no-sync"]))
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# tests/browser/harness.py\n"
                    f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.base}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "log_line_prefix = '%m [%p] %a '\nlog_min_messages = warning\n")
        self.run(self.owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile), "-w",
                             "-t", "60", "start"]))

    def psql(self, *args, db="pollgate"):
        return self.run([str(self.bindir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p",
                         str(self.port), "-U", "postgres", "-d", db, *args],
                        env={**os.environ, "PGOPTIONS": "-c client_min_messages=warning"})

    def setup(self):
        self.psql("-c", "CREATE DATABASE pollgate", db="postgres")
        self.psql("-f", str(REPO / "db" / "schema.sql"))
        for m in sorted((REPO / "db" / "migrations").glob("*.sql")):
            self.psql("-f", str(m))
        self.psql("-f", str(REPO / "db" / "demo.sql"))
        self.psql("-v", f"role={GATEWAY_DB_ROLE}", "-f", str(REPO / "db" / "grant.sql"))
        self.psql("-c", f'CREATE ROLE "{GATEWAY_DB_USER}" LOGIN IN ROLE "{GATEWAY_DB_ROLE}"', db="postgres")

    def stop(self):
        if (self.datadir / "PG_VERSION").exists():
            subprocess.run(self.owner([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w",
                                       "stop"]), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, cluster)")
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = ap.parse_args()
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not cmd:
        ap.error("no command given (harness.py -- node --test e2e/)")

    binary = Path(os.environ.get("POLLGATE_BIN") or REPO / "pollgate")
    if not binary.exists():
        sys.exit(f"harness: gateway binary {binary} not found: build it (make) or set POLLGATE_BIN")
    artifacts = REPO / "build" / "browser"
    artifacts.mkdir(parents=True, exist_ok=True)

    base = Path(tempfile.mkdtemp(prefix="pollgate-browser-"))
    os.chmod(base, 0o755)
    cluster = Cluster(base)
    gw = web = None
    gw_log = base / "gateway.log"
    rc = 1
    try:
        cluster.start()
        cluster.setup()
        say(f"PostgreSQL on 127.0.0.1:{cluster.port}")

        web_port = free_port()
        web_url = f"http://127.0.0.1:{web_port}"
        web = subprocess.Popen([sys.executable, "-m", "http.server", str(web_port), "--bind", "127.0.0.1",
                                "--directory", str(REPO / "web")], stdin=subprocess.DEVNULL,
                               stdout=open(base / "web.log", "wb"), stderr=subprocess.STDOUT, start_new_session=True)

        gw_port = free_port()
        gw_url = f"http://127.0.0.1:{gw_port}"
        conf = base / "gateway.conf"
        conf.write_text("# written by tests/browser/harness.py\n"
                        f"listen = 127.0.0.1:{gw_port}\n"
                        f"database = postgresql://{GATEWAY_DB_USER}@127.0.0.1:{cluster.port}/pollgate\n"
                        f"cors_origins = {web_url}\n"
                        "log_level = info\n")
        env = dict(os.environ)
        env["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:halt_on_error=1" + (
            ":" + env["ASAN_OPTIONS"] if env.get("ASAN_OPTIONS") else "")
        env["UBSAN_OPTIONS"] = "halt_on_error=1:print_stacktrace=1" + (
            ":" + env["UBSAN_OPTIONS"] if env.get("UBSAN_OPTIONS") else "")
        gw = subprocess.Popen([str(binary), "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=open(gw_log, "wb"),
                              stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_http(gw_url + "/readyz", 20, gw, "the gateway")
        wait_http(web_url + "/pollgate.js", 10, web, "the static server")
        say(f"gateway {binary} on {gw_url}, web/ on {web_url}")

        child_env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(cluster.port), PGDATABASE="pollgate",
                         PGUSER="postgres", PSQL=str(cluster.bindir / "psql"), GW_URL=gw_url, WEB_URL=web_url,
                         GW_LOG=str(gw_log), ARTIFACTS=str(artifacts))
        rc = subprocess.run(cmd, env=child_env, cwd=Path(__file__).resolve().parent).returncode
    except (RuntimeError, OSError) as e:
        say(f"error: {e}")
        rc = 1
    finally:
        if gw is not None:
            if gw.poll() is None:
                gw.send_signal(signal.SIGTERM)
                try:
                    gw.wait(15)
                except subprocess.TimeoutExpired:
                    gw.kill()
                    gw.wait()
                    say("the gateway did not exit within 15 s of SIGTERM")
                    rc = rc or 1
            log = gw_log.read_text(errors="replace") if gw_log.exists() else ""
            reports = [l for l in log.splitlines() if any(m in l for m in SANITIZER_MARKERS)]
            if gw.returncode != 0 or reports:
                say(f"the gateway exited {gw.returncode}" + (f"; sanitizer: {reports[0]}" if reports else ""))
                rc = rc or 1
            if rc != 0:
                say("gateway log tail:\n" + "\n".join(log.splitlines()[-40:]))
        if web is not None and web.poll() is None:
            web.terminate()
            try:
                web.wait(5)
            except subprocess.TimeoutExpired:
                web.kill()
        cluster.stop()
        if args.keep:
            say(f"kept {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
