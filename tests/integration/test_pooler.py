"""The LISTEN session refuses a connection pooler in between (issue 4).

Through pgbouncer in transaction pooling, a LISTEN runs on whichever server session the pooler picked
for that statement, and notifications are lost as soon as the session moves on. The gateway notices at
start-up (the backend pid the connection reported is the pooler's, not pg_backend_pid()) and stops with
a message that says what to fix, instead of serving long-polls that would only be woken by the safety
net. Real pgbouncer (Debian's package), as a child process of the test.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from helpers import GATEWAY_DB_USER, free_port, wait_for

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@pytest.fixture
def pgbouncer(pg):
    """pgbouncer in transaction pooling on a free port of 127.0.0.1, in front of the session cluster's
    `pollgate` database; yields its port. pgbouncer refuses to run as root: as root it runs as postgres."""
    if not os.path.exists(PGBOUNCER):
        if os.environ.get("CI"):
            pytest.fail("pgbouncer is not installed (scripts/deps.sh installs it)")
        pytest.skip("pgbouncer is not installed (scripts/deps.sh installs it)")
    d = tempfile.mkdtemp(prefix="pollgate-pgbouncer-")
    port = free_port()
    users = os.path.join(d, "users.txt")
    with open(users, "w") as f:
        f.write(f'"postgres" ""\n"{GATEWAY_DB_USER}" ""\n')
    ini = os.path.join(d, "pgbouncer.ini")
    with open(ini, "w") as f:
        f.write(f"""[databases]
pollgate = host={pg.host} port={pg.port} dbname=pollgate

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {users}
pool_mode = transaction
default_pool_size = 4
logfile = {d}/pgbouncer.log
pidfile = {d}/pgbouncer.pid
""")
    argv = [PGBOUNCER, ini]
    if os.geteuid() == 0:
        shutil.chown(d, "postgres")
        for name in os.listdir(d):
            shutil.chown(os.path.join(d, name), "postgres")
        argv = ["runuser", "-u", "postgres", "--"] + argv
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

    def accepting():
        import socket
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            assert proc.poll() is None, f"pgbouncer exited: {proc.stdout.read().decode(errors='replace')}"
            return False

    try:
        wait_for(accepting, timeout=15, what="pgbouncer listening")
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def test_a_transaction_pooler_in_front_of_the_database_is_refused_at_start(gateway, db, pgbouncer):
    # The pooler itself works: a plain client gets through it.
    import psycopg2
    conn = psycopg2.connect(host="127.0.0.1", port=pgbouncer, dbname="pollgate", user="postgres")
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
        assert cur.fetchone() == (1,)
    conn.close()

    gw = gateway(database=f"postgresql://{GATEWAY_DB_USER}@127.0.0.1:{pgbouncer}/pollgate", wait_ready=None)
    t0 = time.monotonic()
    try:
        rc = gw.proc.wait(15)
    except subprocess.TimeoutExpired:
        gw.kill()
        pytest.fail(f"the gateway kept running behind pgbouncer; log tail:\n{gw.log_tail()}")
    took = time.monotonic() - t0
    gw.stop(expect_rc=rc)  # checks the log for sanitizer reports
    assert rc != 0
    log = gw.log()
    assert "connection pooler" in log and "straight at PostgreSQL" in log, log[-2000:]
    assert took < 10, f"refused only after {took:.1f}s"


def test_a_direct_connection_passes_the_same_check(gateway, db, pg):
    # The control: the same check on a direct connection lets the gateway become ready and stay up.
    gw = gateway()
    assert gw.get("/readyz").status == 200
    assert "connection pooler" not in gw.log()
