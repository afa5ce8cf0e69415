/*
 * tests/unit/gateway/test_config.c — the config file (gateway/config.c), as a specification: its key table.
 *
 * Owns what each key accepts and holds: the defaults (and that the sample config spells them all out),
 * the accepted syntax and quoting, the value types (durations, sizes, inclusive bounds), the cross-field
 * rules at their equal edges, listen forms, CIDR lists and matching, and the client_ipv6_prefix bounds.
 * Errors, file reading, --print-config, reload and random input are in test_config_files.c.
 * Each test name states a rule; most are tables of cases.
 * Run from the repository root (the sample config is opened as "conf/pollgate.conf").
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

/* ---- defaults ---- */

static void test_conf_free_null_is_a_noop(void **state)
{
	(void)state;
	conf_free(NULL);
}

static void test_defaults_are_the_documented_values(void **state)
{
	conf *c = conf_new_defaults();
	(void)state;

	assert_non_null(c);
	assert_null(c->path);
	assert_string_equal(c->listen, "127.0.0.1:8080");
	assert_string_equal(c->listen_host, "127.0.0.1");
	assert_int_equal(c->listen_port, 8080);
	assert_string_equal(c->database, "");
	assert_string_equal(c->hint_source, "notify");
	assert_int_equal(c->db_pool_size, 2);
	assert_int_equal(c->db_connect_timeout_ms, 5000);
	assert_int_equal(c->db_query_timeout_ms, 10000);
	assert_int_equal(c->db_reconnect_min_ms, 250);
	assert_int_equal(c->db_reconnect_max_ms, 10000);
	assert_int_equal(c->reread_batch_max, 1000);
	assert_int_equal(c->default_wait_ms, 25000);
	assert_int_equal(c->max_wait_ms, 55000);
	assert_int_equal(c->header_timeout_ms, 10000);
	assert_int_equal(c->max_header_size, 8192);
	assert_int_equal(c->drain_timeout_ms, 10000);
	assert_int_equal(c->retry_after_s, 2);
	assert_string_equal(c->auth_cookie, "pollgate_token");
	assert_int_equal(c->auth_cache_ttl_ms, 10000);
	assert_int_equal(c->terminal_linger_ms, 300000);
	assert_int_equal(c->metrics_allow.n, 2);
	assert_int_equal(c->trusted_proxies.n, 0);
	assert_null(c->trusted_proxies.items);
	assert_int_equal(c->workers, 0); /* auto */
	assert_int_equal(conf_workers(c), (int)sysconf(_SC_NPROCESSORS_ONLN));
	assert_int_equal(c->max_waiters, 100000);
	assert_int_equal(c->max_waiters_per_principal, 64);
	assert_int_equal(c->max_waiters_per_client, 256);
	assert_int_equal(c->client_ipv6_prefix, 64);
	assert_int_equal(c->log_level, CM_LOG_INFO);
	assert_int_equal(c->log_format, CM_LOG_LOGFMT);
	assert_string_equal(c->log_file, "");
	assert_string_equal(c->jwt_key_file, "");
	assert_string_equal(c->jwt_audience, "");
	assert_string_equal(c->jwt_issuer, "");
	assert_int_equal(c->jwt_leeway_s, 0);
	assert_null(c->jwt_key);
	assert_int_equal(c->policy.pack_interval_ms, 10000);
	assert_dumped(c, "metrics_allow", "127.0.0.1/32 ::1/128");
	conf_free(c);
}

