"""Behind a real reverse proxy: the shipped conf/nginx.conf (and conf/haproxy.cfg) in front of the gateway.

Each test starts its own proxy master as a child process, from the example file itself: only the paths
(pid, logs, temp dirs), the `user`, the listen address and the upstream address are rewritten (for
HAProxy: the global lines that need root or syslog dropped, maxconn fitted to the descriptor limit;
render_nginx_conf, render_haproxy_cfg), and a rewrite that does not find its line fails the test, so the
example cannot drift from what is tested. The rendered file must pass `nginx -t` / `haproxy -c` first.
nginx runs as `nginx -p TMP -c CONF -g 'daemon off;'`; as root its workers run as root (`user root;`),
otherwise as ourselves; haproxy runs with -db (foreground), its log on stderr.

Without nginx installed the nginx tests are skipped, except under CI (the CI variable set), where
scripts/deps.sh installs it and a missing nginx is a failure. The same holds for haproxy.

What is asserted through the proxy:
  - held requests pass through unbuffered: 50 held, one commit, all 200 within 2 s;
  - an expiring hold is a 304 with the ETag after its wait, not cut by the proxy;
  - the client address is the proxy's view of it (X-Forwarded-For from a trusted proxy, right-most
    untrusted hop): per-client 429 and the gateway's `client=` log field; a forged hop is ignored;
    the proxy's X-Request-Id is the one echoed and logged;
  - 300 long-poll cycles on keep-alive connections: every status 200 or 304, no 502/504, and the
    upstream connections are reused;
  - headers and errors survive the proxy (Cache-Control: no-store, ETag, JSON 401/404/405), /metrics is
    not served, a gateway that is down is a JSON 503 with Retry-After, and a read timeout shorter than
    the hold (what pollgate's proxy_timeout check prevents) cuts the hold.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import threading
import time
import http.client as _httpclient

import pytest

from helpers import (REPO, KeepAlive, ManyGets, free_port, get, http, make_demo_world, make_run, pollgate_bin,
                     run_pollgate, set_run, wait_for)


NGINX_CONF = REPO / "conf" / "nginx.conf"
HAPROXY_CFG = REPO / "conf" / "haproxy.cfg"

HEX32 = re.compile(r"^[0-9a-f]{32}$")                      # nginx's $request_id
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")  # HAProxy's uuid()


# --------------------------------------------------------------------------------------------------
# Finding the programs


def find_program(name):
    """Path of `name` on PATH or in the sbin directories (not on a non-root PATH); else skip, or fail
    under CI, where scripts/deps.sh installs it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed, and CI must run the proxy tests (scripts/deps.sh installs it)")
    pytest.skip(f"{name} is not installed (apt-get install {name}; scripts/deps.sh does it as root)")


def directive(text, name):
    """The value of the one uncommented `name VALUE;` line in a config text."""
    found = re.findall(rf"^\s*{name}\s+([^;#\n]+?)\s*;?\s*(?:#.*)?$", text, re.M)
    assert len(found) == 1, f"{name}: expected one line, found {found}"
    return found[0]


def seconds(value):
    m = re.fullmatch(r"(\d+)(ms|s|m)?", value.strip())
    assert m, value
    n = int(m.group(1))
    return {"ms": n / 1000, "s": n, None: n, "m": n * 60}[m.group(2)]


def substitute(text, pattern, repl, what):
    """re.sub exactly once (multi-line mode); AssertionError naming `what` otherwise."""
    new, n = re.subn(pattern, repl, text, flags=re.M)
    assert n == 1, f"{what}: pattern /{pattern}/ matched {n} times in the example (expected once)"
    return new


# --------------------------------------------------------------------------------------------------
# The shipped examples, rewritten only where a test run must differ


