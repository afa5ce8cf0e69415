"""The command line as an operator meets it: -h/--help, a usage line that names every flag the binary
accepts (read from gateway/main.c's option table, so a new flag without usage text fails here),
--print-config without the database password, and range errors that show the value given.
No database needed: each test runs the binary to completion.
"""

import re

from helpers import REPO, run_pollgate


def _flags_in_source():
    src = (REPO / "gateway" / "main.c").read_text()
    longs = set(re.findall(r'\{"([a-z-]+)", (?:no|required|optional)_argument', src))
    shorts = set(re.search(r'getopt_long\(argc, argv, "([^"]*)"', src).group(1).replace(":", ""))
    return longs, shorts


def test_help_prints_the_usage_and_exits_0():
    for flag in ("-h", "--help"):
        r = run_pollgate(flag)
        assert r.returncode == 0, (flag, r.returncode, r.stderr)
        assert r.stdout.startswith("usage: pollgate "), r.stdout
        assert r.stderr == ""


def test_usage_line_names_every_flag():
    longs, shorts = _flags_in_source()
    assert {"config", "check-config", "print-config", "version", "help"} <= longs
    usage = run_pollgate("--help").stdout
    first = usage.splitlines()[0]
    for name in longs:
        if name == "config":
            continue  # the usage line shows it as -c FILE; its own line below names --config
        assert f"--{name}" in first, f"--{name} missing from the usage line: {first}"
    for ch in shorts:
        assert f"-{ch}" in first, f"-{ch} missing from the usage line: {first}"
    for name in longs:
        assert re.search(rf"^\s+(-\w, )?--{name}\b", usage, re.M), f"no line explains --{name}:\n{usage}"
    bad = run_pollgate("--no-such-flag")
    assert bad.returncode == 2 and "usage: pollgate" in bad.stderr


def test_print_config_redacts_the_password_in_both_forms(tmp_path):
    cases = {
        "postgresql://gw:s3cret-uri@db.example:5432/app?sslmode=require":
            "postgresql://gw:REDACTED@db.example:5432/app?sslmode=require",
        "postgresql://gw@db.example/app?password=s3cret-param&sslmode=require":
            "postgresql://gw@db.example/app?password=REDACTED&sslmode=require",
        '"host=db.example user=gw password=s3cret-kv dbname=app"':
            "host=db.example user=gw password=REDACTED dbname=app",
        "\"host=db.example password='s3cret quoted\\\\' one' dbname=app\"":
            "host=db.example password=REDACTED dbname=app",
    }
    for value, want in cases.items():
        conf = tmp_path / "p.conf"
        conf.write_text(f"database = {value}\n")
        r = run_pollgate("--print-config", "-c", conf)
        assert r.returncode == 0, r.stderr
        assert "s3cret" not in r.stdout + r.stderr, r.stdout
        line = next(l for l in r.stdout.splitlines() if l.startswith("database = "))
        assert line.split(" = ", 1)[1].strip('"') == want, line
        # what it prints loads again
        again = tmp_path / "again.conf"
        again.write_text(r.stdout)
        assert run_pollgate("--check-config", "-c", again).returncode == 0


def test_range_errors_show_the_value_given(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# bad values\n" + "\n" * 6 + "max_waiters = -5\nmax_wait = 2h\nmax_header_size = 2MiB\n")
    r = run_pollgate("--check-config", "-c", conf)
    assert r.returncode != 0
    assert f"{conf}:8: max_waiters must be between 1 and 10000000 (got -5)" in r.stderr, r.stderr
    assert f"{conf}:9: max_wait must be between 1s and 1h (got 2h)" in r.stderr, r.stderr
    assert f"{conf}:10: max_header_size must be between 1KiB and 1MiB (got 2MiB)" in r.stderr, r.stderr
