"""The shipped examples under examples/, run as a user would run them.

examples/nginx/pollgate-location.conf is included, as shipped, inside a minimal server {} block that stands
for the Laravel application's own site (a `location /` and a `location ~ \\.php$` like a real one), with
examples/nginx/pollgate-upstream.conf in http {} context (only its `server` address rewritten to the test
gateway's port). A real nginx runs it on a free port (test_proxy.py's machinery) in front of a real gateway
configured as the example's comments say. Asserted through nginx under /pollgate/:
  - a long-poll on /pollgate/v1/runs/{id} reaches the gateway's /v1/runs/{id}: 200 with an ETag, then held
    (the gateway counts it) until a commit wakes it with the new state; an unchanged one is a 304 after
    its wait; the review-pack route works the same way;
  - X-Forwarded-For is believed exactly as configured: a browser's forged hop is ignored, a hop from a
    trusted address is taken, and without trusted_proxies every client is nginx itself;
  - nothing else under /pollgate/ reaches the gateway (/pollgate/metrics, /pollgate/healthz are the
    example's JSON 404; a `.php` path does not fall to the site's PHP location), and a gateway that is
    down is a JSON 503 with Retry-After.

examples/laravel: every PHP file parses (php -l), and App\\Support\\PollgateToken, with Laravel's config()
stubbed, mints an HS256 JWT verified here with the key file's bytes (claims, expiry, aud/iss only when
configured). That a real gateway accepts such a token is the JWT work's test of examples/php/mint-jwt.php.
The Alpine glue is tested in tests/browser/unit/livewire-glue.test.js.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import subprocess
import time

import pytest

from helpers import REPO, ManyGets, get, make_demo_world, make_pack, make_run, set_pack, set_run, wait_for
from test_proxy import HEX32, Proxy, _start_proxy, find_program, get_from, substitute

EXAMPLES = REPO / "examples" / "nginx"
LOCATION_CONF = EXAMPLES / "pollgate-location.conf"
UPSTREAM_CONF = EXAMPLES / "pollgate-upstream.conf"


def render_site(tmpdir, listen_port, upstream_port):
    """A complete nginx.conf: the upstream example (server address rewritten) and a server {} block of a
    stand-in application that includes the location example as shipped."""
    upstream = substitute(UPSTREAM_CONF.read_text(), r"^(\s*)server\s+127\.0\.0\.1:8080;",
                          rf"\g<1>server 127.0.0.1:{upstream_port};", "upstream server")
    temp = "".join(f"    {d}_temp_path {tmpdir}/{d}_temp;\n" for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    user = "user root;" if os.geteuid() == 0 else ""
    return f"""{user}
worker_processes 1;
pid {tmpdir}/nginx.pid;
error_log {tmpdir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
{temp}
    log_format app '$remote_addr "$request" $status rid=$request_id';
    access_log {tmpdir}/access.log app;
{upstream}
    server {{
        listen 127.0.0.1:{listen_port};
        server_name _;
        include {LOCATION_CONF};
        location = /healthz {{ return 200 'app up'; }}
        location / {{ return 200 'the application'; }}
        location ~ \\.php$ {{ return 418 'php'; }}
    }}
}}
"""


@pytest.fixture
def site(tmp_path):
    """Factory: site(gw) -> Proxy running the stand-in site with the location example in front of `gw`."""
    binary = find_program("nginx")
    started = []

    def start(gw):
        def make(d, port):
            conf = d / "nginx.conf"
            conf.write_text(render_site(d, port, gw.port))
            check = subprocess.run([binary, "-t", "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf)],
                                   capture_output=True, text=True)
            assert check.returncode == 0, f"nginx -t refused the example:\n{check.stdout}{check.stderr}"
            argv = [binary, "-p", f"{d}/", "-e", f"{d}/error.log", "-c", str(conf), "-g", "daemon off;"]
            return Proxy("nginx", argv, port, d, d / "error.log", d / "access.log")
        p = _start_proxy(tmp_path, f"site{len(started)}-", make)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def world(db):
    return make_demo_world(db)


def example_gateway(gateway, **conf):
    """A gateway configured as pollgate-location.conf's comments say."""
    full = {"trusted_proxies": "127.0.0.1/32", "proxy_timeout": "65s"}
    full.update(conf)
    return gateway(**full)


def auth(etag=None, **extra):
    h = {"Authorization": "Bearer tok-alice"}
    if etag:
        h["If-None-Match"] = etag
    h.update(extra)
    return h


def held(gw):
    return gw.metrics().value("pollgate_waiters_held")