static void test_default_policy_equals_pol_config_default(void **state)
{
	conf *c = conf_new_defaults();
	pol_config want;
	const pol_config *got;
	(void)state;

	assert_non_null(c);
	got = &c->policy;
	pol_config_default(&want);
	assert_int_equal(got->n_run_active, want.n_run_active);
	for (size_t i = 0; i < want.n_run_active; i++) assert_string_equal(got->run_active[i], want.run_active[i]);
	assert_string_equal(got->run_completed_status, want.run_completed_status);
	assert_int_equal(got->n_run_outcomes, want.n_run_outcomes);
	for (size_t i = 0; i < want.n_run_outcomes; i++) {
		assert_string_equal(got->run_outcomes[i].outcome, want.run_outcomes[i].outcome);
		assert_string_equal(got->run_outcomes[i].state, want.run_outcomes[i].state);
	}
	assert_int_equal(got->n_run_schedule, want.n_run_schedule);
	for (size_t i = 0; i < want.n_run_schedule; i++) {
		assert_int_equal(got->run_schedule[i].below_age_ms, want.run_schedule[i].below_age_ms);
		assert_int_equal(got->run_schedule[i].interval_ms, want.run_schedule[i].interval_ms);
	}
	assert_int_equal(got->n_pack_active, want.n_pack_active);
	for (size_t i = 0; i < want.n_pack_active; i++) assert_string_equal(got->pack_active[i], want.pack_active[i]);
	assert_int_equal(got->n_pack_terminal, want.n_pack_terminal);
	for (size_t i = 0; i < want.n_pack_terminal; i++)
		assert_string_equal(got->pack_terminal[i], want.pack_terminal[i]);
	assert_int_equal(got->pack_interval_ms, want.pack_interval_ms);
	conf_free(c);
}

static void test_sample_config_loads_to_exactly_the_defaults(void **state)
{
	conf *d = conf_new_defaults(), *c;
	char *dd, *dc;
	int n = -1;
	(void)state;

	c = conf_load("conf/pollgate.conf", stderr, &n);
	assert_non_null(d);
	assert_non_null(c);
	assert_int_equal(n, 0);
	assert_string_equal(c->path, "conf/pollgate.conf");
	dd = dump(d);
	dc = dump(c);
	assert_string_equal(dc, dd);
	free(dd);
	free(dc);
	conf_free(c);
	conf_free(d);
}

static void test_sample_config_sets_every_key_explicitly(void **state)
{
	conf *d = conf_new_defaults();
	char *all, *line, *sample = NULL;
	size_t cap = 0;
	FILE *f = fopen("conf/pollgate.conf", "r");
	int keys = 0;
	(void)state;

	assert_non_null(d);
	assert_non_null(f);
	{
		char *buf = NULL;
		FILE *m = open_memstream(&sample, &cap);
		size_t len = 0;
		ssize_t got;
		assert_non_null(m);
		fputc('\n', m);
		while ((got = getline(&buf, &len, f)) > 0) fwrite(buf, 1, (size_t)got, m);
		free(buf);
		fclose(m);
	}
	fclose(f);
	all = dump(d);
	for (line = all; *line;) {
		char *nl = strchr(line, '\n'), *eq = strstr(line, " = "), want[128];
		assert_non_null(nl);
		assert_non_null(eq);
		snprintf(want, sizeof want, "\n%.*s = ", (int)(eq - line), line);
		if (strstr(sample, want) == NULL) fail_msg("conf/pollgate.conf does not set %s", want + 1);
		keys++;
		line = nl + 1;
	}
	assert_true(keys >= 32);
	free(all);
	free(sample);
	conf_free(d);
}

static void test_dump_reads_back_to_the_same_config(void **state)
{
	static const char *const texts[] = {
		"",
		"listen = [::1]:9000\n"
		"database = \" host=db # not a comment \"\n"
		"log_file = \"/var/log/a \\\"b\\\" \\\\c\"\n"
		"auth_cookie = sid\n"
		"metrics_allow = 10.1.2.3/8, ::ffff:1.2.3.4/120 2001:db8::/33\n"
		"trusted_proxies = 0.0.0.0/0 ::/0\n"
		"max_header_size = 1500\n"
		"retry_after = 1500ms\n"
		"default_wait = 0ms\n"
		"drain_timeout = 90s\n"
		"log_level = debug\n"
		"log_format = json\n"
		"run_poll_schedule = 500ms:100ms 2m:1s *:1m\n",
	};
	(void)state;

	for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
		conf *a = load_ok(texts[i]), *b;
		char *da = dump(a), *db;
		b = load_ok(da);
		db = dump(b);
		assert_string_equal(da, db);
		free(da);
		free(db);
		conf_free(a);
		conf_free(b);
	}
}