def render_nginx_conf(tmpdir, listen_port, upstream_port, overrides=None):
    """conf/nginx.conf with pid, logs and temp dirs under `tmpdir`, `listen 127.0.0.1:listen_port`, the
    upstream at 127.0.0.1:upstream_port and, as root, `user root;`. overrides: {directive: value} for
    directives of the example to change (each must appear exactly once)."""
    text = NGINX_CONF.read_text()
    user = "user root;" if os.geteuid() == 0 else "# user: not root, workers run as the master's user"
    text = substitute(text, r"^user\s+[^;]+;", user, "user")
    text = substitute(text, r"^pid\s+[^;]+;", f"pid {tmpdir}/nginx.pid;", "pid")
    text = substitute(text, r"^error_log\s+\S+", f"error_log {tmpdir}/error.log", "error_log")
    text = substitute(text, r"^(\s*)access_log\s+\S+", rf"\g<1>access_log {tmpdir}/access.log", "access_log")
    text = substitute(text, r"^(\s*)listen\s+[^;]+;", rf"\g<1>listen 127.0.0.1:{listen_port};", "listen")
    text = substitute(text, r"^(\s*)server\s+127\.0\.0\.1:8080;", rf"\g<1>server 127.0.0.1:{upstream_port};",
                      "upstream server")
    temp = "".join(f"    {d}_temp_path {tmpdir}/{d}_temp;\n"
                   for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    text = substitute(text, r"^http\s*\{\n", "http {\n" + temp, "http block")
    for name, value in (overrides or {}).items():
        text = substitute(text, rf"^(\s*){name}\s+[^;]+;", rf"\g<1>{name} {value};", name)
    return text


def render_haproxy_cfg(tmpdir, listen_port, upstream_port):
    """conf/haproxy.cfg without the global lines that need root or syslog (chroot, user, group, daemon,
    stats socket; the log goes to stderr), bound to 127.0.0.1:listen_port, the server at upstream_port,
    and a global maxconn that fits this process's descriptor limit (HAProxy wants about 2 per
    connection and refuses to start when it cannot raise its limit that far, e.g. in a container)."""
    text = HAPROXY_CFG.read_text()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY:
        want = int(directive(text, "maxconn"))
        text = substitute(text, r"^(\s*)maxconn\s+\d+", rf"\g<1>maxconn {min(want, (hard - 200) // 2)}",
                          "global maxconn")
    for name in ("chroot", "user", "group", "daemon", "stats socket"):
        text = substitute(text, rf"^\s*{name}\b.*\n", "", f"global {name}")
    text = substitute(text, r"^(\s*)log\s+/dev/log\s+(\S+)", r"\g<1>log stderr format raw \g<2>", "global log")
    text = substitute(text, r"^(\s*)bind\s+\S+", rf"\g<1>bind 127.0.0.1:{listen_port}", "bind")
    text = substitute(text, r"^(\s*server\s+\S+\s+)127\.0\.0\.1:8080", rf"\g<1>127.0.0.1:{upstream_port}", "server")
    return text


def proxy_timeout(path=NGINX_CONF):
    """The example's read timeout (nginx proxy_read_timeout, HAProxy timeout server) as a pollgate value."""
    text = path.read_text()
    if path == NGINX_CONF:
        return directive(text, "proxy_read_timeout")
    return directive(text, r"timeout\s+server")


# --------------------------------------------------------------------------------------------------
# A proxy master as a child process


class Proxy:
    """One nginx or haproxy master started by the test. url, port, dir; log() is everything it wrote
    (error log / stderr), access_log() the access log."""

    def __init__(self, kind, argv, port, tmpdir, log_path, access_path):
        self.kind, self.argv, self.port, self.dir = kind, argv, port, tmpdir
        self.log_path, self.access_path = log_path, access_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc = None

    def start(self, timeout=15.0):
        out = open(self.dir / f"{self.kind}.out", "ab")
        try:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        finally:
            out.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                return False  # the caller looks at the log (a port clash is retried)
            try:
                if http("GET", self.url + "/healthz", timeout=2.0).status == 200:
                    return True
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.kind} not passing /healthz within {timeout}s:\n{self.log()[-3000:]}")
            time.sleep(0.05)

    def log(self):
        text = ""
        for p in (self.dir / f"{self.kind}.out", self.log_path):
            if p and p.exists():
                text += p.read_text(errors="replace")
        return text

    def access_log(self):
        return self.access_path.read_text(errors="replace") if self.access_path and self.access_path.exists() else ""

    def stop(self):
        """SIGTERM (fast shutdown: held requests are cut, which is the test's business), then SIGKILL."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def upstream_errors(self):
        """Error-log lines about the upstream (timeouts, resets, refused) and fatal ones."""
        return [l for l in self.log().splitlines()
                if re.search(r"\[(emerg|crit)\]|upstream (timed out|prematurely)|connect\(\) failed|"
                             r"while reading response header from upstream", l)]


def _start_proxy(tmp_path, name, make, attempts=3):
    """make(dir, port) -> Proxy; retried on a fresh port when the master exits at once (port clash)."""
    for i in range(attempts):
        d = tmp_path / f"{name}{i}"
        d.mkdir()
        port = free_port()
        p = make(d, port)
        if p.start():
            return p
        if "in use" not in p.log() and "Address already" not in p.log():
            break
    raise AssertionError(f"{name} did not start:\n{p.log()[-3000:]}")


@pytest.fixture
def nginx(tmp_path):
    """Factory: nginx(gw, overrides=None) -> Proxy running conf/nginx.conf in front of gateway `gw`."""
    binary = find_program("nginx")
    started = []

    def start(gw, overrides=None):
        def make(d, port):
            conf = d / "nginx.conf"
            conf.write_text(render_nginx_conf(d, port, gw.port, overrides))
            argv = [binary, "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf), "-g", "daemon off;"]
            check = subprocess.run([binary, "-t", "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf)],
                                   capture_output=True, text=True)
            assert check.returncode == 0, f"nginx -t refused the rendered example:\n{check.stdout}{check.stderr}"
            return Proxy("nginx", argv, port, d, d / "error.log", d / "access.log")
        p = _start_proxy(tmp_path, "nginx", make)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def haproxy(tmp_path):
    """Factory: haproxy(gw) -> Proxy running conf/haproxy.cfg in front of gateway `gw`."""
    binary = find_program("haproxy")
    started = []

    def start(gw):
        def make(d, port):
            cfg = d / "haproxy.cfg"
            cfg.write_text(render_haproxy_cfg(d, port, gw.port))
            check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
            assert check.returncode == 0, f"haproxy -c refused the rendered example:\n{check.stdout}{check.stderr}"
            return Proxy("haproxy", [binary, "-db", "-f", str(cfg)], port, d, None, d / "haproxy.out")
        p = _start_proxy(tmp_path, "haproxy", make)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def world(db):
    return make_demo_world(db)


def proxied_gateway(gateway, path=NGINX_CONF, **conf):
    """A gateway configured as the example's comments say: the proxy (on loopback) trusted, and
    proxy_timeout = the proxy's read timeout, so pollgate checks max_wait against it."""
    full = {"trusted_proxies": "127.0.0.1/32", "proxy_timeout": proxy_timeout(path),
            "max_waiters_per_principal": 1000, "max_waiters_per_client": 1000}
    full.update(conf)
    return gateway(**full)


