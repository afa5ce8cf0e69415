/*
 * tests/unit/gateway/test_conf_types.c — the value types of the config file (gateway/conf-types.c), each through
 * its table of operations and nothing else: no key of the gateway, a struct of this file's own.
 *
 * One table of cases, one row a type: a value, how it is written back, a different value, a refused
 * value and its message. Every row goes through the same contract: parse then dump gives the canonical
 * text; the dump parses again to an equal value; a different value is not equal; copy makes it equal
 * again; a refused value leaves the field as it was; free releases everything (ASan reports a leak).
 * The policy value types (gateway/conf-policy.c) have their own file, test_conf_policy.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/cidr.h"
#include "gateway/conf-engine.h"
#include "gateway/conf-types.h"

struct toy {
	char *listen, *host;
	int port;
	char *s;
	char *conninfo;
	int i;
	int64_t i64;
	int procs;
	int64_t ms;
	int64_t secs;
	int64_t bytes;
	gw_cidr_list cidrs;
	int level, format;
};

#define O(f) offsetof(struct toy, f)

static const conf_key toy_keys[] = {
	{.name = "listen", .type = &conf_t_listen, .off = O(listen), .aux = O(host), .aux2 = O(port)},
	{.name = "s", .type = &conf_t_string, .off = O(s), .flags = CONF_K_EMPTY_OK},
	{.name = "conninfo", .type = &conf_t_conninfo, .off = O(conninfo), .flags = CONF_K_EMPTY_OK},
	{.name = "i", .type = &conf_t_int, .off = O(i), .aux = sizeof(int), .min = -5, .max = 100},
	{.name = "i64", .type = &conf_t_int, .off = O(i64), .aux = sizeof(int64_t), .min = 0, .max = INT64_MAX},
	{.name = "procs", .type = &conf_t_int_auto, .off = O(procs), .aux = sizeof(int), .min = 1, .max = 256},
	{.name = "ms", .type = &conf_t_duration, .off = O(ms), .min = 0, .max = CONF_HOUR(1)},
	{.name = "secs", .type = &conf_t_seconds, .off = O(secs), .min = CONF_SEC(1), .max = CONF_MIN(5)},
	{.name = "bytes", .type = &conf_t_size, .off = O(bytes), .min = CONF_KIB(1), .max = CONF_MIB(1)},
	{.name = "cidrs", .type = &conf_t_cidrs, .off = O(cidrs), .flags = CONF_K_EMPTY_OK},
	{.name = "level", .type = &conf_t_log_level, .off = O(level)},
	{.name = "format", .type = &conf_t_log_format, .off = O(format)},
};
#define NTOY (sizeof toy_keys / sizeof toy_keys[0])

static const conf_key *toy_key(const char *name)
{
	const conf_key *k = conf_key_find(toy_keys, NTOY, name, NULL);
	if (k == NULL) fail_msg("no toy key %s", name);
	return k;
}

static char *dump_key(const struct toy *t, const conf_key *k)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	k->type->dump(t, k, f);
	fclose(f);
	return buf;
}

static void set_ok(struct toy *t, const conf_key *k, const char *v)
{
	char err[CONF_ERR_LEN] = "";
	if (conf_key_set(t, k, v, err, sizeof err) != 0) fail_msg("%s = '%s' refused: %s", k->name, v, err);
}

static void assert_dump(const struct toy *t, const conf_key *k, const char *want)
{
	char *got = dump_key(t, k);
	if (strcmp(got, want) != 0) fail_msg("%s: dumped '%s', want '%s'", k->name, got, want);
	free(got);
}

/* ---- every type has what the engine calls ---- */

static void test_every_type_has_the_required_operations(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTOY; i++) {
		const conf_type *t = toy_keys[i].type;
		if (t->name == NULL || t->name[0] == '\0' || t->parse == NULL || t->equal == NULL || t->copy == NULL ||
		    t->dump == NULL)
			fail_msg("type of %s lacks a name or a required operation", toy_keys[i].name);
	}
	/* the bounded types say how to write a bound; the others are unbounded in the reference */
	assert_non_null(conf_t_int.bound);
	assert_non_null(conf_t_int_auto.bound);
	assert_non_null(conf_t_duration.bound);
	assert_non_null(conf_t_seconds.bound);
	assert_non_null(conf_t_size.bound);
	assert_null(conf_t_string.bound);
	assert_null(conf_t_cidrs.bound);
}

/* ---- the contract, one row a type ---- */

struct type_case {
	const char *key;
	const char *value, *dumped; /* a value and how it is written back */
	const char *other;          /* a different value */
	const char *bad, *message;  /* a refused value and the whole message */
};