/* ---- accepted syntax ---- */

struct ok_case {
	const char *name;
	const char *text;
	const char *key;
	const char *dumped; /* what conf_dump prints for key afterwards */
};

static const struct ok_case ok_cases[] = {
	{"blank and comment lines", "\n   \n\t# max_wait = 1s\n  # x\n", "max_wait", "55s"},
	{"spaces around key and value", "   max_wait   =   30s   \n", "max_wait", "30s"},
	{"no spaces at all", "max_wait=30s", "max_wait", "30s"},
	{"tabs", "\tmax_wait\t=\t30s\t# c\n", "max_wait", "30s"},
	{"CRLF line ends", "max_wait = 30s\r\ndefault_wait = 5s\r\n", "max_wait", "30s"},
	{"last line without newline", "# c\nmax_wait = 30s", "max_wait", "30s"},
	{"trailing comment after a space", "auth_cookie = abc # the cookie", "auth_cookie", "abc"},
	{"trailing comment after a tab", "auth_cookie = abc\t#x", "auth_cookie", "abc"},
	{"'#' inside a word is kept", "auth_cookie = a#b", "auth_cookie", "\"a#b\""},
	{"a value that is only a comment is empty", "trusted_proxies = # nobody", "trusted_proxies", "\"\""},
	{"quoted value keeps '#' and spaces", "log_file = \" /tmp/a # b \"", "log_file", "\" /tmp/a # b \""},
	{"quoted value then comment", "auth_cookie = \"abc\"   # c", "auth_cookie", "abc"},
	{"quoted value then comment without space", "auth_cookie = \"abc\"# c", "auth_cookie", "abc"},
	{"quoted escapes", "log_file = \"a\\\"b\\\\c\"", "log_file", "a\"b\\c"},
	{"quoted '=' in value", "database = \"host=a port=5\"", "database", "host=a port=5"},
	{"unquoted '=' in value", "database = host=a port=5", "database", "host=a port=5"},
	{"empty quoted string", "database = \"\"", "database", "\"\""},
	{"empty unquoted string", "log_file =", "log_file", "\"\""},
	{"quoted durations", "max_wait = \"30s\"", "max_wait", "30s"},
	{"CIDR list with commas and spaces", "metrics_allow = 10.0.0.0/8,192.168.1.7 , ::1,,", "metrics_allow",
	 "10.0.0.0/8 192.168.1.7/32 ::1/128"},
	{"CIDR host bits are masked", "trusted_proxies = 10.1.2.3/8 2001:db8::1/32", "trusted_proxies",
	 "10.0.0.0/8 2001:db8::/32"},
	{"empty CIDR list", "metrics_allow =", "metrics_allow", "\"\""},
	{"retry_after rounds up to seconds", "retry_after = 1500ms", "retry_after", "2s"},
	{"retry_after in minutes", "retry_after = 2m", "retry_after", "2m"},
	{"log level", "log_level = debug", "log_level", "debug"},
	{"log format", "log_format = json", "log_format", "json"},
	{"hint source logical", "hint_source = logical", "hint_source", "logical"},
	{"hint source notify", "hint_source = notify", "hint_source", "notify"},
	{"lists with commas", "pack_terminal_statuses = ready,failed, expired,gone", "pack_terminal_statuses",
	 "ready failed expired gone"},
	{"schedule", "run_poll_schedule = 500ms:100ms 2m:1s *:1m", "run_poll_schedule", "500ms:100ms 2m:1s *:1m"},
	{"outcomes", "run_outcome_states = ok=succeeded", "run_outcome_states", "ok=succeeded"},
	{"dump uses the largest exact unit", "terminal_linger = 7200000ms", "terminal_linger", "2h"},
	{"dump keeps odd milliseconds", "terminal_linger = 1001ms", "terminal_linger", "1001ms"},
	{"zero duration", "drain_timeout = 0ms", "drain_timeout", "0s"},
};