def held(gw):
    return gw.metrics().value("pollgate_waiters_held")


def wait_held(gw, n, timeout=15.0):
    wait_for(lambda: held(gw) == n, timeout=timeout, what=f"{n} held waiters")


def auth(token="tok-alice", etag=None, **extra):
    h = {"Authorization": f"Bearer {token}"}
    if etag:
        h["If-None-Match"] = etag
    h.update(extra)
    return h


def gateway_client_of(gw, rid, timeout=5.0):
    """The `client=` the gateway logged for request id `rid`."""
    m = gw.wait_log(rf"rid={re.escape(rid)}\b[^\n]*client=(\S+)", timeout=timeout)
    return m.group(1)


def get_from(source_ip, url, headers, timeout=10.0):
    """GET from a chosen loopback source address (127.0.0.0/8 is all local on Linux)."""
    u = url.split("/", 3)
    host, port = u[2].rsplit(":", 1)
    conn = _httpclient.HTTPConnection(host, int(port), timeout=timeout, source_address=(source_ip, 0))
    try:
        conn.request("GET", "/" + u[3], headers=headers)
        r = conn.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        conn.close()


def raw_get_from(source_ip, port, header_lines, path="/v1/runs/42?wait=0"):
    """GET path from `source_ip` with Alice's token and the given raw header lines (a header may repeat);
    returns every byte of the answer."""
    head = [f"GET {path} HTTP/1.1", "Host: x", "Authorization: Bearer tok-alice", "Connection: close"] + header_lines
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source_ip, 0)) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    return raw


def tcp_states(port):
    """{'ESTABLISHED': n, 'TIME_WAIT': n, ...} of IPv4 TCP sockets with `port` at either end."""
    names = {"01": "ESTABLISHED", "06": "TIME_WAIT", "08": "CLOSE_WAIT"}
    counts = {}
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, st = parts[1], parts[2], parts[3]
            if int(local.split(":")[1], 16) == port or int(remote.split(":")[1], 16) == port:
                counts[names.get(st, st)] = counts.get(names.get(st, st), 0) + 1
    return counts