def client_of(gw, rid):
    return gw.wait_log(rf"rid={re.escape(rid)}\b[^\n]*client=(\S+)").group(1)


def test_location_example_holds_and_wakes_a_long_poll(gateway, site, world, db, notes):
    make_run(db, 1, 7, id=42, status="running", summary_counts={"total": 10, "processed": 1})
    make_pack(db, 1, 7, id=9, status="generating")
    gw = example_gateway(gateway)
    ngx = site(gw)
    url = ngx.url + "/pollgate/v1/runs/42"

    first = get(url + "?wait=0", headers=auth())
    assert first.status == 200 and first.etag, first
    assert first.json()["run"]["id"] == 42 and first.json()["state"] == "running"
    assert first.headers["Cache-Control"] == "no-store"
    assert HEX32.match(first.headers["X-Request-Id"]), "nginx's $request_id is the one echoed"

    # Held: the gateway counts three waiters, nothing is answered until the commit, then all wake.
    mg = ManyGets([(url + "?wait=30", auth(etag=first.etag))] * 3, timeout=45).start()
    mg.wait_sent()
    wait_for(lambda: held(gw) == 3, timeout=15, what="3 held long-polls through nginx")
    time.sleep(0.5)  # a window in which a buffering or short-cutting proxy would have answered
    assert held(gw) == 3
    t0 = time.monotonic()
    set_run(db, 42, summary_counts={"total": 10, "processed": 2})
    rs = mg.results()
    woke = time.monotonic() - t0
    assert [r.status for r in rs] == [200] * 3, rs
    assert all(r.json()["run"]["summary_counts"]["processed"] == 2 and r.etag != first.etag for r in rs)
    assert woke < 2.0, f"answered {woke:.3f}s after the commit"

    # Unchanged: a 304 with the same ETag after the wait, not cut short by nginx.
    r = get(url + "?wait=2", headers=auth(etag=rs[0].etag), timeout=20)
    assert r.status == 304 and r.etag == rs[0].etag and 1.9 <= r.elapsed < 6, r

    # The review-pack route through the same prefix, with Prefer: wait=.
    pack_url = ngx.url + "/pollgate/v1/tenants/7/review-pack"
    p0 = get(pack_url, headers=auth())
    assert p0.status == 200 and p0.json()["state"] == "generating"
    mg = ManyGets([(pack_url, auth(etag=p0.etag, Prefer="wait=30"))], timeout=45).start()
    mg.wait_sent()
    wait_for(lambda: held(gw) == 1, timeout=15, what="the held review-pack long-poll")
    set_pack(db, 9, status="ready")
    (p1,) = mg.results()
    assert p1.status == 200 and p1.json()["state"] == "ready" and p1.json()["poll"] is None, p1
    assert ngx.upstream_errors() == []
    notes(f"through examples/nginx: 3 held long-polls woke {woke * 1000:.0f} ms after the commit")