static void test_accepted_syntax(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++) {
		const struct ok_case *tc = &ok_cases[i];
		int n = -1;
		char *errs = NULL, *got;
		conf *c = load(tc->text, &n, &errs);

		if (c == NULL) fail_msg("case '%s': refused:\n%s", tc->name, errs);
		got = dumped(c, tc->key);
		if (strcmp(got, tc->dumped) != 0) fail_msg("case '%s': %s = %s, want %s", tc->name, tc->key, got, tc->dumped);
		free(got);
		free(errs);
		conf_free(c);
	}
}

static void test_quoted_values_keep_their_exact_bytes(void **state)
{
	conf *c = load_ok("log_file = \"  a \\\"b\\\" \\\\ # c  \"   # comment\r\n"
	                  "database = \"host=x#y\"\n");
	(void)state;

	assert_string_equal(c->log_file, "  a \"b\" \\ # c  ");
	assert_string_equal(c->database, "host=x#y");
	conf_free(c);
}

/* ---- value types ---- */

struct value_case {
	const char *key;
	const char *value;
	int64_t want; /* meaningful when ok */
	const char *err; /* NULL when accepted; else the start of the message */
	const char *after; /* more lines after the key's own, or NULL */
};

static int64_t value_of(const conf *c, const char *key)
{
	if (strcmp(key, "terminal_linger") == 0) return c->terminal_linger_ms;
	if (strcmp(key, "max_header_size") == 0) return c->max_header_size;
	if (strcmp(key, "max_wait") == 0) return c->max_wait_ms;
	if (strcmp(key, "db_pool_size") == 0) return c->db_pool_size;
	if (strcmp(key, "max_waiters") == 0) return c->max_waiters;
	if (strcmp(key, "workers") == 0) return c->workers;
	if (strcmp(key, "retry_after") == 0) return c->retry_after_s;
	if (strcmp(key, "reread_batch_max") == 0) return c->reread_batch_max;
	if (strcmp(key, "drain_timeout") == 0) return c->drain_timeout_ms;
	if (strcmp(key, "db_connect_timeout") == 0) return c->db_connect_timeout_ms;
	if (strcmp(key, "pack_poll_interval") == 0) return c->policy.pack_interval_ms;
	fail_msg("value_of: no accessor for %s", key);
	return 0;
}

static void run_value_cases(const struct value_case *cases, size_t n_cases)
{
	for (size_t i = 0; i < n_cases; i++) {
		const struct value_case *tc = &cases[i];
		char text[256], *errs = NULL;
		int n = -1;
		conf *c;

		snprintf(text, sizeof text, "%s = %s\n%s", tc->key, tc->value, tc->after ? tc->after : "");
		c = load(text, &n, &errs);
		if (tc->err == NULL) {
			if (c == NULL) fail_msg("%s = %s refused:\n%s", tc->key, tc->value, errs);
			if (value_of(c, tc->key) != tc->want)
				fail_msg("%s = %s gave %lld, want %lld", tc->key, tc->value, (long long)value_of(c, tc->key),
				         (long long)tc->want);
		} else {
			char want[256];
			snprintf(want, sizeof want, "t:1: %s", tc->err);
			if (c != NULL || n != 1 || strncmp(errs, want, strlen(want)) != 0)
				fail_msg("%s = %s: got:\n%swant:\n%s...", tc->key, tc->value, errs, want);
		}
		free(errs);
		conf_free(c);
	}
}