# --------------------------------------------------------------------------------------------------
# The examples themselves


def test_example_timeouts_keep_pollgates_margin(tmp_path):
    """The examples' read timeouts leave max_wait's default (55s) its 5 s margin: pollgate accepts
    proxy_timeout = that value, and refuses a max_wait closer than 5 s to it."""
    conf = tmp_path / "pollgate.conf"
    for path in (NGINX_CONF, HAPROXY_CFG):
        pt = proxy_timeout(path)
        assert seconds(pt) >= 55 + 5, f"{path.name}: read timeout {pt} leaves max_wait (55s) no 5 s margin"
        conf.write_text(f"proxy_timeout = {pt}\n")
        ok = run_pollgate("--check-config", "-c", conf)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        conf.write_text(f"max_wait = {int(seconds(pt)) - 2}s\nproxy_timeout = {pt}\n")
        bad = run_pollgate("--check-config", "-c", conf)
        assert bad.returncode != 0 and "proxy_timeout" in bad.stdout + bad.stderr, bad.stdout + bad.stderr
    haproxy_text = HAPROXY_CFG.read_text()
    assert seconds(directive(haproxy_text, r"timeout\s+client")) >= 60, "timeout client must outlast a hold"
    # nginx gives up an idle upstream connection before pollgate's header_timeout (10s) closes it.
    assert seconds(directive(NGINX_CONF.read_text(), "keepalive_timeout")) < 10
    # The long-poll essentials are there, uncommented.
    text = NGINX_CONF.read_text()
    for name, value in (("proxy_buffering", "off"), ("proxy_request_buffering", "off"), ("proxy_http_version", "1.1"),
                        ("proxy_set_header X-Forwarded-For", "$proxy_add_x_forwarded_for"),
                        ("proxy_set_header X-Request-Id", "$request_id")):
        assert directive(text, name) == value, name
    assert re.search(r'^\s*proxy_set_header Connection "";', text, re.M)
    assert not re.search(r"^\s*option\s+http-server-close", haproxy_text, re.M)