def test_location_example_trusts_forwarded_for_as_configured(gateway, site, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = example_gateway(gateway)
    ngx = site(gw)
    url = ngx.url + "/pollgate/v1/runs/42?wait=0"

    # A browser (127.0.0.3, untrusted) forging its address and a request id: the gateway's client is the
    # address nginx saw, and the id is nginx's.
    status, headers, _ = get_from("127.0.0.3", url, auth(**{"X-Forwarded-For": "203.0.113.7",
                                                            "X-Request-Id": "forged"}))
    assert status == 200
    rid = headers["x-request-id"]
    assert HEX32.match(rid) and rid != "forged"
    assert client_of(gw, rid) == "127.0.0.3"

    # A hop on a trusted address (a load balancer in front of nginx would be listed the same way) names the
    # browser: that name is taken.
    status, headers, _ = get_from("127.0.0.1", url, auth(**{"X-Forwarded-For": "203.0.113.7"}))
    assert status == 200
    assert client_of(gw, headers["x-request-id"]) == "203.0.113.7"

    # Without the trusted_proxies line every browser is nginx itself (one address for every cap).
    plain = gateway(proxy_timeout="65s")
    ngx2 = site(plain)
    status, headers, _ = get_from("127.0.0.3", ngx2.url + "/pollgate/v1/runs/42?wait=0", auth())
    assert status == 200
    assert client_of(plain, headers["x-request-id"]) == "127.0.0.1"


def test_location_example_exposes_only_the_resource_routes(gateway, site, world, db):
    make_run(db, 1, 7, id=42, status="running")
    gw = example_gateway(gateway)  # default metrics_allow includes 127.0.0.1, nginx's address
    ngx = site(gw)

    # /metrics would be served to anyone through a same-host proxy: the example keeps it inside.
    for path in ("/pollgate/metrics", "/pollgate/healthz", "/pollgate/readyz", "/pollgate/", "/pollgate/v2/runs/42"):
        r = get(ngx.url + path, headers=auth())
        assert r.status == 404 and r.json()["error"]["code"] == "not_found", (path, r)
        assert "X-Request-Id" not in r.headers, f"{path} reached the gateway"
    # The site's regex locations do not take /pollgate/ paths away (^~): the gateway answers.
    r = get(ngx.url + "/pollgate/v1/runs/42.php", headers=auth())
    assert r.status == 404 and r.json()["error"]["code"] == "not_found" and "X-Request-Id" in r.headers, r
    # The application's own paths are untouched.
    assert get(ngx.url + "/dashboard").body == b"the application"

    # The gateway down: nginx answers in pollgate's shape, with Retry-After, so the page backs off.
    gw.stop()
    r = get(ngx.url + "/pollgate/v1/runs/42?wait=0", headers=auth())
    assert r.status == 503 and r.headers["Retry-After"] == "2", r
    assert r.json()["error"]["code"] == "unavailable"


# --------------------------------------------------------------------------------------------------
# examples/laravel: the PHP files parse, and PollgateToken mints a JWT the gateway's rules accept


LARAVEL = REPO / "examples" / "laravel"


def find_php():
    path = shutil.which("php")
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail("php is not installed, and CI must run the PHP examples (apt-get install php-cli)")
    pytest.skip("php is not installed (apt-get install php-cli)")


def b64url_decode(seg):
    return base64.urlsafe_b64decode(seg + "=" * (-len(seg) % 4))


def test_laravel_php_examples_parse():
    php = find_php()
    files = sorted(p for p in LARAVEL.rglob("*.php") if not p.name.endswith(".blade.php"))
    assert len(files) >= 5, files
    for f in files:
        r = subprocess.run([php, "-l", str(f)], capture_output=True, text=True)
        assert r.returncode == 0, f"{f}: {r.stdout}{r.stderr}"


MINT = r"""
namespace { function config($k, $d = null) { global $CONF; return array_key_exists($k, $CONF) ? $CONF[$k] : $d; } }
namespace {
    $CONF = json_decode($argv[1], true);
    require $argv[2];
    echo App\Support\PollgateToken::mint((int) $argv[3], (int) $argv[4]);
}
"""


@pytest.mark.parametrize("audience, issuer", [(None, None), ("pollgate", "https://admin.example.com")])
def test_laravel_token_class_mints_a_short_lived_hs256_jwt(tmp_path, audience, issuer):
    """App\\Support\\PollgateToken with Laravel's config() stubbed: the token is three base64url segments
    (no padding), HS256 over the first two with the key file's exact bytes (a trailing newline included),
    `sub` the user id as decimal digits, exp = now + ttl, and `aud`/`iss` only when configured (the
    gateway refuses an `aud` it was not told to expect)."""
    php = find_php()
    key = tmp_path / "jwt.key"
    key.write_bytes(b"k" * 40 + b"\n")
    conf = {"pollgate.jwt_key_file": str(key), "pollgate.audience": audience, "pollgate.issuer": issuer}
    t0 = int(time.time())
    r = subprocess.run([php, "-r", MINT, "--", json.dumps(conf), str(LARAVEL / "app/Support/PollgateToken.php"), "42", "120"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    token = r.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", token), token
    head, body, sig = token.split(".")
    assert json.loads(b64url_decode(head)) == {"alg": "HS256", "typ": "JWT"}
    want = hmac.new(key.read_bytes(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    assert hmac.compare_digest(b64url_decode(sig), want), "signature is not HS256 with the key file's bytes"
    claims = json.loads(b64url_decode(body))
    assert claims["sub"] == "42"
    assert t0 - 2 <= claims["iat"] <= claims["nbf"] <= t0 + 5
    assert claims["exp"] - claims["iat"] == 120
    assert claims.get("aud") == audience and claims.get("iss") == issuer
    if audience is None:
        assert "aud" not in claims and "iss" not in claims

    # A key file too short to be a secret is refused, not signed with.
    key.write_bytes(b"short")
    r = subprocess.run([php, "-r", MINT, "--", json.dumps(conf), str(LARAVEL / "app/Support/PollgateToken.php"), "42", "120"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "at least 32 bytes" in (r.stdout + r.stderr)