static void test_durations_need_digits_and_a_unit(void **state)
{
	static const struct value_case cases[] = {
		{"terminal_linger", "250ms", 250, NULL, NULL},
		{"terminal_linger", "25s", 25000, NULL, NULL},
		{"terminal_linger", "5m", 300000, NULL, NULL},
		{"terminal_linger", "1h", 3600000, NULL, NULL},
		{"terminal_linger", "0s", 0, NULL, NULL},
		{"terminal_linger", "0ms", 0, NULL, NULL},
		{"terminal_linger", "24h", 86400000, NULL, NULL},
		{"terminal_linger", "007s", 7000, NULL, NULL},
		{"terminal_linger", "5", 0, "invalid duration '5' for terminal_linger: use a number with ms, s, m or h", NULL},
		{"terminal_linger", "5x", 0, "invalid duration '5x' for terminal_linger", NULL},
		{"terminal_linger", "-1s", 0, "invalid duration '-1s' for terminal_linger", NULL},
		{"terminal_linger", "+1s", 0, "invalid duration '+1s' for terminal_linger", NULL},
		{"terminal_linger", "1.5s", 0, "invalid duration '1.5s' for terminal_linger", NULL},
		{"terminal_linger", "5 s", 0, "invalid duration '5 s' for terminal_linger", NULL},
		{"terminal_linger", "5S", 0, "invalid duration '5S' for terminal_linger", NULL},
		{"terminal_linger", "1h30m", 0, "invalid duration '1h30m' for terminal_linger", NULL},
		{"terminal_linger", "s", 0, "invalid duration 's' for terminal_linger", NULL},
		{"terminal_linger", "99999999999999999999s", 0, "invalid duration '99999999999999999999s' for terminal_linger", NULL},
		{"terminal_linger", "9223372036854775807h", 0, "invalid duration '9223372036854775807h' for terminal_linger", NULL},
		{"terminal_linger", "25h", 0, "terminal_linger must be between 0s and 24h (got 25h)", NULL},
	};
	(void)state;
	run_value_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_sizes_take_bytes_kib_or_mib(void **state)
{
	static const struct value_case cases[] = {
		{"max_header_size", "8KiB", 8192, NULL, NULL},
		{"max_header_size", "8k", 8192, NULL, NULL},
		{"max_header_size", "8K", 8192, NULL, NULL},
		{"max_header_size", "1MiB", 1048576, NULL, NULL},
		{"max_header_size", "1M", 1048576, NULL, NULL},
		{"max_header_size", "4096", 4096, NULL, NULL},
		{"max_header_size", "1500B", 1500, NULL, NULL},
		{"max_header_size", "1KiB", 1024, NULL, NULL},
		{"max_header_size", "8KB", 0, "invalid size '8KB' for max_header_size: use a number with B, KiB or MiB", NULL},
		{"max_header_size", "8 KiB", 0, "invalid size '8 KiB' for max_header_size", NULL},
		{"max_header_size", "8kib", 0, "invalid size '8kib' for max_header_size", NULL},
		{"max_header_size", "-1K", 0, "invalid size '-1K' for max_header_size", NULL},
		{"max_header_size", "1.5K", 0, "invalid size '1.5K' for max_header_size", NULL},
		{"max_header_size", "KiB", 0, "invalid size 'KiB' for max_header_size", NULL},
		{"max_header_size", "1GiB", 0, "invalid size '1GiB' for max_header_size", NULL},
		{"max_header_size", "1023", 0, "max_header_size must be between 1KiB and 1MiB (got 1023)", NULL},
		{"max_header_size", "1025K", 0, "max_header_size must be between 1KiB and 1MiB (got 1025K)", NULL},
		{"max_header_size", "99999999999999999999M", 0, "max_header_size must be between 1KiB and 1MiB (got 99999999999999999999M)", NULL},
	};
	(void)state;
	run_value_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_bounds_are_inclusive(void **state)
{
	static const struct value_case cases[] = {
		{"db_pool_size", "1", 1, NULL, NULL},
		{"db_pool_size", "64", 64, NULL, NULL},
		{"db_pool_size", "0", 0, "db_pool_size must be between 1 and 64 (got 0)", NULL},
		{"db_pool_size", "-5", 0, "db_pool_size must be between 1 and 64 (got -5)", NULL},
		{"db_pool_size", "99999999999999999999999", 0, "db_pool_size must be between 1 and 64 (got 99999999999999999999999)", NULL},
		{"db_pool_size", "-99999999999999999999999", 0, "db_pool_size must be between 1 and 64 (got -99999999999999999999999)", NULL},
		{"db_pool_size", "+5", 0, "invalid integer '+5' for db_pool_size: use a whole number", NULL},
		{"db_pool_size", "5 5", 0, "invalid integer '5 5' for db_pool_size", NULL},
		{"db_pool_size", "0x10", 0, "invalid integer '0x10' for db_pool_size", NULL},
		{"workers", "auto", 0, NULL, NULL},
		{"workers", "1", 1, NULL, NULL},
		{"workers", "256", 256, NULL, NULL},
		{"workers", "0", 0, "workers must be between 1 and 256 (got 0)", NULL},
		{"workers", "257", 0, "workers must be between 1 and 256 (got 257)", NULL},
		{"workers", "Auto", 0, "invalid value 'Auto' for workers: use auto or a whole number", NULL},
		{"workers", "2x", 0, "invalid value '2x' for workers: use auto or a whole number", NULL},
		{"max_waiters", "10000000", 10000000, NULL, NULL},
		{"max_waiters", "10000001", 0, "max_waiters must be between 1 and 10000000 (got 10000001)", NULL},
		{"reread_batch_max", "0", 0, "reread_batch_max must be between 1 and 100000 (got 0)", NULL},
		{"max_wait", "1s", 1000, NULL, "default_wait = 0s\n"},
		{"max_wait", "1000ms", 1000, NULL, "default_wait = 0s\n"},
		{"max_wait", "999ms", 0, "max_wait must be between 1s and 1h (got 999ms)", "default_wait = 0s\n"},
		{"max_wait", "60m", 3600000, NULL, NULL},
		{"max_wait", "3600001ms", 0, "max_wait must be between 1s and 1h (got 3600001ms)", NULL},
		{"retry_after", "1s", 1, NULL, NULL},
		{"retry_after", "1h", 3600, NULL, NULL},
		{"retry_after", "1001ms", 2, NULL, NULL},
		{"retry_after", "999ms", 0, "retry_after must be between 1s and 1h (got 999ms)", NULL},
		{"drain_timeout", "0s", 0, NULL, NULL},
		{"drain_timeout", "10m", 600000, NULL, NULL},
		{"drain_timeout", "11m", 0, "drain_timeout must be between 0s and 10m (got 11m)", NULL},
		{"db_connect_timeout", "100ms", 100, NULL, NULL},
		{"db_connect_timeout", "99ms", 0, "db_connect_timeout must be between 100ms and 5m (got 99ms)", NULL},
		{"pack_poll_interval", "1h", 3600000, NULL, NULL},
		{"pack_poll_interval", "0s", 0, "pack_poll_interval must be between 100ms and 1h (got 0s)", NULL},
	};
	(void)state;
	run_value_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_cross_field_rules_allow_equal_values(void **state)
{
	conf *c = load_ok("max_wait = 30s\ndefault_wait = 30s\ndb_reconnect_min = 1s\ndb_reconnect_max = 1s\n"
	                  "pack_active_statuses = building\npack_terminal_statuses = queued\n"
	                  "run_completed_status = done\nrun_active_statuses = completed\n");
	(void)state;
	assert_int_equal(c->default_wait_ms, c->max_wait_ms);
	conf_free(c);
}

/* ---- listen ---- */

static void test_listen_forms(void **state)
{
	static const struct {
		const char *value, *host;
		int port;
	} cases[] = {
		{"127.0.0.1:8080", "127.0.0.1", 8080}, {"[::1]:8080", "::1", 8080},  {"0.0.0.0:1", "0.0.0.0", 1},
		{"localhost:65535", "localhost", 65535}, {"[::]:80", "::", 80},       {"10.0.0.1:0080", "10.0.0.1", 80},
		{"[fe80::1:2]:443", "fe80::1:2", 443},
	};
	(void)state;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char text[128];
		conf *c;
		snprintf(text, sizeof text, "listen = %s\n", cases[i].value);
		c = load_ok(text);
		assert_string_equal(c->listen, cases[i].value);
		assert_string_equal(c->listen_host, cases[i].host);
		assert_int_equal(c->listen_port, cases[i].port);
		conf_free(c);
	}
}

/* ---- CIDR ---- */

static void test_cidr_parse(void **state)
{
	static const struct {
		const char *text;
		const char *addr; /* as an IPv6 literal; NULL = refused */
		int prefix;
	} cases[] = {
		{"10.1.2.3/8", "::ffff:10.0.0.0", 104},
		{"1.2.3.4", "::ffff:1.2.3.4", 128},
		{"1.2.3.4/32", "::ffff:1.2.3.4", 128},
		{"0.0.0.0/0", "::ffff:0.0.0.0", 96},
		{"192.168.255.255/17", "::ffff:192.168.128.0", 113},
		{"::1", "::1", 128},
		{"::/0", "::", 0},
		{"2001:db8::1/32", "2001:db8::", 32},
		{"2001:db8:ffff::/33", "2001:db8:8000::", 33},
		{"::ffff:1.2.3.4/120", "::ffff:1.2.3.0", 120},
		{"", NULL, 0},
		{"/8", NULL, 0},
		{"1.2.3.4/", NULL, 0},
		{"1.2.3.4/33", NULL, 0},
		{"::1/129", NULL, 0},
		{"1.2.3.4/-1", NULL, 0},
		{"1.2.3.4/+8", NULL, 0},
		{"1.2.3.4/8x", NULL, 0},
		{"1.2.3.4/8/8", NULL, 0},
		{"1.2.3.4/1000", NULL, 0},
		{"1.2.3.4x", NULL, 0},
		{"1.2.3.4 ", NULL, 0},
		{"1.2.3", NULL, 0},
		{"256.1.1.1", NULL, 0},
		{"fe80::1%eth0", NULL, 0},
		{"2001:db8::g", NULL, 0},
		{"hello", NULL, 0},
		{"1111:2222:3333:4444:5555:6666:7777:8888:9999/64", NULL, 0},
	};
	(void)state;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		gw_cidr got;
		int rc = gw_cidr_parse(cases[i].text, &got);
		if (cases[i].addr == NULL) {
			if (rc != -1) fail_msg("'%s' accepted", cases[i].text);
			continue;
		}
		uint8_t want[16];
		assert_int_equal(inet_pton(AF_INET6, cases[i].addr, want), 1);
		if (rc != 0) fail_msg("'%s' refused", cases[i].text);
		assert_int_equal(got.prefix, cases[i].prefix);
		assert_memory_equal(got.addr, want, 16);
	}
	{
		gw_cidr got;
		assert_int_equal(gw_cidr_parse(NULL, &got), -1);
	}
}

static bool match(const char *list_text, const char *peer)
{
	char text[256];
	conf *c;
	bool r;

	snprintf(text, sizeof text, "metrics_allow = %s\n", list_text);
	c = load_ok(text);
	if (strchr(peer, ':') == NULL) {
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof sin);
		sin.sin_family = AF_INET;
		sin.sin_port = htons(1234);
		assert_int_equal(inet_pton(AF_INET, peer, &sin.sin_addr), 1);
		r = gw_cidr_match(&c->metrics_allow, (const struct sockaddr *)&sin);
	} else {
		struct sockaddr_in6 sin6;
		memset(&sin6, 0, sizeof sin6);
		sin6.sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, peer, &sin6.sin6_addr), 1);
		r = gw_cidr_match(&c->metrics_allow, (const struct sockaddr *)&sin6);
	}
	conf_free(c);
	return r;
}