def test_shipped_haproxy_cfg_is_valid():
    binary = find_program("haproxy")
    p = subprocess.run([binary, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)
    if p.returncode != 0 and "unknown user" in p.stdout + p.stderr:
        pytest.skip("the example names the haproxy user, which this machine lacks (the package creates it)")
    assert p.returncode == 0, p.stdout + p.stderr


def test_systemd_unit_verifies(tmp_path):
    """conf/pollgate.service passes `systemd-analyze verify` without a warning (the binary path pointed at
    the one under test, since /usr/local/sbin/pollgate need not exist here), and stops after a drain."""
    unit_text = (REPO / "conf" / "pollgate.service").read_text()
    stop = re.search(r"^TimeoutStopSec=(\d+)s$", unit_text, re.M)
    assert stop and int(stop.group(1)) > 10, "TimeoutStopSec must exceed drain_timeout (10s)"
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit_text, re.M)
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / "pollgate.service"
    unit.write_text(unit_text.replace("/usr/local/sbin/pollgate", str(pollgate_bin())))
    # --man=no: Documentation= names pollgate(8), installed by make install or the package, not here
    # (scripts/test-package.sh verifies the installed unit with its man pages in place).
    p = subprocess.run([tool, "verify", "--man=no", str(unit)], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and (p.stdout + p.stderr).strip() == "", p.stdout + p.stderr


# --------------------------------------------------------------------------------------------------
# nginx


def test_nginx_many_long_polls_pass_through_unbuffered_and_wake_together(gateway, nginx, world, db, notes):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    gw = proxied_gateway(gateway)
    ngx = nginx(gw)
    first = get(ngx.url + "/v1/runs/42?wait=0", headers=auth())
    assert first.status == 200 and first.etag
    n = 50
    mg = ManyGets([(ngx.url + "/v1/runs/42?wait=30", auth(etag=first.etag))] * n, timeout=45).start()
    mg.wait_sent()
    wait_held(gw, n)
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    rs = mg.results()
    woke = time.monotonic() - t0
    assert [r.status for r in rs] == [200] * n, [r for r in rs if r.status != 200][:3]
    assert len({r.etag for r in rs}) == 1 and rs[0].etag != first.etag
    assert all(r.json()["run"]["summary_counts"]["processed"] == 2 for r in rs)
    assert woke < 2.0, f"the last of {n} answered {woke:.3f}s after the commit, through nginx"
    assert held(gw) == 0
    assert ngx.upstream_errors() == []
    notes(f"{n} long-polls through nginx, all 200 within {woke * 1000:.0f} ms of the commit")


def test_nginx_expiring_hold_is_a_304_with_the_etag_after_the_wait(gateway, nginx, world, db, notes):
    make_run(db, 1, 7, id=42, status="running")
    gw = proxied_gateway(gateway)
    ngx = nginx(gw)
    etag = get(ngx.url + "/v1/runs/42?wait=0", headers=auth()).etag
    r = get(ngx.url + "/v1/runs/42?wait=3", headers=auth(etag=etag), timeout=20)
    assert r.status == 304 and r.etag == etag and r.body == b"", r
    assert 2.9 <= r.elapsed < 6, r.elapsed
    assert r.headers["Cache-Control"] == "no-store"
    # Prefer: wait= reaches the gateway through nginx too.
    r2 = get(ngx.url + "/v1/runs/42", headers=auth(etag=etag, Prefer="wait=1"), timeout=20)
    assert r2.status == 304 and 0.9 <= r2.elapsed < 4, r2
    assert ngx.upstream_errors() == []
    notes(f"wait=3 through nginx: 304 after {r.elapsed:.2f}s; Prefer: wait=1: 304 after {r2.elapsed:.2f}s")


def test_nginx_client_address_and_request_id_come_from_the_proxy(gateway, nginx, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = proxied_gateway(gateway, max_waiters_per_client=2)
    ngx = nginx(gw)
    etag = get(ngx.url + "/v1/runs/42?wait=0", headers=auth()).etag

    # A hop before nginx (here the test client on 127.0.0.1, which pollgate trusts, like a CDN would be)
    # says the browser is 203.0.113.7: nginx appends 127.0.0.1, pollgate takes 203.0.113.7. Its cap
    # counts that address: two held, the third refused with 429, another address still held.
    xff = {"X-Forwarded-For": "203.0.113.7"}
    mg = ManyGets([(ngx.url + "/v1/runs/42?wait=20", auth(etag=etag, **xff))] * 2, timeout=30).start()
    mg.wait_sent()
    wait_held(gw, 2)
    r = get(ngx.url + "/v1/runs/42?wait=20", headers=auth(etag=etag, **xff), timeout=10)
    assert r.status == 429, r
    assert r.headers["Retry-After"] == "2" and r.json()["error"]["code"] == "too_many_waiters"
    assert HEX32.match(r.headers["X-Request-Id"]), r.headers["X-Request-Id"]
    assert gateway_client_of(gw, r.headers["X-Request-Id"]) == "203.0.113.7"
    other = ManyGets([(ngx.url + "/v1/runs/42?wait=20", auth(etag=etag, **{"X-Forwarded-For": "203.0.113.8"}))],
                     timeout=30).start()
    other.wait_sent()
    wait_held(gw, 3)
    set_run(db, 42, summary_counts={"total": 1})
    assert [x.status for x in mg.results() + other.results()] == [200, 200, 200]

    # A browser nginx sees as 127.0.0.3 (not trusted) forging X-Forwarded-For and X-Request-Id: the
    # gateway's client is 127.0.0.3 (the hop nginx appended), and the id is nginx's.
    status, headers, _ = get_from("127.0.0.3", ngx.url + "/v1/runs/42?wait=0",
                                  auth(**{"X-Forwarded-For": "203.0.113.7", "X-Request-Id": "forged-by-client"}))
    assert status == 200
    rid = headers["x-request-id"]
    assert HEX32.match(rid) and rid != "forged-by-client"
    assert gateway_client_of(gw, rid) == "127.0.0.3"
    # ... and it is the id in nginx's access log for that request, so the two logs join on it.
    wait_for(lambda: f"rid={rid}" in ngx.access_log(), what="the request id in nginx's access log")
    line = next(l for l in ngx.access_log().splitlines() if f"rid={rid}" in l)
    assert line.startswith("127.0.0.3 ") and " 200 " in line, line

    # Two X-Forwarded-For lines from that browser: nginx folds them into its one header, before the hop
    # it appends, so the gateway still sees 127.0.0.3.
    raw = raw_get_from("127.0.0.3", ngx.port, ["X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 203.0.113.9"])
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    rid = re.search(rb"(?im)^X-Request-Id: *(\S+)", raw).group(1).decode()
    assert gateway_client_of(gw, rid) == "127.0.0.3"


def test_nginx_300_long_poll_cycles_without_a_502_or_504(gateway, nginx, world, db, notes):
    """40 browsers on keep-alive connections: 20 on a run updated every 250 ms (10 cycles each, mostly
    200), 20 on one never updated (5 cycles of wait=1 each, 304). Every status is 200 or 304, every 200 a
    new ETag, and nginx reuses its upstream connections instead of opening one per cycle."""
    make_run(db, 1, 7, id=42, status="running", summary_counts={"processed": 0})
    make_run(db, 1, 7, id=43, status="running")
    gw = proxied_gateway(gateway)
    ngx = nginx(gw)
    statuses, problems = {}, []
    lock = threading.Lock()
    stop = threading.Event()

    def browser(run, cycles, wait):
        try:
            with KeepAlive(ngx.url, timeout=30) as c:
                r = c.get(f"/v1/runs/{run}?wait=0", headers=auth())
                etag = r.etag
                for _ in range(cycles):
                    r = c.get(f"/v1/runs/{run}?wait={wait}", headers=auth(etag=etag))
                    with lock:
                        statuses[r.status] = statuses.get(r.status, 0) + 1
                    if r.status == 200:
                        if r.etag == etag:
                            problems.append(f"200 with the ETag sent on run {run}")
                        etag = r.etag
                    elif r.status != 304:
                        problems.append(f"{r.status} {r.body[:200]!r}")
        except Exception as e:  # counted as a failure, never swallowed
            problems.append(repr(e))

    def updater():
        i = 0
        while not stop.wait(0.25):
            i += 1
            set_run(db, 42, summary_counts={"processed": i})

    before = tcp_states(gw.port)
    threads = [threading.Thread(target=browser, args=(42, 10, 2)) for _ in range(20)]
    threads += [threading.Thread(target=browser, args=(43, 5, 1)) for _ in range(20)]
    up = threading.Thread(target=updater)
    t0 = time.monotonic()
    up.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    stop.set()
    up.join()
    took = time.monotonic() - t0
    after = tcp_states(gw.port)
    assert problems == [], problems[:5]
    assert sum(statuses.values()) == 300, statuses
    assert set(statuses) <= {200, 304} and statuses.get(200, 0) >= 150 and statuses.get(304, 0) >= 100, statuses
    assert ngx.upstream_errors() == []
    # Without upstream keep-alive every cycle would leave a TIME_WAIT socket on the gateway's port.
    new_time_wait = after.get("TIME_WAIT", 0) - before.get("TIME_WAIT", 0)
    assert new_time_wait < 60, (before, after)
    notes(f"300 cycles through nginx in {took:.1f}s: {dict(sorted(statuses.items()))}; upstream sockets after: "
          f"{after.get('ESTABLISHED', 0) // 2} kept alive, {new_time_wait} new TIME_WAIT")


def test_nginx_keeps_headers_and_json_errors(gateway, nginx, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = proxied_gateway(gateway)
    ngx = nginx(gw)
    r = get(ngx.url + "/v1/runs/42?wait=0", headers=auth())
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    assert re.fullmatch(r'"[^"]+"', r.etag) and r.headers["Content-Type"].startswith("application/json")
    assert r.body == get(gw.url + "/v1/runs/42?wait=0", headers=auth()).body
    r304 = get(ngx.url + "/v1/runs/42?wait=0", headers=auth(etag=r.etag))
    assert r304.status == 304 and r304.etag == r.etag and r304.headers["Cache-Control"] == "no-store"
    head = http("HEAD", ngx.url + "/v1/runs/42?wait=0", headers=auth())
    assert head.status == 200 and head.etag == r.etag and head.body == b""

    # Errors are pollgate's, byte for byte: 404 (missing and malformed alike), 401, 405.
    for path, hdrs, status, code in (("/v1/runs/999", auth(), 404, "not_found"),
                                     ("/v1/runs/abc", auth(), 404, "not_found"),
                                     ("/v1/runs/42", {}, 401, "unauthorized")):
        via, direct = get(ngx.url + path, headers=hdrs), get(gw.url + path, headers=hdrs)
        assert via.status == direct.status == status and via.body == direct.body
        assert via.json()["error"]["code"] == code and via.headers["Cache-Control"] == "no-store"
        assert via.headers["Content-Type"].startswith("application/json")
    assert get(ngx.url + "/v1/runs/42").headers["WWW-Authenticate"].startswith("Bearer")
    post = http("POST", ngx.url + "/v1/runs/42", headers=auth())
    assert post.status == 405 and post.headers["Allow"] == "GET, HEAD"
    assert post.json()["error"]["code"] == "method_not_allowed"
    # A request body is refused by nginx before it is streamed on, as pollgate would: 400 bad_request.
    big = http("GET", ngx.url + "/v1/runs/42", headers=auth(), body=b"x" * 4096)
    assert big.status == 400 and big.json()["error"]["code"] == "bad_request", big
    # So is a header block larger than pollgate's max_header_size (8KiB).
    huge = get(ngx.url + "/v1/runs/42", headers=auth(**{"X-Padding": "x" * 10000}))
    assert huge.status == 400 and huge.json()["error"]["code"] == "bad_request", huge

    # Health passes through; /metrics does not (Prometheus scrapes pollgate directly).
    assert get(ngx.url + "/healthz").status == 200 and get(ngx.url + "/readyz").status == 200
    m = get(ngx.url + "/metrics")
    assert m.status == 404 and m.json()["error"]["code"] == "not_found" and m.headers["Cache-Control"] == "no-store"
    assert m.body == get(ngx.url + "/v1/runs/999", headers=auth()).body
    assert get(gw.url + "/metrics").status == 200

    # The gateway gone: nginx answers in pollgate's shape, 503 with Retry-After, not an HTML 502.
    gw.stop()
    down = get(ngx.url + "/v1/runs/42?wait=0", headers=auth())
    assert down.status == 503 and down.headers["Retry-After"] == "2", down
    assert down.json()["error"]["code"] == "unavailable" and down.headers["Cache-Control"] == "no-store"
    wait_for(lambda: "upstream_status=502" in ngx.access_log(), what="the 502 in nginx's access log")


def test_nginx_client_leaving_frees_the_held_request(gateway, nginx, world, db):
    """A browser that closes its connection to nginx while held: nginx closes its upstream connection and
    the gateway frees the waiter at once."""
    make_run(db, 1, 7, id=42, status="running")
    gw = proxied_gateway(gateway)
    ngx = nginx(gw)
    etag = get(ngx.url + "/v1/runs/42?wait=0", headers=auth()).etag
    socks = []
    for _ in range(10):
        s = socket.create_connection(("127.0.0.1", ngx.port), timeout=5)
        s.sendall((f"GET /v1/runs/42?wait=30 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-alice\r\n"
                   f"If-None-Match: {etag}\r\n\r\n").encode())
        socks.append(s)
    wait_held(gw, 10)
    t0 = time.monotonic()
    for s in socks:
        s.close()
    wait_held(gw, 0, timeout=5)
    assert time.monotonic() - t0 < 3
    assert gw.metrics().value("pollgate_client_disconnects_total") >= 10


def test_nginx_read_timeout_shorter_than_the_hold_cuts_it(gateway, nginx, world, db, tmp_path):
    """What pollgate's proxy_timeout check is for: with nginx's read timeout (2s) below the hold (4s) and
    no proxy_timeout to catch it, the hold is cut (a 504, answered as the JSON 503); with proxy_timeout
    stating the 2s, pollgate refuses the config before it starts."""
    conf = tmp_path / "cut.conf"
    conf.write_text("max_wait = 4s\nproxy_timeout = 2s\n")
    bad = run_pollgate("--check-config", "-c", conf)
    assert bad.returncode != 0 and "proxy_timeout" in bad.stdout + bad.stderr
    make_run(db, 1, 7, id=42, status="running")
    gw = proxied_gateway(gateway, proxy_timeout=None, max_wait="4s")
    ngx = nginx(gw, overrides={"proxy_read_timeout": "2s"})
    etag = get(ngx.url + "/v1/runs/42?wait=0", headers=auth()).etag
    r = get(ngx.url + "/v1/runs/42?wait=4", headers=auth(etag=etag), timeout=20)
    assert r.status == 503 and r.json()["error"]["code"] == "unavailable" and 1.9 <= r.elapsed < 3.5, r
    wait_for(lambda: "upstream_status=504" in ngx.access_log(), what="the 504 in nginx's access log")
    assert any("upstream timed out" in l for l in ngx.upstream_errors())


# --------------------------------------------------------------------------------------------------
# HAProxy (smaller: the same checks, fewer of each)


def test_haproxy_long_polls_client_address_and_errors(gateway, haproxy, world, db, notes):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"processed": 0})
    make_run(db, 1, 7, id=43, status="running")
    gw = proxied_gateway(gateway, path=HAPROXY_CFG)
    hap = haproxy(gw)
    first = get(hap.url + "/v1/runs/42?wait=0", headers=auth())
    assert first.status == 200 and first.headers["Cache-Control"] == "no-store"
    assert UUID.match(first.headers["X-Request-Id"]), first.headers["X-Request-Id"]

    # 30 held, one commit, all 200 promptly.
    n = 30
    mg = ManyGets([(hap.url + "/v1/runs/42?wait=30", auth(etag=first.etag))] * n, timeout=45).start()
    mg.wait_sent()
    wait_held(gw, n)
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"processed": 1})
    rs = mg.results()
    woke = time.monotonic() - t0
    assert [r.status for r in rs] == [200] * n and woke < 2.0, (woke, rs[:3])

    # An expiring hold: 304 with the ETag after the wait.
    etag43 = get(hap.url + "/v1/runs/43?wait=0", headers=auth()).etag
    r = get(hap.url + "/v1/runs/43?wait=2", headers=auth(etag=etag43), timeout=20)
    assert r.status == 304 and r.etag == etag43 and 1.9 <= r.elapsed < 5, r

    # A forged X-Forwarded-For and X-Request-Id from a browser at 127.0.0.3 are replaced.
    status, headers, _ = get_from("127.0.0.3", hap.url + "/v1/runs/43?wait=0",
                                  auth(**{"X-Forwarded-For": "203.0.113.7", "X-Request-Id": "forged-by-client"}))
    assert status == 200 and UUID.match(headers["x-request-id"])
    assert gateway_client_of(gw, headers["x-request-id"]) == "127.0.0.3"
    wait_for(lambda: f"rid={headers['x-request-id']}" in hap.access_log(), what="the id in HAProxy's log")
    # option forwardfor adds a header line of its own after the client's; pollgate reads every line as one
    # list and takes the right-most untrusted hop, so even two forged lines change nothing.
    raw = raw_get_from("127.0.0.3", hap.port, ["X-Forwarded-For: 203.0.113.7", "X-Forwarded-For: 203.0.113.9"])
    assert raw.startswith(b"HTTP/1.1 200 "), raw[:200]
    assert gateway_client_of(gw, re.search(rb"(?im)^X-Request-Id: *(\S+)", raw).group(1).decode()) == "127.0.0.3"

    # 100 cycles on keep-alive connections, every status 200 or 304.
    statuses, problems = {}, []
    lock = threading.Lock()

    def browser(i):
        try:
            with KeepAlive(hap.url, timeout=30) as c:
                etag = c.get("/v1/runs/42?wait=0", headers=auth()).etag
                for _ in range(10):
                    x = c.get("/v1/runs/42?wait=1", headers=auth(etag=etag))
                    with lock:
                        statuses[x.status] = statuses.get(x.status, 0) + 1
                    etag = x.etag or etag
        except Exception as e:
            problems.append(repr(e))

    threads = [threading.Thread(target=browser, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for i in range(8):
        time.sleep(0.3)
        set_run(db, 42, summary_counts={"processed": 2 + i})
    for t in threads:
        t.join(60)
    assert problems == [] and sum(statuses.values()) == 100 and set(statuses) <= {200, 304}, (problems, statuses)

    # Errors and /metrics.
    assert get(hap.url + "/v1/runs/999", headers=auth()).body == get(gw.url + "/v1/runs/999", headers=auth()).body
    m = get(hap.url + "/metrics")
    assert m.status == 404 and m.json()["error"]["code"] == "not_found"
    gw.stop()
    down = get(hap.url + "/v1/runs/42?wait=0", headers=auth())
    assert down.status == 503 and down.headers["Retry-After"] == "2", down
    assert down.json()["error"]["code"] == "unavailable"
    notes(f"haproxy: {n} held woken within {woke * 1000:.0f} ms; 100 cycles {dict(sorted(statuses.items()))}")
