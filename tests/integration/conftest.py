"""Fixtures for pollgate's integration tests: a real PostgreSQL cluster and the real binary.

    pg       (session)  a throwaway cluster made with initdb in a temporary directory, on a free port of
                        127.0.0.1, with database `pollgate` holding db/schema.sql + db/migrations/*.sql and
                        pg_stat_statements, then db/grant.sql (role GATEWAY_DB_ROLE) and the LOGIN user
                        GATEWAY_DB_USER, a member of that role and nothing else. Removed at the end of the
                        session.
    db       (function) every schema table emptied (identities restarted), triggers enabled and the
                        migrations re-applied, pg_stat_statements reset; an autocommit psycopg2 connection.
    gateway  (function) a factory: gateway(**conf) writes a config file, starts $POLLGATE_BIN (default
                        ./pollgate) with it, waits for /readyz, and returns a Gateway. It connects to the
                        database as GATEWAY_DB_USER (SELECT only) unless the test passes its own `database`.
                        hint_source defaults to $POLLGATE_HINT_SOURCE (notify when unset: the runner
                        runs the hint-dependent files a second time with logical); with logical the
                        gateway connects as GATEWAY_DB_LOGICAL_USER (the same role plus REPLICATION).
                        Every gateway still running at teardown is stopped with SIGTERM, and must exit 0
                        with no sanitizer report in its log. A failing test gets the gateway's log tail in
                        its report.
    notes    (function) notes("text"): a line for the "pollgate notes" section of pytest's terminal summary
                        (matrix sizes, timing medians), shown even with -q.

As root, PostgreSQL's own programs run as the `postgres` user (initdb refuses root); psql and the tests
connect over TCP with trust authentication as the database user `postgres`, the gateways as
GATEWAY_DB_USER (pg.gateway_uri), so the whole suite proves the gateway needs nothing beyond db/grant.sql.
Row, HTTP and bulk-request helpers are in helpers.py beside this file (`from helpers import ...`).
"""

import contextlib
import glob
import os
import re
import resource
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2
import psycopg2.extensions
import pytest

import helpers
from helpers import (DEMO_SQL, GATEWAY_DB_LOGICAL_USER, GATEWAY_DB_ROLE, GATEWAY_DB_USER, GRANT_SQL,  # noqa: F401
                     REPO, SCHEMA_SQL, SCHEMA_TABLES, free_port, hint_source, migrations, wait_for)


SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _raise_nofile_limit():
    """Hundreds of held requests need as many descriptors: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 1 << 20, hard))
        except (ValueError, OSError):
            pass


_raise_nofile_limit()


def _tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


def _read(path):
    try:
        return Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return ""


# --------------------------------------------------------------------------------------------------
# PostgreSQL


def pg_bindir():
    """Where initdb/pg_ctl/postgres live: $POLLGATE_PG_BINDIR, else the newest
    /usr/lib/postgresql/N/bin (Debian), else wherever initdb is on PATH."""
    env = os.environ.get("POLLGATE_PG_BINDIR")
    if env:
        return Path(env)
    found = []
    for d in glob.glob("/usr/lib/postgresql/*/bin"):
        ver = Path(d).parent.name
        if os.path.exists(os.path.join(d, "initdb")) and ver.isdigit():
            found.append((int(ver), d))
    if found:
        return Path(max(found)[1])
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).parent
    raise RuntimeError("PostgreSQL server programs not found (install postgresql-15: scripts/deps.sh)")


class PgCluster:
    """One throwaway PostgreSQL cluster. Attributes: host, port, dbname, user, datadir, basedir,
    sockdir, logfile, bindir; properties dsn (libpq conninfo) and uri."""

    def __init__(self):
        self.bindir = pg_bindir()
        parent = os.environ.get("POLLGATE_TEST_TMPDIR") or tempfile.gettempdir()
        self.basedir = Path(tempfile.mkdtemp(prefix="pollgate-pg-", dir=parent))
        self.datadir = self.basedir / "data"
        self.logfile = self.basedir / "postgres.log"
        # A unix socket path is limited to ~107 bytes: fall back to a short directory under /tmp.
        self.sockdir = self.basedir
        self._own_sockdir = False
        if len(str(self.sockdir)) + len("/.s.PGSQL.65535") > 100:
            self.sockdir = Path(tempfile.mkdtemp(prefix="pgs-", dir="/tmp"))
            self._own_sockdir = True
        self.host = "127.0.0.1"
        self.port = None
        self.dbname = "pollgate"
        self.user = "postgres"
        self.gateway_user = GATEWAY_DB_USER  # created by setup_database(): SELECT only, via GATEWAY_DB_ROLE
        self.as_postgres = os.geteuid() == 0
        self._conns = []

    # -- plumbing

    def _prog(self, name):
        return str(self.bindir / name)

    def _as_owner(self, argv):
        """argv run as the cluster's owner: `postgres` when we are root, else ourselves."""
        if self.as_postgres:
            return ["runuser", "-u", "postgres", "--"] + argv
        return argv

    def _run(self, argv, check=True, timeout=120):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        if check and p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}:\n{p.stdout}{p.stderr}\n"
                               f"--- postgres log tail ---\n{_tail(_read(self.logfile), 30)}")
        return p

    def _chown(self, path):
        if self.as_postgres:
            shutil.chown(path, user="postgres", group="postgres")

    # -- life cycle

    def init(self):
        self._chown(self.basedir)
        if self._own_sockdir:
            self._chown(self.sockdir)
        self._run(self._as_owner([self._prog("initdb"), "-D", str(self.datadir), "-U", self.user, "-A", "trust",
                                  "-E", "UTF8", "--no-locale", "--no-sync"]))
        with open(self.datadir / "postgresql.conf", "a") as f:
            f.write("\n# pollgate tests\ninclude = 'pollgate_test.conf'\n")

    def _write_settings(self):
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.sockdir}'",
            "shared_preload_libraries": "'pg_stat_statements'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "log_line_prefix": "'%m [%p] %a '",
            "log_min_messages": "warning",
            # hint_source = logical: each gateway takes one walsender and one temporary slot.
            "wal_level": "logical",
            "max_wal_senders": "40",
            "max_replication_slots": "40",
        }
        path = self.datadir / "pollgate_test.conf"
        path.write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        self._chown(path)

    def start(self):
        """Start the cluster (pg_ctl -w). The first start picks a free port, retrying on a clash."""
        attempts = 1 if self.port else 5
        for i in range(attempts):
            if attempts > 1:
                self.port = free_port()
            self._write_settings()
            p = self._run(self._as_owner([self._prog("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                                          "-w", "-t", "60", "start"]), check=False)
            if p.returncode == 0:
                return
            if i == attempts - 1:
                raise RuntimeError(f"pg_ctl start failed:\n{p.stdout}{p.stderr}\n--- postgres log tail ---\n"
                                   f"{_tail(_read(self.logfile), 30)}")

    def stop(self, mode="fast"):
        """pg_ctl stop -m MODE -w (fast: disconnect clients; immediate: crash-stop). The connections
        pg.connect() handed out are closed first."""
        self.close_connections()
        self._run(self._as_owner([self._prog("pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60",
                                  "stop"]))

    def restart(self):
        """pg_ctl restart -m fast -w: every session (the gateway's too) is cut; same port after."""
        self.close_connections()
        self._run(self._as_owner([self._prog("pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
                                  "-m", "fast", "-w", "-t", "60", "restart"]))

    def is_running(self):
        p = self._run(self._as_owner([self._prog("pg_ctl"), "-D", str(self.datadir), "status"]), check=False)
        return p.returncode == 0

    def ensure_running(self):
        if not self.is_running():
            self.start()

    def destroy(self):
        self.close_connections()
        if self.datadir.exists() and self.is_running():
            self._run(self._as_owner([self._prog("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w",
                                      "stop"]), check=False)
        shutil.rmtree(self.basedir, ignore_errors=True)
        if self._own_sockdir:
            shutil.rmtree(self.sockdir, ignore_errors=True)

    # -- access

    @property
    def dsn(self):
        """libpq conninfo of the test database."""
        return f"host={self.host} port={self.port} dbname={self.dbname} user={self.user}"

    @property
    def uri(self):
        """The same as a URI (no spaces: safe as an unquoted config value)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def gateway_uri(self):
        """The URI the `gateway` fixture gives the gateway by default: the same database as the
        SELECT-only user gateway_user (trust authentication, like every user of this cluster)."""
        return f"postgresql://{self.gateway_user}@{self.host}:{self.port}/{self.dbname}"

    @property
    def gateway_logical_uri(self):
        """gateway_uri for hint_source = logical: GATEWAY_DB_LOGICAL_USER, the same role plus REPLICATION."""
        return f"postgresql://{GATEWAY_DB_LOGICAL_USER}@{self.host}:{self.port}/{self.dbname}"

    def connect(self, dbname=None, autocommit=True, user=None, **kw):
        """A psycopg2 connection (autocommit by default), as `user` (default the superuser `postgres`;
        e.g. gateway_user to see what the gateway may do). The `db` fixture closes every connection
        made this way at the end of the test."""
        kw.setdefault("application_name", "pollgate-tests")
        kw.setdefault("connect_timeout", 10)
        conn = psycopg2.connect(host=self.host, port=self.port, dbname=dbname or self.dbname, user=user or self.user,
                                **kw)
        conn.autocommit = autocommit
        self._conns.append(conn)
        return conn

    def close_connections(self):
        for c in self._conns:
            try:
                c.close()
            except Exception:
                pass
        self._conns = []

    def _psql_argv(self, dbname):
        return [self._prog("psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", self.host, "-p",
                str(self.port), "-U", self.user, "-d", dbname or self.dbname]

    def psql(self, sql, dbname=None):
        """Run SQL with psql; returns its unaligned, tuples-only output. RuntimeError on any error."""
        return self._run(self._psql_argv(dbname) + ["-c", sql]).stdout

    def psql_file(self, path, dbname=None, variables=None):
        """Apply one SQL file with psql (stops at the first error); `variables` {name: value} are
        passed as psql -v name=value."""
        argv = self._psql_argv(dbname)
        for k, v in (variables or {}).items():
            argv += ["-v", f"{k}={v}"]
        return self._run(argv + ["-f", str(path)]).stdout

    def setup_database(self):
        self.psql(f"CREATE DATABASE {self.dbname}", dbname="postgres")
        self.psql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        self.psql_file(SCHEMA_SQL)
        for m in migrations():
            self.psql_file(m)
        # The gateway's account: db/grant.sql's SELECT-only role, and a LOGIN user that only belongs to it.
        self.psql_file(GRANT_SQL, variables={"role": GATEWAY_DB_ROLE})
        self.psql(f'CREATE ROLE "{self.gateway_user}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE '
                  f'IN ROLE "{GATEWAY_DB_ROLE}"', dbname="postgres")
        # hint_source = logical: REPLICATION is an attribute of the login role (never inherited), so the
        # logical gateways log in as a user of the same role that has it (what grant.sql -v logical=1
        # gives a role that logs in itself).
        self.psql(f'CREATE ROLE "{GATEWAY_DB_LOGICAL_USER}" LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE '
                  f'IN ROLE "{GATEWAY_DB_ROLE}"', dbname="postgres")

    def log(self):
        """The server log so far."""
        return _read(self.logfile)

    @contextlib.contextmanager
    def _temp_conn(self, dbname=None):
        c = self.connect(dbname=dbname)
        try:
            yield c
        finally:
            c.close()
            self._conns.remove(c)

    def backends(self, application_name=None):
        """pid list of the sessions with that application_name (all other client backends when None)."""
        with self._temp_conn("postgres") as c, c.cursor() as cur:
            if application_name is None:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' "
                            "AND pid <> pg_backend_pid()")
            else:
                cur.execute("SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,))
            return [r[0] for r in cur.fetchall()]

    def terminate(self, application_name):
        """pg_terminate_backend() every session with that application_name (e.g. 'pollgate-listen');
        returns how many were terminated."""
        with self._temp_conn("postgres") as c, c.cursor() as cur:
            cur.execute("SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                        "WHERE application_name = %s AND pid <> pg_backend_pid()", (application_name,))
            return cur.fetchone()[0]

    def statements(self):
        """pg_stat_statements of the test database since the last reset: list of dicts with query,
        calls, rows, most called first (the `db` fixture resets it before every test)."""
        with self._temp_conn() as c, c.cursor() as cur:
            cur.execute("SELECT s.query, s.calls, s.rows FROM pg_stat_statements s "
                        "JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s ORDER BY s.calls DESC",
                        (self.dbname,))
            return [{"query": q, "calls": n, "rows": r} for q, n, r in cur.fetchall()]


@pytest.fixture(scope="session")
def pg():
    """The session's PostgreSQL cluster (see PgCluster)."""
    cluster = PgCluster()
    try:
        cluster.init()
        cluster.start()
        cluster.setup_database()
    except BaseException:
        cluster.destroy()
        raise
    yield cluster
    cluster.destroy()


def reset_database(conn):
    """Empty every schema table, restart identities, enable every trigger, re-apply the (idempotent)
    migrations in case a test dropped a trigger, and reset pg_stat_statements."""
    with conn.cursor() as cur:
        cur.execute("SET lock_timeout = '10s'")
        cur.execute("TRUNCATE " + ", ".join(SCHEMA_TABLES) + " RESTART IDENTITY CASCADE")
        for t in SCHEMA_TABLES:
            cur.execute(f"ALTER TABLE {t} ENABLE TRIGGER ALL")
        for m in migrations():
            cur.execute(m.read_text())
        cur.execute("RESET lock_timeout")
        cur.execute("SELECT pg_stat_statements_reset()")


@pytest.fixture
def db(pg):
    """An autocommit psycopg2 connection to a freshly emptied `pollgate` database."""
    pg.ensure_running()
    conn = pg.connect()
    reset_database(conn)
    yield conn
    pg.close_connections()


# --------------------------------------------------------------------------------------------------
# The gateway


def _conf_text(conf):
    lines = ["# written by tests/integration/conftest.py"]
    for k, v in conf.items():
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        lines.append(f"{k} = {v}")
    return "\n".join(lines) + "\n"


def _sanitizer_env(extra=None):
    """The child's environment: ours, plus `extra` (a None value removes a variable), plus the
    sanitizer options (anything the caller set for them is appended, so it wins)."""
    env = dict(os.environ)
    for k, v in (extra or {}).items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    ours = {
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:halt_on_error=1:print_stacktrace=1",
        "UBSAN_OPTIONS": "halt_on_error=1:abort_on_error=0:print_stacktrace=1",
    }
    for k, v in ours.items():
        env[k] = v + (":" + env[k] if env.get(k) else "")  # caller's options come last and win
    return env


_METRIC_RE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text format -> ({'name{labels}': value}, [(name, {labels}, value)])."""
    flat, series = {}, []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_RE.match(line)
        if not m:
            continue
        name, braces, labels_text, value = m.groups()
        try:
            v = float(value)
        except ValueError:
            continue
        labels = dict(_LABEL_RE.findall(labels_text or ""))
        flat[name + (braces or "")] = v
        series.append((name, labels, v))
    return flat, series


class Metrics(dict):
    """/metrics as {'name{labels}': value} (the key is the text as served), plus value(name, **labels):
    the sum over every series of `name` whose labels include the given ones (0.0 when none)."""

    def __init__(self, text):
        flat, series = parse_metrics(text)
        super().__init__(flat)
        self.series = series
        self.text = text

    def value(self, name, **labels):
        return sum(v for n, lab, v in self.series
                   if n == name and all(lab.get(k) == str(want) for k, want in labels.items()))


class Gateway:
    """One pollgate process started by the `gateway` fixture.

    url, host, port, proc, conf (dict), conf_path, log_path, name."""

    def __init__(self, binary, workdir, name, conf, env=None, args=()):
        self.binary = str(binary)
        self.name = name
        self.conf = dict(conf)
        self.conf_path = Path(workdir) / f"{name}.conf"
        self.log_path = Path(workdir) / f"{name}.log"
        self.env = _sanitizer_env(env)
        self.args = list(args)
        self.proc = None
        self.returncode = None
        self._checked = False
        self._set_address()

    def _set_address(self):
        listen = str(self.conf.get("listen") or "127.0.0.1:8080")
        host, _, port = listen.rpartition(":")
        host = host.strip("[]")
        if host in ("0.0.0.0", "", "*"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        self.host = host
        self.port = int(port)
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{self.port}"

    # -- process

    def write_conf(self):
        self.conf_path.write_text(_conf_text(self.conf))

    def start(self, wait_ready=True, timeout=20.0):
        self.write_conf()
        logf = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf_path)] + self.args, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        finally:
            logf.close()
        if wait_ready is None:
            return self
        path = "/readyz" if wait_ready else "/healthz"
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.returncode = rc
                self._checked = True
                raise AssertionError(f"gateway {self.name} exited {rc} during start-up; log tail:\n{self.log_tail()}")
            try:
                r = helpers.http("GET", self.url + path, timeout=1.0)
                if r.status == 200:
                    return self
                last = f"{path} answered {r.status}"
            except OSError as e:
                last = f"{path}: {e!r}"
            if time.monotonic() >= deadline:
                self.kill()
                raise AssertionError(f"gateway {self.name} not ready within {timeout}s ({last}); "
                                     f"log tail:\n{self.log_tail()}")
            time.sleep(0.02)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self):
        return self.proc.pid

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def sanitizer_reports(self):
        """Lines of the log that carry an ASan/LSan/UBSan report."""
        return [l for l in self.log().splitlines() if any(m in l for m in SANITIZER_MARKERS)]

    def stop(self, timeout=10.0, expect_rc=0, sig=signal.SIGTERM):
        """Send SIGTERM (or `sig`), wait up to `timeout` s and assert the exit code is `expect_rc` and
        the log has no sanitizer report (a leak under ASan makes the exit code non-zero). Returns the
        exit code. Calling it on a process that already exited just checks it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._checked = True
                raise AssertionError(f"gateway {self.name} did not exit within {timeout}s of {sig.name}; "
                                     f"log tail:\n{self.log_tail()}")
        self.returncode = self.proc.returncode
        self._checked = True
        reports = self.sanitizer_reports()
        if reports or (expect_rc is not None and self.returncode != expect_rc):
            raise AssertionError(f"gateway {self.name} exited {self.returncode} (expected {expect_rc})"
                                 f"{'; sanitizer: ' + reports[0] if reports else ''}; log tail:\n{self.log_tail()}")
        return self.returncode

    def kill(self):
        """SIGKILL, no checks (for tests about crashes, and failed start-ups)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc is not None:
            self.returncode = self.proc.returncode
        self._checked = True

    def reload(self, **conf):
        """Merge `conf` into the config (a None value removes the key), rewrite the file and SIGHUP.
        It does not wait: observe the effect (a log line, a metric, behaviour) with wait_for."""
        for k, v in conf.items():
            if v is None:
                self.conf.pop(k, None)
            else:
                self.conf[k] = v
        self.write_conf()
        self.proc.send_signal(signal.SIGHUP)

    def reload_text(self, text):
        """Write `text` verbatim as the config file (e.g. a broken one) and SIGHUP."""
        self.conf_path.write_text(text)
        self.proc.send_signal(signal.SIGHUP)

    # -- observation

    def log(self):
        return _read(self.log_path)

    def log_tail(self, lines=60):
        return _tail(self.log(), lines)

    def wait_log(self, pattern, timeout=10.0):
        """Wait until the log matches the regex `pattern`; returns the match."""
        rx = re.compile(pattern)
        return wait_for(lambda: rx.search(self.log()), timeout=timeout, what=f"log line /{pattern}/")

    def metrics(self):
        """GET /metrics parsed into a Metrics dict ('name{labels}' -> float)."""
        r = helpers.http("GET", self.url + "/metrics", timeout=10.0)
        assert r.status == 200, f"/metrics answered {r.status}: {r.body[:200]!r}"
        return Metrics(r.body.decode())

    def get(self, path, token=None, etag=None, headers=None, timeout=70.0):
        """GET url+path with an optional bearer token and If-None-Match (quoted if not already)."""
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        if etag is not None:
            h["If-None-Match"] = etag if etag.startswith(('"', "W/", "*")) else f'"{etag}"'
        return helpers.http("GET", self.url + path, headers=h, timeout=timeout)

    def __repr__(self):
        return f"<Gateway {self.name} {self.url} pid={self.proc.pid if self.proc else None}>"


def gateway_binary():
    return helpers.pollgate_bin()


_GATEWAYS = pytest.StashKey()

# The `workers` a gateway gets unless the test says: 1, the single process, because many tests read one
# process's own state (exact /metrics deltas in the middle of a wake, the pid they signal or kill, the
# number of database sessions). tests/integration/test_workers.py covers workers > 1 explicitly;
# POLLGATE_TEST_WORKERS=auto (or N) runs any other file with workers.
DEFAULT_WORKERS = os.environ.get("POLLGATE_TEST_WORKERS", "1")


@pytest.fixture
def gateway(pg, tmp_path, request):
    """Factory: gateway(wait_ready=True, env=None, args=(), **conf) -> Gateway.

    conf keys become `key = value` lines, values written as given (str(); True/False as true/false);
    defaults listen=127.0.0.1:<free port>, database=pg.gateway_uri (the SELECT-only user; pass database=
    to connect otherwise), log_level=debug, workers=1 ($POLLGATE_TEST_WORKERS overrides it); a None value
    leaves the key out. env: extra environment
    variables for the child (None removes one). args: extra command-line arguments after `-c FILE`.
    wait_ready=True waits for /readyz == 200, False only for /healthz, None not at all (up to 20 s; the
    process exiting meanwhile fails at once with its log).
    Request the `db` fixture too, for a clean database."""
    binary = gateway_binary()
    if not binary.exists():
        pytest.fail(f"gateway binary {binary} not found: build it (make) or set POLLGATE_BIN")
    started = []
    request.node.stash[_GATEWAYS] = started

    def start(wait_ready=True, env=None, args=(), **conf):
        full = {"listen": f"127.0.0.1:{free_port()}", "database": pg.gateway_uri, "log_level": "debug",
                "workers": DEFAULT_WORKERS, "hint_source": hint_source()}
        full.update(conf)
        if full.get("hint_source") == "logical" and "database" not in conf:
            full["database"] = pg.gateway_logical_uri
        gw = Gateway(binary, tmp_path, f"gateway{len(started) + 1}", full, env=env, args=args)
        started.append(gw)
        return gw.start(wait_ready=wait_ready)

    yield start

    problems = []
    for gw in started:
        if gw.proc is None or gw._checked:
            continue
        try:
            gw.stop()
        except AssertionError as e:
            problems.append(str(e))
    if problems:
        pytest.fail("\n\n".join(problems), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing test (or setup/teardown) gets each of its gateways' log tail and the server log tail
    as report sections."""
    outcome = yield
    rep = outcome.get_result()
    if not rep.failed:
        return
    for gw in item.stash.get(_GATEWAYS, []):
        rep.sections.append((f"{gw.name} log tail ({gw.log_path})", gw.log_tail(80)))
    cluster = getattr(item, "funcargs", {}).get("pg")
    if isinstance(cluster, PgCluster):
        text = _tail(cluster.log(), 20)  # empty once the session's teardown removed the cluster
        if text:
            rep.sections.append(("postgres log tail", text))


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds")


# Tests about the LISTEN session itself (its backend, its triggers): with POLLGATE_HINT_SOURCE=logical they
# would test nothing or the wrong thing, and test_logical.py holds their logical counterparts.
NOTIFY_ONLY = {
    "test_with_triggers_disabled_a_change_still_arrives_within_the_interval",
    "test_listen_backend_killed_changes_still_arrive",
    "test_change_while_listen_is_down_is_delivered_after_reconnect",
    # They lose hints by killing the LISTEN backend; test_logical.py kills the walsender instead.
    "test_token_revoked_while_listen_is_down_gets_401_not_the_new_state",
    "test_reconnect_looks_every_held_token_up_again",
}


def pytest_collection_modifyitems(config, items):
    if hint_source() != "logical":
        return
    skip = pytest.mark.skip(reason="LISTEN-specific (POLLGATE_HINT_SOURCE=logical); see test_logical.py")
    for item in items:
        if item.originalname in NOTIFY_ONLY:
            item.add_marker(skip)


# --------------------------------------------------------------------------------------------------
# Notes: numbers a test measured (matrix size, timing medians), printed at the end of the run.

_NOTES = []


@pytest.fixture
def notes(request):
    """notes(text): record one line, printed in the "pollgate notes" section of the terminal summary
    (and as a `note` user property in JUnit XML), prefixed with the test's name."""
    def add(text):
        _NOTES.append(f"{request.node.name}: {text}")
        request.node.user_properties.append(("note", text))
    return add


def pytest_terminal_summary(terminalreporter):
    if _NOTES:
        terminalreporter.section("pollgate notes")
        for line in _NOTES:
            terminalreporter.write_line(line)