static void test_cidr_match(void **state)
{
	static const struct {
		const char *list, *peer;
		bool want;
	} cases[] = {
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "10.1.2.3", true},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "11.0.0.1", false},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "192.168.1.7", true},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "192.168.1.8", false},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "::ffff:10.9.9.9", true},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "::ffff:11.9.9.9", false},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "2001:db8::5", true},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "2001:db9::", false},
		{"10.0.0.0/8 2001:db8::/32 192.168.1.7", "::1", false},
		{"10.0.0.0/8", "::10.1.2.3", false}, /* IPv4-compatible is not IPv4-mapped */
		{"10.128.0.0/9", "10.200.0.1", true},
		{"10.128.0.0/9", "10.127.0.1", false},
		{"0.0.0.0/0", "1.2.3.4", true},
		{"0.0.0.0/0", "::ffff:1.2.3.4", true},
		{"0.0.0.0/0", "2001:db8::1", false},
		{"::/0", "2001:db8::1", true},
		{"::/0", "1.2.3.4", true}, /* every address, v4 ones being mapped */
		{"127.0.0.1/32 ::1/128", "127.0.0.1", true},
		{"127.0.0.1/32 ::1/128", "::1", true},
		{"127.0.0.1/32 ::1/128", "127.0.0.2", false},
		{"\"\"", "127.0.0.1", false},
		{"\"\"", "::1", false},
	};
	(void)state;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (match(cases[i].list, cases[i].peer) != cases[i].want)
			fail_msg("[%s] contains %s: want %d", cases[i].list, cases[i].peer, cases[i].want);
}

