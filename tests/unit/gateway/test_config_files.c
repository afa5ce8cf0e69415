/*
 * tests/unit/gateway/test_config_files.c — the config file (gateway/config.c) as an operator meets it: errors,
 * files, --print-config and reload.
 *
 * Owns: each error reported on its line ("NAME:LINE: message", checked as exact text, so the line
 * numbers an operator sees are part of the contract), all errors collected line errors first then cross
 * field, unreadable files, NUL bytes, over-long lines, JWT key files, --print-config writing back only
 * what loads again and never the database password, reload keeping the restart-only keys, and random
 * input that must never crash or leak. The key table itself is in test_config.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "gateway/config.h"
#include "config_helpers.h"

/* ---- errors: one case, one error, on the right line ---- */

struct err_case {
	const char *name;
	const char *text;
	int line;
	const char *msg;  /* the whole message after "t:LINE: " */
	bool prefix_only; /* msg is only its beginning (text from policy/) */
};

static const struct err_case err_cases[] = {
	{"line without '='", "max_wait 5s\n", 1, "expected 'key = value' (no '=' on this line)", false},
	{"empty key", "\n= 5s\n", 2, "missing key before '='", false},
	{"unknown key", "foo = 1\n", 1, "unknown key 'foo'", false},
	{"unknown key far from any", "listen_address = x\n", 1, "unknown key 'listen_address'", false},
	{"unknown key, transposed letters", "# c\nmax_wiat = 5s\n", 2, "unknown key 'max_wiat' (did you mean 'max_wait'?)",
	 false},
	{"unknown key, wrong case", "Max_Wait = 5s\n", 1, "unknown key 'Max_Wait' (did you mean 'max_wait'?)", false},
	{"unknown key, space for underscore", "max wait = 5s\n", 1, "unknown key 'max wait' (did you mean 'max_wait'?)",
	 false},
	{"duplicate key", "max_wait = 60s\n\nmax_wait = 61s\n", 3, "duplicate key 'max_wait' (first set on line 1)", false},
	{"duration without unit", "max_wait = 5\n", 1, "invalid duration '5' for max_wait: use a number with ms, s, m or h",
	 false},
	{"empty value", "max_wait =\n", 1, "max_wait needs a value", false},
	{"empty quoted value", "auth_cookie = \"\"\n", 1, "auth_cookie needs a value", false},
	{"bad integer", "db_pool_size = two\n", 1, "invalid integer 'two' for db_pool_size: use a whole number", false},
	{"integer with unit", "max_waiters = 10k\n", 1, "invalid integer '10k' for max_waiters: use a whole number", false},
	{"integer out of bounds", "db_pool_size = 65\n", 1, "db_pool_size must be between 1 and 64 (got 65)", false},
	{"duration out of bounds", "max_wait = 2h\n", 1, "max_wait must be between 1s and 1h (got 2h)", false},
	{"duration below bounds", "db_reconnect_min = 5ms\n", 1, "db_reconnect_min must be between 10ms and 1m (got 5ms)", false},
	{"size out of bounds", "max_header_size = 2MiB\n", 1, "max_header_size must be between 1KiB and 1MiB (got 2MiB)", false},
	{"bad size unit", "max_header_size = 8KB\n", 1,
	 "invalid size '8KB' for max_header_size: use a number with B, KiB or MiB", false},
	{"bad log level", "log_level = verbose\n", 1, "invalid log_level 'verbose': use error, warn, info or debug", false},
	{"bad log format", "log_format = text\n", 1, "invalid log_format 'text': use logfmt or json", false},
	{"bad CIDR names its element", "metrics_allow = 10.0.0.0/8, 10.0.0.0/33\n", 1,
	 "invalid CIDR '10.0.0.0/33' in metrics_allow (element 2)", false},
	{"bad CIDR junk", "trusted_proxies = 10.0.0.1x\n", 1, "invalid CIDR '10.0.0.1x' in trusted_proxies (element 1)",
	 false},
	{"listen without port", "listen = 127.0.0.1\n", 1, "invalid listen address '127.0.0.1': expected ADDRESS:PORT",
	 false},
	{"listen port 0", "listen = 127.0.0.1:0\n", 1,
	 "invalid listen address '127.0.0.1:0': the port must be a number between 1 and 65535", false},
	{"listen port 65536", "listen = 0.0.0.0:65536\n", 1,
	 "invalid listen address '0.0.0.0:65536': the port must be a number between 1 and 65535", false},
	{"listen empty port", "listen = 0.0.0.0:\n", 1,
	 "invalid listen address '0.0.0.0:': the port must be a number between 1 and 65535", false},
	{"listen host name", "listen = example.com:80\n", 1,
	 "invalid listen address 'example.com:80': the address must be an IPv4 address, [IPv6] or localhost", false},
	{"listen empty host", "listen = :80\n", 1,
	 "invalid listen address ':80': the address must be an IPv4 address, [IPv6] or localhost", false},
	{"listen IPv6 without brackets", "listen = ::1:8080\n", 1,
	 "invalid listen address '::1:8080': write an IPv6 address in brackets, as [::1]:8080", false},
	{"listen IPv4 in brackets", "listen = [127.0.0.1]:80\n", 1,
	 "invalid listen address '[127.0.0.1]:80': the address must be an IPv4 address, [IPv6] or localhost", false},
	{"listen unclosed bracket", "listen = [::1:80\n", 1,
	 "invalid listen address '[::1:80': missing ']' after the IPv6 address", false},
	{"unterminated quote", "\n\nlog_file = \"abc\n", 3, "unterminated quote in value of log_file", false},
	{"unterminated quote, escaped closing", "log_file = \"abc\\\"\n", 1, "unterminated quote in value of log_file",
	 false},
	{"unknown escape", "log_file = \"a\\nb\"\n", 1,
	 "invalid escape '\\n' in quoted value of log_file: only \\\" and \\\\ are known", false},
	{"text after the closing quote", "log_file = \"a\" b\n", 1, "unexpected text after the closing quote of log_file",
	 false},
	{"bad cookie name", "auth_cookie = a;b\n", 1, "invalid cookie name 'a;b' for auth_cookie: ", true},
	{"jwt key file missing", "\njwt_key_file = /nonexistent/pollgate.key\n", 2,
	 "jwt_key_file '/nonexistent/pollgate.key' cannot be opened: No such file or directory", false},
	{"jwt key file a directory", "jwt_key_file = /tmp\n", 1, "jwt_key_file '/tmp' is not a regular file", false},
	{"jwt audience without a key", "jwt_issuer = https://app\n\njwt_audience = pollgate\n", 3,
	 "jwt_audience and jwt_issuer need jwt_key_file (no JWT is verified without a key)", false},
	{"policy list error", "run_active_statuses = Queued\n", 1, "invalid run_active_statuses: ", true},
	{"policy schedule error", "run_poll_schedule = 10s:1s\n", 1, "invalid run_poll_schedule: ", true},
	{"policy outcomes error", "run_outcome_states = succeeded\n", 1, "invalid run_outcome_states: ", true},
	{"completed status is one name", "run_completed_status = done finished\n", 1,
	 "invalid run_completed_status: give exactly one status name", false},
	{"cross: default_wait alone over max_wait", "default_wait = 1m\n", 1,
	 "default_wait (1m) must not be longer than max_wait (55s)", false},
	{"cross: on the later line (max_wait)", "default_wait = 30s\n# x\nmax_wait = 20s\n", 3,
	 "default_wait (30s) must not be longer than max_wait (20s)", false},
	{"cross: on the later line (default_wait)", "max_wait = 20s\n\n\ndefault_wait = 30s\n", 4,
	 "default_wait (30s) must not be longer than max_wait (20s)", false},
	{"cross: not reported when a value is already bad", "default_wait = 30s\nmax_wait = 20\n", 2,
	 "invalid duration '20' for max_wait: use a number with ms, s, m or h", false},
	{"cross: reconnect min over max", "db_reconnect_max = 100ms\n", 1,
	 "db_reconnect_min (250ms) must not be longer than db_reconnect_max (100ms)", false},
	{"bad hint source", "hint_source = wal\n", 1, "invalid hint_source 'wal': use notify or logical", false},
	{"empty hint source", "hint_source =\n", 1, "hint_source needs a value", false},
	{"heartbeat below bounds", "db_heartbeat = 50ms\n", 1, "db_heartbeat must be between 100ms and 5m (got 50ms)", false},
	{"cross: max_wait too close to proxy_timeout", "proxy_timeout = 59s\n", 1,
	 "max_wait (55s) must be at least 5s below proxy_timeout (59s)", true},
	{"cors: wildcard with credentials", "cors_origins = *\n", 1,
	 "cors_origins: '*' cannot be used with credentials; list each origin", false},
	{"cors: a path is not an origin", "cors_origins = https://a.example.com/x\n", 1,
	 "cors_origins: 'https://a.example.com/x' is not an origin", true},
	{"cross: pack lists overlap", "pack_active_statuses = queued\n\npack_terminal_statuses = ready queued\n", 3,
	 "status 'queued' is in both pack_active_statuses and pack_terminal_statuses", false},
	{"cross: completed status is active", "run_active_statuses = queued running completed\n", 1,
	 "run_completed_status 'completed' is also in run_active_statuses", false},
	{"cross: active list set later", "run_completed_status = running\nrun_active_statuses = queued running\n", 2,
	 "run_completed_status 'running' is also in run_active_statuses", false},
	{"junk bytes are shown escaped", "\x01\xff junk = 1\n", 1, "unknown key '\\x01\\xff junk'", false},
};