static const struct type_case cases[] = {
	{"listen", "[::1]:0080", "[::1]:0080", "127.0.0.1:80", "[::1]8080",
	 "invalid listen address '[::1]8080': expected ADDRESS:PORT"},
	{"s", "  spaced # and \"quoted\" \\ ", "\"  spaced # and \\\"quoted\\\" \\\\ \"", "plain", NULL, NULL},
	{"conninfo", "host=db password=secret", "host=db password=REDACTED", "host=other", NULL, NULL},
	{"i", "-5", "-5", "100", "101", "i must be between -5 and 100 (got 101)"},
	{"i64", "9000000000", "9000000000", "0", "1.5", "invalid integer '1.5' for i64: use a whole number"},
	{"procs", "auto", "auto", "4", "0", "procs must be between 1 and 256 (got 0)"},
	{"procs", "256", "256", "auto", "Auto", "invalid value 'Auto' for procs: use auto or a whole number"},
	{"ms", "1500ms", "1500ms", "90s", "2h", "ms must be between 0s and 1h (got 2h)"},
	{"secs", "1500ms", "2s", "5m", "10m", "secs must be between 1s and 5m (got 10m)"},
	{"bytes", "2048", "2KiB", "1M", "2MiB", "bytes must be between 1KiB and 1MiB (got 2MiB)"},
	{"cidrs", "10.0.0.0/8, ::1", "10.0.0.0/8 ::1/128", "", "10.0.0.0/33",
	 "invalid CIDR '10.0.0.0/33' in cidrs (element 1)"},
	{"level", "debug", "debug", "error", "loud", "invalid log_level 'loud': use error, warn, info or debug"},
	{"format", "json", "json", "logfmt", "xml", "invalid log_format 'xml': use logfmt or json"},
};

static void test_each_type_parses_dumps_compares_and_copies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct type_case *tc = &cases[i];
		const conf_key *k = toy_key(tc->key);
		struct toy a, b;
		char *text;

		memset(&a, 0, sizeof a);
		memset(&b, 0, sizeof b);
		set_ok(&a, k, tc->value);
		assert_dump(&a, k, tc->dumped);

		/* what dump writes parses back to the same value (a quoted dump is what the lexer unquotes; a
		 * redacted conninfo reads back as what it shows, on purpose) */
		if (tc->dumped[0] != '"' && strstr(tc->dumped, "REDACTED") == NULL) {
			set_ok(&b, k, tc->dumped);
			if (!k->type->equal(&a, &b, k)) fail_msg("%s: '%s' does not read back equal", k->name, tc->dumped);
		}
		set_ok(&b, k, tc->other);
		if (k->type->equal(&a, &b, k)) fail_msg("%s: '%s' and '%s' compare equal", k->name, tc->value, tc->other);
		assert_int_equal(k->type->copy(&b, &a, k), 0);
		if (!k->type->equal(&a, &b, k)) fail_msg("%s: a copy is not equal", k->name);
		text = dump_key(&b, k);
		assert_string_equal(text, tc->dumped);
		free(text);

		if (tc->bad) {
			char err[CONF_ERR_LEN] = "";
			if (conf_key_set(&a, k, tc->bad, err, sizeof err) == 0) fail_msg("%s: '%s' accepted", k->name, tc->bad);
			assert_string_equal(err, tc->message);
			assert_dump(&a, k, tc->dumped); /* unchanged */
		}
		conf_keys_free(toy_keys, NTOY, &a);
		conf_keys_free(toy_keys, NTOY, &b);
	}
}

static void test_an_empty_value_needs_the_empty_ok_flag(void **state)
{
	struct toy t;
	char err[CONF_ERR_LEN] = "";

	(void)state;
	memset(&t, 0, sizeof t);
	assert_int_equal(conf_key_set(&t, toy_key("ms"), "", err, sizeof err), -1);
	assert_string_equal(err, "ms needs a value");
	set_ok(&t, toy_key("s"), "");
	assert_dump(&t, toy_key("s"), "\"\"");
	set_ok(&t, toy_key("cidrs"), "");
	assert_dump(&t, toy_key("cidrs"), "\"\"");
	conf_keys_free(toy_keys, NTOY, &t);
}

static int no_x(const char *value, char *err, size_t errlen)
{
	if (strchr(value, 'x') == NULL) return 0;
	snprintf(err, errlen, "no x please");
	return -1;
}

static void test_a_string_check_runs_before_the_value_is_stored(void **state)
{
	conf_key k = {.name = "s", .type = &conf_t_string, .off = O(s), .check = no_x};
	struct toy t;
	char err[CONF_ERR_LEN] = "";

	(void)state;
	memset(&t, 0, sizeof t);
	set_ok(&t, &k, "abc");
	assert_int_equal(conf_key_set(&t, &k, "xyz", err, sizeof err), -1);
	assert_string_equal(err, "no x please");
	assert_string_equal(t.s, "abc");
	free(t.s);
}

static void test_listen_equal_values_written_differently_still_copy(void **state)
{
	const conf_key *k = toy_key("listen");
	struct toy a, b;

	(void)state;
	memset(&a, 0, sizeof a);
	memset(&b, 0, sizeof b);
	set_ok(&a, k, "0.0.0.0:080");
	set_ok(&b, k, "0.0.0.0:80");
	assert_true(k->type->equal(&a, &b, k)); /* the same socket */
	assert_true(k->type->copy_when_equal);  /* but keep-static must still take the running text */
	assert_string_equal(a.host, "0.0.0.0");
	assert_int_equal(a.port, 80);
	conf_keys_free(toy_keys, NTOY, &a);
	conf_keys_free(toy_keys, NTOY, &b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_has_the_required_operations),
		cmocka_unit_test(test_each_type_parses_dumps_compares_and_copies),
		cmocka_unit_test(test_an_empty_value_needs_the_empty_ok_flag),
		cmocka_unit_test(test_a_string_check_runs_before_the_value_is_stored),
		cmocka_unit_test(test_listen_equal_values_written_differently_still_copy),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