static void test_cidr_match_refuses_other_families(void **state)
{
	conf *c = conf_new_defaults();
	struct sockaddr_un sun;
	(void)state;

	assert_non_null(c);
	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	assert_false(gw_cidr_match(&c->metrics_allow, (const struct sockaddr *)&sun));
	assert_false(gw_cidr_match(NULL, (const struct sockaddr *)&sun));
	assert_false(gw_cidr_match(&c->metrics_allow, NULL));
	conf_free(c);
}

static void test_lowering_only_max_wait_takes_the_default_wait_with_it(void **state)
{
	(void)state;
	int n = -1;
	conf *c = conf_load_string("t", "max_wait = 2s\n", NULL, &n);
	assert_non_null(c);
	assert_int_equal(n, 0);
	assert_int_equal(c->max_wait_ms, 2000);
	assert_int_equal(c->default_wait_ms, 2000);
	conf_free(c);
	/* Both set and in conflict is still the operator's mistake to hear about. */
	c = conf_load_string("t", "max_wait = 2s\ndefault_wait = 3s\n", NULL, &n);
	assert_null(c);
	assert_int_equal(n, 1);
}

/* client_ipv6_prefix: 32..128 bits, a whole number; anything else names the key and the value. */
static void test_client_ipv6_prefix_bounds(void **state)
{
	static const char *const good[] = {"32", "48", "64", "128"};
	static const char *const bad[] = {"31", "129", "0", "-64", "64bits", "/64", ""};
	(void)state;
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		char text[64];
		snprintf(text, sizeof text, "client_ipv6_prefix = %s\n", good[i]);
		conf *c = load_ok(text);
		assert_int_equal(c->client_ipv6_prefix, atoi(good[i]));
		conf_free(c);
	}
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char text[64], *errs = NULL;
		int n = -1;
		snprintf(text, sizeof text, "\nclient_ipv6_prefix = %s\n", bad[i]);
		conf *c = load(text, &n, &errs);
		if (c != NULL || n != 1 || strncmp(errs, "t:2: ", 5) != 0 || strstr(errs, "client_ipv6_prefix") == NULL ||
		    (bad[i][0] && strstr(errs, bad[i]) == NULL && strstr(errs, "32") == NULL))
			fail_msg("client_ipv6_prefix = %s: %d errors: %s", bad[i], n, errs ? errs : "");
		free(errs);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_client_ipv6_prefix_bounds),
		cmocka_unit_test(test_lowering_only_max_wait_takes_the_default_wait_with_it),
		cmocka_unit_test(test_conf_free_null_is_a_noop),
		cmocka_unit_test(test_defaults_are_the_documented_values),
		cmocka_unit_test(test_default_policy_equals_pol_config_default),
		cmocka_unit_test(test_sample_config_loads_to_exactly_the_defaults),
		cmocka_unit_test(test_sample_config_sets_every_key_explicitly),
		cmocka_unit_test(test_dump_reads_back_to_the_same_config),
		cmocka_unit_test(test_accepted_syntax),
		cmocka_unit_test(test_quoted_values_keep_their_exact_bytes),
		cmocka_unit_test(test_durations_need_digits_and_a_unit),
		cmocka_unit_test(test_sizes_take_bytes_kib_or_mib),
		cmocka_unit_test(test_bounds_are_inclusive),
		cmocka_unit_test(test_cross_field_rules_allow_equal_values),
		cmocka_unit_test(test_listen_forms),
		cmocka_unit_test(test_cidr_parse),
		cmocka_unit_test(test_cidr_match),
		cmocka_unit_test(test_cidr_match_refuses_other_families),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
