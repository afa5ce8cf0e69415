"""tests/run/test_make_run.py — `make run` starts everything and every way of stopping it stops all of it.

Each test starts `make run` (scripts/run.sh) in its own process group, on free ports (HTTP_PORT, WEB_PORT,
PG_PORT) and a scratch directory (POLLGATE_RUN_DIR; the cluster is created by the first test and reused),
waits for the banner's "run: ready" line, checks what the banner promises (the ports, the slow run 42
still running, where the logs are), records every process the run started — the gateway, the PostgreSQL
postmaster and its backends, the static server, the simulator — and then stops it one way: Ctrl-C (SIGINT
to the process group, as a terminal sends it), SIGTERM to the script alone, SIGTERM to the process group
(make also forwards it to the script), and SIGTERM to the group followed by SIGTERM and SIGINT to the
script once its cleanup has begun (a second forwarded signal, an impatient second Ctrl-C). Then nothing recorded may be left
running and every port must be free.

Run with `make test-run` (part of `make test`); POLLGATE_BIN picks the gateway binary.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def running(pid):
    """True while pid exists and is not a zombie (an exited process nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def port_open(port):
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def rundir():
    d = Path(tempfile.mkdtemp(prefix="pollgate-run-test-"))
    d.chmod(0o755)  # as root, PostgreSQL runs as `postgres`, which must reach the cluster in here
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Run:
    def __init__(self, rundir):
        self.dir = rundir
        self.http, self.web, self.pg = free_port(), free_port(), free_port()
        while len({self.http, self.web, self.pg}) < 3:
            self.web, self.pg = free_port(), free_port()
        env = dict(os.environ, HTTP_PORT=str(self.http), WEB_PORT=str(self.web), PG_PORT=str(self.pg),
                   POLLGATE_RUN_DIR=str(rundir))
        env.setdefault("POLLGATE_BIN", str(REPO / "pollgate"))
        self.proc = subprocess.Popen(["make", "-s", "--no-print-directory", "run"], cwd=REPO, env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, start_new_session=True)
        self.lines = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if line.strip() == "run: ready":
                self.ready.set()
        self.ready.set()

    @property
    def output(self):
        return "".join(self.lines)

    def script_pid(self):
        """The bash running scripts/run.sh (not the `sh -c` make may run it through)."""
        for pid in [self.proc.pid] + children(self.proc.pid) + [g for c in children(self.proc.pid) for g in children(c)]:
            args = cmdline(pid).split()
            if len(args) >= 2 and args[0].endswith("bash") and args[1].endswith("scripts/run.sh"):
                return pid
        return None

    def started(self):
        """Every process the run started: name -> [pids]."""
        found = {"gateway": [], "postgres": [], "static server": [], "simulator": []}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            pid, cmd = int(d.name), cmdline(int(d.name))
            if f"{self.dir}/pollgate.conf" in cmd and "-c" in cmd:
                found["gateway"].append(pid)
            elif "http.server" in cmd and str(self.web) in cmd:
                found["static server"].append(pid)
            elif "simulate.py" in cmd and f"port={self.pg}" in cmd:
                found["simulator"].append(pid)
        pidfile = self.dir / "pg" / "data" / "postmaster.pid"
        if pidfile.exists():
            postmaster = int(pidfile.read_text().split()[0])
            found["postgres"] = [postmaster] + children(postmaster)
        return found

    def kill_leftovers(self):
        for pids in self.started().values():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status, r.read()


@pytest.mark.parametrize("how", ["ctrl-c to the group", "sigterm to the script", "sigterm to the group",
                                 "sigterm to the group, then again during the cleanup"])
def test_make_run_starts_everything_and_stopping_stops_all_of_it(rundir, how):
    run = Run(rundir)
    try:
        assert run.ready.wait(180), "no 'run: ready' within 180 s:\n" + run.output
        assert run.proc.poll() is None, "make run exited before it was stopped:\n" + run.output
        out = run.output
        # The banner: the chosen ports, the slow run and how long it stays, where the logs are.
        assert f"pollgate is up on http://127.0.0.1:{run.http}" in out, out
        assert f"/v1/runs/42?wait=25" in out and "stays running for 20 minutes, until" in out, out
        assert "simulator.log" in out and f"WEB_PORT={run.web}" in out and f"PG_PORT={run.pg}" in out, out
        # The simulator's lines go to its log, not over the banner.
        assert "run 42: running" not in out and "simulator: started" not in out, out
        status, body = get(f"http://127.0.0.1:{run.http}/v1/runs/42?wait=0", "demo-alice")
        assert status == 200 and json.loads(body)["run"]["status"] == "running", body
        assert get(f"http://127.0.0.1:{run.web}/pollgate.js")[0] == 200

        started = run.started()
        for name, pids in started.items():
            assert pids, f"no {name} found running:\n{out}\n{started}"
        script = run.script_pid()
        assert script is not None

        if how == "ctrl-c to the group":
            os.killpg(run.proc.pid, signal.SIGINT)
        elif how == "sigterm to the script":
            os.kill(script, signal.SIGTERM)
        else:
            os.killpg(run.proc.pid, signal.SIGTERM)
        if how.endswith("again during the cleanup"):
            # make forwards its own SIGTERM to the script, and a user presses Ctrl-C twice: a signal that
            # lands while the cleanup runs must not cut it short.
            deadline = time.monotonic() + 30
            while "run: stopping" not in run.output and time.monotonic() < deadline:
                time.sleep(0.01)
            assert "run: stopping" in run.output, run.output
            os.kill(script, signal.SIGTERM)
            os.kill(script, signal.SIGINT)
        run.proc.wait(timeout=90)
        deadline = time.monotonic() + 30  # make may exit before the script it forwarded the signal to
        while running(script) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not running(script), "scripts/run.sh is still running"

        left = {name: [p for p in pids if running(p)] for name, pids in started.items()}
        left = {k: v for k, v in left.items() if v}
        assert not left, f"still running after {how}: {left}\n" + run.output
        for port in (run.http, run.web, run.pg):
            assert not port_open(port), f"port {port} still open after {how}"
        assert "run: stopped" in run.output, run.output
    finally:
        run.kill_leftovers()
