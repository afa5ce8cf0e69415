"""bench/test_peers_load.py — the load generator of `make bench-peers` (build/peers_load) against a tiny
scripted HTTP server: it must tell a complete answer (Content-Length, chunked, bodiless 304) from one
still arriving or cut off, and stamp each with its own time, or every number bench-peers prints is wrong.

    make build/peers_load && /usr/bin/python3 -m pytest -q -p no:cacheprovider bench/test_peers_load.py
"""

import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BIN = REPO / "build" / "peers_load"

# Path -> what the server does with that request: a list of (delay_s, bytes) writes, then close or not.
SCRIPTS = {
    "/len": ([(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"), (0.3, b"lo")], False),
    "/chunked": ([(0.0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
                  (0.3, b"0\r\n\r\n")], False),
    "/304": ([(0.0, b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n")], False),
    "/cut": ([(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort")], True),
    "/held": ([], False),
}


class Server:
    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.go = threading.Event()
        self.conns = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        req = b""
        while b"\r\n\r\n" not in req:
            d = c.recv(4096)
            if not d:
                return
            req += d
        path = req.split()[1].decode()
        writes, close = SCRIPTS[path]
        self.go.wait()
        for delay, data in writes:
            time.sleep(delay)
            c.sendall(data)
        if close:
            c.close()


def cmd(p, line):
    p.stdin.write(line + "\n")
    p.stdin.flush()
    return p.stdout.readline().split()


@pytest.fixture
def loadgen(tmp_path):
    if not BIN.exists():
        subprocess.run(["make", "-C", str(REPO), "build/peers_load"], check=True, capture_output=True)
    srv = Server()
    spec = tmp_path / "spec.txt"
    paths = list(SCRIPTS)
    spec.write_text("".join(f"{i}\t{p}\tX-Test: {i}\n" for i, p in enumerate(paths)))
    p = subprocess.Popen([str(BIN), "127.0.0.1", str(srv.port), "127.0.0.1", str(spec)], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, text=True, bufsize=1)
    yield srv, p, paths
    if p.poll() is None:
        cmd(p, "quit")
        p.wait(5)
    srv.sock.close()


def test_answers_are_complete_only_when_whole(loadgen):
    srv, p, paths = loadgen
    assert p.stdout.readline().split()[:2] == ["ready", str(len(paths))]
    assert cmd(p, "connect") == ["sent", str(len(paths)), "0"]
    assert cmd(p, "count") == ["count", "0", "0"]
    t_go = time.time()
    srv.go.set()
    deadline = time.monotonic() + 10
    while cmd(p, "count") != ["count", "3", "1"]:  # /len, /chunked, /304 answered; /cut closed
        assert time.monotonic() < deadline, "peers_load never saw the answers complete"
        time.sleep(0.02)
    p.stdin.write("dump\n")
    p.stdin.flush()
    rows = {}
    while True:
        line = p.stdout.readline().split()
        if line[0] == "end":
            break
        _, idx, res, status, t1, t2 = line
        rows[paths[int(idx)]] = (int(res), int(status), int(t1) / 1e9, int(t2) / 1e9)
    assert {k: v[1] for k, v in rows.items()} == {"/len": 200, "/chunked": 200, "/304": 304, "/cut": -2, "/held": 0}
    assert [rows[k][0] for k in paths] == list(range(len(paths)))
    for k in ("/len", "/chunked"):  # first bytes at once, complete only after the 0.3 s tail
        _, _, t1, t2 = rows[k]
        assert t_go - 0.05 < t1 < t2
        assert t2 - t1 > 0.2, f"{k}: complete before its last bytes came"
    assert rows["/held"][2:] == (0.0, 0.0)
    assert cmd(p, "quit") == ["bye"]