static void test_each_error_is_reported_with_its_line(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
		const struct err_case *tc = &err_cases[i];
		char want[512], *errs = NULL;
		int n = -1;
		conf *c = load(tc->text, &n, &errs);
		size_t wlen;

		snprintf(want, sizeof want, "t:%d: %s%s", tc->line, tc->msg, tc->prefix_only ? "" : "\n");
		wlen = strlen(want);
		if (c != NULL || n != 1 || strncmp(errs, want, wlen) != 0 ||
		    (tc->prefix_only && (strchr(errs, '\n') == NULL || strchr(errs, '\n')[1] != '\0')) ||
		    (!tc->prefix_only && errs[wlen] != '\0'))
			fail_msg("case '%s': got %d error(s):\n%swant:\n%s", tc->name, n, errs, want);
		free(errs);
	}
}

static void test_errors_are_all_collected_line_errors_first_then_cross_field(void **state)
{
	static const char text[] = "# a config with seven mistakes\n"
	                           "max_wiat = 30s\n"
	                           "listen = 127.0.0.1:80\n"
	                           "db_pool_size = 0\n"
	                           "\n"
	                           "listen = 127.0.0.1:81\n"
	                           "log_level = loud\n"
	                           "metrics_allow = ::1 300.1.1.1/8\n"
	                           "default_wait = 1m\n"
	                           "log_level = debug\n";
	static const char want[] = "t:2: unknown key 'max_wiat' (did you mean 'max_wait'?)\n"
	                           "t:4: db_pool_size must be between 1 and 64 (got 0)\n"
	                           "t:6: duplicate key 'listen' (first set on line 3)\n"
	                           "t:7: invalid log_level 'loud': use error, warn, info or debug\n"
	                           "t:8: invalid CIDR '300.1.1.1/8' in metrics_allow (element 2)\n"
	                           "t:10: duplicate key 'log_level' (first set on line 7)\n"
	                           "t:9: default_wait (1m) must not be longer than max_wait (55s)\n";
	char *errs = NULL;
	int n = -1;
	conf *c = load(text, &n, &errs);
	(void)state;

	assert_null(c);
	assert_int_equal(n, 7);
	assert_string_equal(errs, want);
	free(errs);
}

