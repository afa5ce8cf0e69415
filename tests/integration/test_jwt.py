"""Signed tokens (JWT) minted by the application, verified by a real gateway: issue 10.

Keys are made with the openssl CLI; tokens are signed here (HS256 with hmac, RS256/ES256 with `openssl dgst`,
the ES256 DER signature rewritten as JOSE r||s) or by examples/php/mint-jwt.php under Debian's php-cli.
Entitlement still comes from SQL on every read, so the demo world's memberships decide what a JWT may see.
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
from pathlib import Path

import pytest

from helpers import (REPO, ManyGets, comparable, make_demo_world, make_run, make_token, run_pollgate, set_run,
                     wait_for)

PHP_MINT = REPO / "examples" / "php" / "mint-jwt.php"


# ---- keys and signing ----

def openssl(*args, input=None):
    return subprocess.run(["openssl", *args], check=True, capture_output=True, input=input).stdout


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    """{"hs": (key file, secret bytes), "rs": (public PEM file, private PEM file), "es": (...), ...}"""
    d = tmp_path_factory.mktemp("jwt-keys")
    out = {}
    hs = d / "hs.key"
    openssl("rand", "-out", str(hs), "48")
    out["hs"] = (hs, hs.read_bytes())
    hs2 = d / "hs2.key"
    openssl("rand", "-out", str(hs2), "48")
    out["hs2"] = (hs2, hs2.read_bytes())
    for name, gen in (("rs", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                      ("es", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]),
                      ("p384", ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"])):
        priv, pub = d / f"{name}.priv.pem", d / f"{name}.pub.pem"
        openssl("genpkey", *gen, "-out", str(priv))
        openssl("pkey", "-in", str(priv), "-pubout", "-out", str(pub))
        out[name] = (pub, priv)
    return out


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_jose(der):
    """ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (short DER lengths for P-256) -> r||s."""
    assert der[0] == 0x30
    i = 2
    parts = []
    for _ in range(2):
        assert der[i] == 0x02
        n = der[i + 1]
        v = der[i + 2:i + 2 + n].lstrip(b"\0")
        parts.append(v.rjust(32, b"\0"))
        i += 2 + n
    return parts[0] + parts[1]


def jwt(keys, kind, claims=None, header=None, sub="1", ttl=300, secret=None):
    """A token signed with key `kind` ("hs", "hs2", "rs", "es"); alg from the kind unless `header` says."""
    alg = {"hs": "HS256", "hs2": "HS256", "rs": "RS256", "es": "ES256"}[kind]
    h = header if header is not None else {"alg": alg, "typ": "JWT"}
    c = {"sub": sub, "exp": int(time.time()) + ttl} if claims is None else claims
    si = (b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(c).encode())).encode()
    if kind.startswith("hs") or secret is not None:
        sig = hmac.new(secret if secret is not None else keys[kind][1], si, hashlib.sha256).digest()
    else:
        sig = openssl("dgst", "-sha256", "-sign", str(keys[kind][1]), input=si)
        if kind == "es":
            sig = der_to_jose(sig)
    return si.decode() + "." + b64url(sig)


@pytest.fixture
def world(db):
    w = make_demo_world(db)
    make_run(db, 1, 7, id=42, status="running", started_at=None)  # alice (user 1) may see it
    make_run(db, 2, 9, id=43, status="running")  # alice may not
    return w


def token_lookups(pg):
    return sum(s["calls"] for s in pg.statements() if "access_tokens" in s["query"])


def held(gw):
    return gw.metrics().value("pollgate_waiters_held", kind="run")


def hold(gw, token, etag, wait=30):
    mg = ManyGets([(gw.url + f"/v1/runs/42?wait={wait}", {"Authorization": f"Bearer {token}", "If-None-Match": etag})],
                  timeout=wait + 20).start()
    mg.wait_sent()
    return mg


def assert_unauthorized(r):
    assert r.status == 401, r
    assert r.headers.get("WWW-Authenticate") == "Bearer"
    assert r.headers.get("Content-Type", "").startswith("application/json")
    assert r.json()["error"]["code"] == "unauthorized"


def assert_never_logged(gw, tokens):
    log = gw.log()
    for t in tokens:
        for piece in [t] + [p for p in t.split(".")[1:] if len(p) >= 16]:  # the claims and signature segments
            assert piece not in log, f"a JWT (or part of it) is in the log: {piece[:20]}..."


# ---- accepted ----

@pytest.mark.parametrize("kind", ["hs", "rs", "es"])
def test_each_key_type_accepts_a_good_token_as_bearer_and_as_cookie(gateway, world, keys, kind):
    gw = gateway(jwt_key_file=keys[kind][0])
    tok = jwt(keys, kind)
    r = gw.get("/v1/runs/42?wait=0", token=tok)
    assert r.status == 200, r
    assert r.json()["run"]["id"] == 42
    r = gw.get("/v1/runs/42?wait=0", headers={"Cookie": f"other=1; pollgate_token={tok}"})
    assert r.status == 200, r
    # Entitlement is SQL's: the same valid JWT does not open another workspace's run.
    assert gw.get("/v1/runs/43?wait=0", token=tok).status == 404
    assert gw.get("/v1/runs/42?wait=0", token=jwt(keys, kind, sub="3")).status == 404  # eve
    assert_never_logged(gw, [tok])
    assert "jwt refused" not in gw.log()


def test_a_jwt_is_never_looked_up_in_sql(gateway, world, keys, pg):
    gw = gateway(jwt_key_file=keys["hs"][0], auth_cache_ttl="0s")
    tok = jwt(keys, "hs")
    before = token_lookups(pg)
    for _ in range(3):
        assert gw.get("/v1/runs/42?wait=0", token=tok).status == 200
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200  # a table token is looked up
    assert token_lookups(pg) - before == 1


# ---- refused ----

def test_every_refusal_is_the_401_of_a_bad_table_token(gateway, world, keys, db):
    gw = gateway(jwt_key_file=keys["hs"][0], jwt_audience="pollgate", jwt_issuer="https://app.example")
    now = int(time.time())
    good = {"sub": "1", "exp": now + 300, "aud": "pollgate", "iss": "https://app.example"}
    ok = jwt(keys, "hs", claims=good)
    assert gw.get("/v1/runs/42?wait=0", token=ok).status == 200
    assert gw.get("/v1/runs/42?wait=0", token=jwt(keys, "hs", claims=dict(good, aud=["x", "pollgate"]))).status == 200

    def c(**kw):
        d = dict(good)
        for k, v in kw.items():
            if v is None:
                d.pop(k)
            else:
                d[k] = v
        return d

    head, body, sig = ok.split(".")
    bad = {
        "wrong secret": jwt(keys, "hs2", claims=good),
        "alg none": jwt(keys, "hs", claims=good, header={"alg": "none"}).rsplit(".", 1)[0] + ".",
        "alg none, signed": jwt(keys, "hs", claims=good, header={"alg": "none"}),
        "expired": jwt(keys, "hs", claims=c(exp=now - 10)),
        "nbf far future": jwt(keys, "hs", claims=c(nbf=now + 10 ** 6)),
        "exp missing": jwt(keys, "hs", claims=c(exp=None)),
        "aud other": jwt(keys, "hs", claims=c(aud="api")),
        "aud missing": jwt(keys, "hs", claims=c(aud=None)),
        "iss other": jwt(keys, "hs", claims=c(iss="https://evil.example")),
        "sub not numeric": jwt(keys, "hs", claims=c(sub="alice")),
        "sub negative": jwt(keys, "hs", claims=c(sub=-1)),
        "sub huge": jwt(keys, "hs", claims=c(sub="9223372036854775808")),
        "RS256 header": jwt(keys, "hs", claims=good, header={"alg": "RS256"}),
        "claims swapped under a good signature": f"{head}.{b64url(json.dumps(c(sub='3')).encode())}.{sig}",
        "padding": ok + "=",
        "bad base64url": "!" + ok[1:],
        "header not JSON": f"{b64url(b'nope')}.{body}.{sig}",
    }
    table = gw.get("/v1/runs/42?wait=0", token="not-a-known-token")
    assert_unauthorized(table)
    for name, tok in bad.items():
        r = gw.get("/v1/runs/42?wait=0", token=tok)
        assert_unauthorized(r)
        assert comparable(r) == comparable(table), name
        r = gw.get("/v1/runs/42?wait=0", headers={"Cookie": f"pollgate_token={tok}"})
        assert comparable(r) == comparable(table), name + " (cookie)"
    # Each refusal's reason is in the debug log; no token is.
    gw.wait_log(r"jwt refused\" reason=\"bad signature\"")
    for reason in ("alg none", "expired", "nbf", "exp missing", "aud does not name", "aud missing",
                   "iss does not match", "sub is not", "alg not the one", "padding", "header is not"):
        assert re.search(r'jwt refused" reason="[^"]*' + re.escape(reason), gw.log()), reason
    assert_never_logged(gw, [ok] + list(bad.values()))


def test_alg_confusion_with_a_public_key_is_refused(gateway, world, keys):
    for kind in ("rs", "es"):
        gw = gateway(jwt_key_file=keys[kind][0])
        pem = Path(keys[kind][0]).read_bytes()
        forged = jwt(keys, "hs", header={"alg": "HS256", "typ": "JWT"}, secret=pem)
        assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=forged))
        assert gw.get("/v1/runs/42?wait=0", token=jwt(keys, kind)).status == 200
        other = "es" if kind == "rs" else "rs"
        assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=jwt(keys, other)))
        gw.wait_log(r"jwt refused\" reason=\"alg not the one the configured key allows\"")
        gw.stop()


# ---- held requests ----

def test_a_held_request_is_answered_401_not_new_state_once_its_jwt_expired(gateway, world, keys, db):
    gw = gateway(jwt_key_file=keys["es"][0])
    exp = int(time.time()) + 3
    short = jwt(keys, "es", claims={"sub": "1", "exp": exp})
    long = jwt(keys, "es")
    etag = gw.get("/v1/runs/42?wait=0", token=short).etag
    mg_short, mg_long = hold(gw, short, etag), hold(gw, long, etag)
    wait_for(lambda: held(gw) == 2, timeout=15, what="2 held")
    wait_for(lambda: time.time() > exp + 0.3, timeout=10, what="the short token's exp")
    set_run(db, 42, summary_counts={"total": 2, "processed": 1})
    (r_short,), (r_long,) = mg_short.results(), mg_long.results()
    assert_unauthorized(r_short)
    assert r_long.status == 200 and r_long.json()["run"]["summary_counts"] == {"total": 2, "processed": 1}
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=short))


def test_a_lost_membership_reaches_a_held_jwt_request_as_404(gateway, world, keys, db, pg):
    gw = gateway(jwt_key_file=keys["rs"][0], auth_cache_ttl="1h")
    tok = jwt(keys, "rs")
    lookups = token_lookups(pg)
    etag = gw.get("/v1/runs/42?wait=0", token=tok).etag
    mg = hold(gw, tok, etag)
    wait_for(lambda: held(gw) == 1, timeout=15, what="1 held")
    t0 = time.monotonic()
    with db.cursor() as cur:
        cur.execute("DELETE FROM workspace_memberships WHERE user_id = 1 AND workspace_id = 1")
    (r,) = mg.results()
    assert r.status == 404, r
    assert time.monotonic() - t0 < 5.0
    assert gw.get("/v1/runs/42?wait=0", token=tok).status == 404
    # The hint re-checked entitlement; it did not make the JWT a table lookup.
    assert token_lookups(pg) == lookups


# ---- table tokens beside JWTs ----

def test_table_tokens_keep_working_beside_jwts(gateway, world, keys, db):
    make_token(db, 1, "a.b.c")  # a table token with the shape of a JWT
    gw = gateway(jwt_key_file=keys["hs"][0])
    assert gw.get("/v1/runs/42?wait=0", token="tok-alice").status == 200
    assert gw.get("/v1/runs/42?wait=0", token=jwt(keys, "hs")).status == 200
    # With a key configured, a credential shaped like a JWT is verified as one, never looked up.
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token="a.b.c"))
    gw.stop()
    # Without jwt_key_file (today's behaviour) it is an opaque table token, and a JWT is just unknown.
    gw = gateway()
    assert gw.get("/v1/runs/42?wait=0", token="a.b.c").status == 200
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=jwt(keys, "hs")))


# ---- configuration ----

def test_reload_rereads_the_key_file_and_a_bad_one_keeps_the_old_key(gateway, world, keys, tmp_path):
    key = tmp_path / "rotating.key"
    shutil.copy(keys["hs"][0], key)
    gw = gateway(jwt_key_file=key)
    old, new = jwt(keys, "hs"), jwt(keys, "hs2")
    assert gw.get("/v1/runs/42?wait=0", token=old).status == 200
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=new))

    shutil.copy(keys["hs2"][0], key)
    gw.reload()
    gw.wait_log(r"config reloaded")
    assert gw.get("/v1/runs/42?wait=0", token=new).status == 200
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=old))

    key.write_bytes(b"short\n")
    gw.reload()
    m = gw.wait_log(r'config rejected" error="[^"]*jwt_key_file \'[^\']*\' holds an HS256 secret of 6 bytes[^"]*"')
    assert f"{gw.conf_path}:" in m.group(0)
    assert gw.get("/v1/runs/42?wait=0", token=new).status == 200  # the old config, its key included


def test_check_config_reports_each_bad_key_file_on_its_line(keys, tmp_path):
    priv = keys["rs"][1]
    cases = {
        "missing": (tmp_path / "nope.key", "cannot be opened: No such file or directory"),
        "empty": (tmp_path / "empty.key", "is empty"),
        "private key": (priv, "is a private key"),
        "P-384": (keys["p384"][0], "holds an EC key on curve 'secp384r1'; only P-256 (ES256) is supported"),
        "short secret": (tmp_path / "short.key", "holds an HS256 secret of 10 bytes"),
    }
    (tmp_path / "empty.key").write_bytes(b"")
    (tmp_path / "short.key").write_bytes(b"0123456789")
    for name, (path, msg) in cases.items():
        conf = tmp_path / "c.conf"
        conf.write_text(f"# x\n\njwt_key_file = {path}\n")
        p = run_pollgate("--check-config", "-c", conf)
        assert p.returncode != 0, name
        assert f"{conf}:3: jwt_key_file '{path}' {msg}" in p.stderr, (name, p.stderr)
    conf.write_text(f"jwt_key_file = {keys['es'][0]}\njwt_audience = pollgate\n")
    p = run_pollgate("--check-config", "-c", conf)
    assert p.returncode == 0, p.stderr


# ---- the PHP example ----

def php(*args, env=None):
    php_bin = shutil.which("php")
    if php_bin is None:
        pytest.fail("php-cli is not installed (scripts/deps.sh installs it)")
    full = dict(os.environ)
    full.update(env or {})
    p = subprocess.run([php_bin, str(PHP_MINT), *map(str, args)], capture_output=True, text=True, env=full, timeout=30)
    return p


def test_php_example_mints_a_token_the_gateway_accepts(gateway, world, keys):
    gw = gateway(jwt_key_file=keys["hs"][0], jwt_audience="pollgate", jwt_issuer="https://app.example")
    p = php(1, 60, f"--secret-file={keys['hs'][0]}", "--aud=pollgate", "--iss=https://app.example")
    assert p.returncode == 0, p.stderr
    tok = p.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}", tok), tok
    assert gw.get("/v1/runs/42?wait=0", token=tok).status == 200
    assert gw.get("/v1/runs/42?wait=0", headers={"Cookie": f"pollgate_token={tok}"}).status == 200
    # The same from the environment, as an app would configure it.
    p = php(1, env={"POLLGATE_JWT_SECRET_FILE": str(keys["hs"][0]), "POLLGATE_JWT_AUDIENCE": "pollgate",
                    "POLLGATE_JWT_ISSUER": "https://app.example"})
    assert p.returncode == 0, p.stderr
    assert gw.get("/v1/runs/42?wait=0", token=p.stdout.strip()).status == 200
    assert_never_logged(gw, [tok])


def test_php_example_expired_or_wrongly_signed_tokens_are_refused(gateway, world, keys):
    gw = gateway(jwt_key_file=keys["hs"][0])
    expired = php(1, -10, f"--secret-file={keys['hs'][0]}")
    assert expired.returncode == 0, expired.stderr
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=expired.stdout.strip()))
    wrong = php(1, 60, f"--secret-file={keys['hs2'][0]}")
    assert wrong.returncode == 0, wrong.stderr
    assert_unauthorized(gw.get("/v1/runs/42?wait=0", token=wrong.stdout.strip()))
    good = php(1, 60, f"--secret-file={keys['hs'][0]}")
    assert gw.get("/v1/runs/42?wait=0", token=good.stdout.strip()).status == 200
    gw.wait_log(r"jwt refused\" reason=\"expired\"")
    gw.wait_log(r"jwt refused\" reason=\"bad signature\"")
    # The script refuses what the gateway would refuse anyway.
    assert php("abc", f"--secret-file={keys['hs'][0]}").returncode == 2
    assert php(0, f"--secret-file={keys['hs'][0]}").returncode == 2
    assert php(1, env={"POLLGATE_JWT_SECRET": "too short"}).returncode == 2