static void test_errors_go_nowhere_when_errs_is_null(void **state)
{
	int n = -1;
	conf *c = conf_load_string("t", "foo = 1\nbar = 2\n", NULL, &n);
	(void)state;

	assert_null(c);
	assert_int_equal(n, 2);
}

static void test_unreadable_file_is_one_error(void **state)
{
	char *errs = NULL;
	size_t len = 0;
	FILE *f;
	int n = -1;
	conf *c;
	(void)state;

	f = open_memstream(&errs, &len);
	c = conf_load("/nonexistent/pollgate.conf", f, &n);
	fclose(f);
	assert_null(c);
	assert_int_equal(n, 1);
	assert_string_equal(errs, "/nonexistent/pollgate.conf: cannot open: No such file or directory\n");
	free(errs);

	errs = NULL;
	f = open_memstream(&errs, &len);
	c = conf_load("conf", f, &n); /* a directory opens but does not read */
	fclose(f);
	assert_null(c);
	assert_int_equal(n, 1);
	assert_string_equal(errs, "conf: cannot read: Is a directory\n");
	free(errs);
}

/* Write bytes to a temporary file; returns its path (static buffer). */
static const char *temp_file(const void *bytes, size_t len)
{
	static char path[64];
	int fd;

	snprintf(path, sizeof path, "/tmp/test_config.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	close(fd);
	return path;
}

/* jwt_key_file: the key is read when the file is parsed; each bad key file is one error on its line. */
static void test_jwt_key_files(void **state)
{
	static const char p384[] = "-----BEGIN PUBLIC KEY-----\n"
	                           "MHYwEAYHKoZIzj0CAQYFK4EEACIDYgAEegsTVse5Iae47tGR+tU8aR+rH70EOg1z\n"
	                           "Ctb8b9SYYAZhFpuD9+xCdMU5od06ZAi06fe3QFxn8bKtSnpgsWepkEj0j3tamy0V\n"
	                           "TGPNJ/WKzc3qoL0HHK5sNbDHvtfBnOPc\n"
	                           "-----END PUBLIC KEY-----\n";
	static const char p256[] = "-----BEGIN PUBLIC KEY-----\n"
	                           "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEfK2HYVCjbtF0CiSz+Kp2YX1X49KK\n"
	                           "/1xfU4mx+LCQ96FqvNMj7mPHnd4J+CmAhTexUQBaKk5V/NwXgEItiQYoug==\n"
	                           "-----END PUBLIC KEY-----\n";
	static const char priv[] = "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n";
	static const struct {
		const char *name, *bytes, *msg; /* msg NULL: accepted */
		int alg;
	} cases[] = {
		{"HS256 secret", "0123456789abcdef0123456789abcdef", NULL, AUTH_JWT_HS256},
		{"EC P-256 public key", p256, NULL, AUTH_JWT_ES256},
		{"empty", "", "is empty", 0},
		{"short secret", "secret\n", "holds an HS256 secret of 7 bytes; use at least 32 random bytes", 0},
		{"EC P-384", p384, "holds an EC key on curve 'secp384r1'; only P-256 (ES256) is supported", 0},
		{"private key", priv, "is a private key; give the public key (openssl pkey -in KEY -pubout -out FILE)", 0},
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char path[64], text[256], want[512], *errs = NULL;
		int n = -1;
		snprintf(path, sizeof path, "%s", temp_file(cases[i].bytes, strlen(cases[i].bytes)));
		snprintf(text, sizeof text, "# key\njwt_key_file = %s\njwt_audience = pollgate\n", path);
		conf *c = load(text, &n, &errs);
		unlink(path);
		if (cases[i].msg == NULL) {
			if (c == NULL || c->jwt_key == NULL) fail_msg("%s: refused: %s", cases[i].name, errs);
			assert_int_equal(auth_jwt_key_alg(c->jwt_key), cases[i].alg);
			assert_string_equal(c->jwt_audience, "pollgate");
			assert_dumped(c, "jwt_key_file", path);
		} else {
			snprintf(want, sizeof want, "t:2: jwt_key_file '%s' %s\n", path, cases[i].msg);
			if (c != NULL || n != 1 || strcmp(errs, want) != 0)
				fail_msg("%s: got %d error(s):\n%swant:\n%s", cases[i].name, n, errs ? errs : "", want);
		}
		free(errs);
		conf_free(c);
	}
}

static void test_file_with_nul_bytes_reports_those_lines(void **state)
{
	static const char bytes[] = "max_wait = 60s\nmax_\0wait = 1s\nfoo\n\0\n";
	const char *path = temp_file(bytes, sizeof bytes - 1);
	char *errs = NULL, want[256];
	size_t len = 0;
	FILE *f = open_memstream(&errs, &len);
	int n = -1;
	conf *c = conf_load(path, f, &n);
	(void)state;

	fclose(f);
	unlink(path);
	assert_null(c);
	assert_int_equal(n, 3);
	snprintf(want, sizeof want,
	         "%s:2: NUL byte in line\n%s:3: expected 'key = value' (no '=' on this line)\n%s:4: NUL byte in line\n", path, path,
	         path);
	assert_string_equal(errs, want);
	free(errs);
}

/* --print-config must give a file that loads again: a value whose quoted, escaped form would not fit one
 * line is refused when it is read (found by fuzz_config: '#' forces quotes, backslashes double). */
static void test_value_too_long_to_write_back_is_an_error(void **state)
{
	char *text = malloc(4200), *errs = NULL, *dump = NULL;
	size_t dlen = 0;
	int n = -1;
	conf *c;
	(void)state;

	assert_non_null(text);
	int o = sprintf(text, "log_file = a#");
	memset(text + o, '\\', 3000);
	strcpy(text + o + 3000, "\n");
	c = load(text, &n, &errs);
	assert_null(c);
	assert_int_equal(n, 1);
	assert_non_null(strstr(errs, "t:1: value of log_file is too long (6015 bytes once written back"));
	free(errs);
	errs = NULL;

	/* A long value that fits written back loads, and its dump loads again to the same dump. */
	o = sprintf(text, "log_file = a#");
	memset(text + o, '\\', 2000);
	strcpy(text + o + 2000, "\n");
	c = load(text, &n, &errs);
	assert_non_null(c);
	FILE *f = open_memstream(&dump, &dlen);
	assert_non_null(f);
	conf_dump(c, f);
	fclose(f);
	free(errs);
	errs = NULL;
	conf *again = load(dump, &n, &errs);
	assert_non_null(again);
	conf_free(again);
	conf_free(c);
	free(dump);
	free(errs);
	free(text);
}

/* --print-config never shows the database password (the masking itself, in both connection-string forms,
 * is test_conf_redact.c's). */
static void test_print_config_redacts_the_database_password(void **state)
{
	(void)state;
	conf *c = load_ok("database = \"host=db user=gw password='s3 cret' dbname=app\"\n");
	char *all = dump(c);
	assert_null(strstr(all, "s3"));
	assert_non_null(strstr(all, "database = host=db user=gw password=REDACTED dbname=app\n"));
	free(all);
	conf_free(c);
	c = load_ok("database = postgresql://gw:s3cret@db/app\n");
	assert_dumped(c, "database", "postgresql://gw:REDACTED@db/app");
	conf_free(c);
}

static void test_line_longer_than_4096_bytes_is_an_error(void **state)
{
	char *text = malloc(3 * 4200);
	char *errs = NULL;
	int n = -1;
	conf *c;
	size_t o = 0;
	(void)state;

	assert_non_null(text);
	/* Exactly 4096 bytes plus CRLF: fine. */
	o += (size_t)sprintf(text + o, "database = ");
	memset(text + o, 'x', 4096 - 11);
	o += 4096 - 11;
	o += (size_t)sprintf(text + o, "\r\n");
	/* 4097 bytes: refused, on line 2; the next line still counts as line 3. */
	memset(text + o, '#', 4097);
	o += 4097;
	o += (size_t)sprintf(text + o, "\nbogus = 1\n");
	text[o] = '\0';
	c = load(text, &n, &errs);
	assert_null(c);
	assert_int_equal(n, 2);
	assert_string_equal(errs, "t:2: line too long (4097 bytes; at most 4096)\nt:3: unknown key 'bogus'\n");
	free(errs);

	text[4096 + 2] = '\0'; /* only the first line */
	c = load_ok(text);
	assert_int_equal(strlen(c->database), 4096 - 11);
	conf_free(c);
	free(text);
}

/* ---- reload ---- */

static void collect(const char *key, void *arg)
{
	char *buf = arg;
	strcat(buf, key);
	strcat(buf, ",");
}

static void test_keep_static_reports_changed_restart_keys_and_keeps_the_old_values(void **state)
{
	conf *old = load_ok("listen = 0.0.0.0:9000\ndb_pool_size = 4\nmax_wait = 30s\ndatabase = host=a\n");
	conf *fresh = load_ok("listen = 127.0.0.1:8080\ndb_pool_size = 4\nmax_wait = 40s\ndatabase = host=b\n"
	                      "db_query_timeout = 3s\nmetrics_allow = 10.0.0.0/8\nworkers = 3\n");
	char reported[256] = "";
	(void)state;

	conf_keep_static(fresh, old, collect, reported);
	assert_string_equal(reported, "listen,database,db_query_timeout,workers,");
	assert_int_equal(fresh->workers, 0); /* the running number of processes stays until a restart */
	assert_string_equal(fresh->listen, "0.0.0.0:9000");
	assert_string_equal(fresh->listen_host, "0.0.0.0");
	assert_int_equal(fresh->listen_port, 9000);
	assert_string_equal(fresh->database, "host=a");
	assert_int_equal(fresh->db_pool_size, 4);
	assert_int_equal(fresh->db_query_timeout_ms, 10000);
	/* Reloadable keys take the new value. */
	assert_int_equal(fresh->max_wait_ms, 40000);
	assert_int_equal(fresh->metrics_allow.n, 1);

	/* Same again: nothing changed now. */
	reported[0] = '\0';
	conf_keep_static(fresh, old, collect, reported);
	assert_string_equal(reported, "");
	conf_free(old);
	conf_free(fresh);
}

static void test_keep_static_same_address_written_differently_is_not_a_change(void **state)
{
	conf *old = load_ok("listen = 127.0.0.1:8080\n");
	conf *fresh = load_ok("listen = 127.0.0.1:08080\n");
	char reported[64] = "";
	(void)state;

	conf_keep_static(fresh, old, collect, reported);
	assert_string_equal(reported, "");
	assert_string_equal(fresh->listen, "127.0.0.1:8080");
	conf_keep_static(fresh, old, NULL, NULL); /* no reporter: fine */
	conf_free(old);
	conf_free(fresh);
}

/* ---- robustness ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void test_random_input_never_crashes_or_leaks(void **state)
{
	static const char *const keys[] = {"listen", "database", "max_wait", "default_wait", "max_header_size",
	                                   "metrics_allow", "trusted_proxies", "auth_cookie", "log_level",
	                                   "run_poll_schedule", "run_outcome_states", "run_active_statuses",
	                                   "run_completed_status", "pack_terminal_statuses", "retry_after",
	                                   "db_pool_size", "client_ipv6_prefix", "max_wiat", ""};
	static const char *const bits[] = {"5s", "\"", "#", " ", ",", "=", "\\", "[", "]", ":", "/", "::", "1.2.3.4",
	                                   "99999999999999999999", "ms", "*", "-", "\r", "\t", "0", "ffff", "\xff",
	                                   "queued", "a=b", "10s:1s"};
	size_t cap = 64 * 1024;
	char *text = malloc(cap);
	(void)state;

	assert_non_null(text);
	for (int iter = 0; iter < 3000; iter++) {
		size_t o = 0;
		int lines = 1 + (int)(rnd() % 20);
		int n = -1;
		conf *c;

		for (int l = 0; l < lines && o + 5000 < cap; l++) {
			switch (rnd() % 4) {
			case 0: /* raw bytes, no NUL (a C string) */
			{
				size_t len = rnd() % ((rnd() % 16 == 0) ? 4200 : 80);
				for (size_t i = 0; i < len; i++) text[o++] = (char)(1 + rnd() % 255);
				break;
			}
			case 1: /* a key and junk pieces */
			case 2: {
				const char *k = keys[rnd() % (sizeof keys / sizeof keys[0])];
				int pieces = (int)(rnd() % 8);
				o += (size_t)snprintf(text + o, cap - o, "%s = ", k);
				for (int p = 0; p < pieces; p++)
					o += (size_t)snprintf(text + o, cap - o, "%s", bits[rnd() % (sizeof bits / sizeof bits[0])]);
				break;
			}
			default: /* a key and random printable bytes */
			{
				const char *k = keys[rnd() % (sizeof keys / sizeof keys[0])];
				size_t len = rnd() % 40;
				o += (size_t)snprintf(text + o, cap - o, "%s=", k);
				for (size_t i = 0; i < len; i++) text[o++] = (char)(0x20 + rnd() % 95);
				break;
			}
			}
			text[o++] = '\n';
		}
		text[o] = '\0';
		c = conf_load_string("fuzz", text, NULL, &n);
		if (c) {
			char *d = dump(c);
			conf *again = load_ok(d); /* whatever was accepted dumps to something acceptable */
			conf_free(again);
			free(d);
			assert_int_equal(n, 0);
		} else {
			assert_true(n > 0);
		}
		conf_free(c);
	}

	/* The same through a file, NUL bytes included. */
	for (int iter = 0; iter < 200; iter++) {
		size_t len = rnd() % 2000;
		const char *path;
		int n = -1;
		conf *c;
		for (size_t i = 0; i < len; i++) text[i] = (rnd() % 8 == 0) ? '\n' : (char)(rnd() % 256);
		path = temp_file(text, len);
		c = conf_load(path, NULL, &n);
		assert_true(c != NULL || n > 0);
		conf_free(c);
		unlink(path);
	}
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_error_is_reported_with_its_line),
		cmocka_unit_test(test_errors_are_all_collected_line_errors_first_then_cross_field),
		cmocka_unit_test(test_errors_go_nowhere_when_errs_is_null),
		cmocka_unit_test(test_unreadable_file_is_one_error),
		cmocka_unit_test(test_file_with_nul_bytes_reports_those_lines),
		cmocka_unit_test(test_jwt_key_files),
		cmocka_unit_test(test_line_longer_than_4096_bytes_is_an_error),
		cmocka_unit_test(test_value_too_long_to_write_back_is_an_error),
		cmocka_unit_test(test_keep_static_reports_changed_restart_keys_and_keeps_the_old_values),
		cmocka_unit_test(test_keep_static_same_address_written_differently_is_not_a_change),
		cmocka_unit_test(test_random_input_never_crashes_or_leaks),
		cmocka_unit_test(test_print_config_redacts_the_database_password),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
