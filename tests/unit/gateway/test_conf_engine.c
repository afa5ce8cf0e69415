/*
 * tests/unit/gateway/test_conf_engine.c — the config engine (gateway/conf-engine.c) on a key table of its own:
 * the line syntax, errors as "NAME:LINE: message" all collected, cross checks (when they run, which line
 * they blame, a default fitted to the file's choice), and the drivers (defaults, keep-static, dump,
 * reference, file reading). The gateway's own keys are tests/unit/test_config.c's
 * (and test_config_files.c's: their errors, files, --print-config, reload).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf-engine.h"
#include "gateway/conf-types.h"

struct toy {
	int64_t low, high; /* ms: low <= high */
	int count;
	char *label;
	char *fixed; /* restart-only */
};

#define O(f) offsetof(struct toy, f)

static const conf_key toy_keys[] = {
	{.name = "low", .type = &conf_t_duration, .off = O(low), .def = "1s", .min = 0, .max = CONF_HOUR(1),
	 .flags = CONF_K_RELOAD, .why = "the lower one"},
	{.name = "high", .type = &conf_t_duration, .off = O(high), .def = "10s", .min = 0, .max = CONF_HOUR(1),
	 .flags = CONF_K_RELOAD, .why = "the higher one"},
	{.name = "count", .type = &conf_t_int, .off = O(count), .aux = sizeof(int), .def = "3", .min = 1, .max = 9,
	 .why = "a restart-only number"},
	{.name = "label", .type = &conf_t_string, .off = O(label), .def = "", .flags = CONF_K_RELOAD | CONF_K_EMPTY_OK,
	 .why = "free text"},
	{.name = "fixed", .type = &conf_t_string, .off = O(fixed), .def = "a", .why = "a restart-only string"},
};
#define NTOY (sizeof toy_keys / sizeof toy_keys[0])

static int low_not_above_high(const void *obj, char *err, size_t errlen)
{
	const struct toy *t = obj;
	if (t->low <= t->high) return 0;
	snprintf(err, errlen, "low above high");
	return -1;
}

static void fit_low(void *obj)
{
	struct toy *t = obj;
	if (t->low > t->high) t->low = t->high;
}

static const conf_cross strict[] = {{"low", "high", low_not_above_high, NULL}};
static const conf_cross fitting[] = {{"low", "high", low_not_above_high, fit_low}};

struct run {
	struct toy t;
	int nerrors;
	char *errs;
};

/* Defaults, then parse text as file "f" with the given cross checks. Caller frees with run_free. */
static void run_parse(struct run *r, const char *text, const conf_cross *x, size_t nx)
{
	conf_parser p;
	size_t len = 0;
	FILE *f = open_memstream(&r->errs, &len);

	assert_non_null(f);
	memset(&r->t, 0, sizeof r->t);
	assert_int_equal(conf_keys_set_defaults(toy_keys, NTOY, &r->t), 0);
	assert_int_equal(conf_parser_init(&p, toy_keys, NTOY, &r->t, "f", f), 0);
	conf_parse_buffer(&p, text, strlen(text), x, nx);
	r->nerrors = p.nerrors;
	conf_parser_fini(&p);
	fclose(f);
}

static void run_free(struct run *r)
{
	conf_keys_free(toy_keys, NTOY, &r->t);
	free(r->errs);
}

/* ---- syntax and errors ---- */

struct syntax_case {
	const char *text;
	int nerrors;
	const char *errs; /* the whole error stream */
};

static const struct syntax_case syntax_cases[] = {
	{"# comment\n\n   \t\ncount = 4  # trailing\r\nlabel = \"a # b \\\" c\"\n", 0, ""},
	{"label = x#y\n", 0, ""},
	{"count\n", 1, "f:1: expected 'key = value' (no '=' on this line)\n"},
	{"\n = 4\n", 1, "f:2: missing key before '='\n"},
	{"cuont = 4\n", 1, "f:1: unknown key 'cuont' (did you mean 'count'?)\n"},
	{"zzzzzz = 4\n", 1, "f:1: unknown key 'zzzzzz'\n"},
	{"count = 4\ncount = 5\n", 1, "f:2: duplicate key 'count' (first set on line 1)\n"},
	{"label = \"open\n", 1, "f:1: unterminated quote in value of label\n"},
	{"label = \"a\\n\"\n", 1, "f:1: invalid escape '\\n' in quoted value of label: only \\\" and \\\\ are known\n"},
	{"label = \"a\" b\n", 1, "f:1: unexpected text after the closing quote of label\n"},
	{"count = 10\nlow = soon\nfixed =\n", 3,
	 "f:1: count must be between 1 and 9 (got 10)\n"
	 "f:2: invalid duration 'soon' for low: use a number with ms, s, m or h\n"
	 "f:3: fixed needs a value\n"},
	{"unknown\xff = 1\n", 1, "f:1: unknown key 'unknown\\xff'\n"},
};

static void test_lines_and_errors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof syntax_cases / sizeof syntax_cases[0]; i++) {
		struct run r;
		run_parse(&r, syntax_cases[i].text, NULL, 0);
		if (r.nerrors != syntax_cases[i].nerrors || strcmp(r.errs, syntax_cases[i].errs) != 0)
			fail_msg("case %zu: %d errors <<%s>>, want %d <<%s>>", i, r.nerrors, r.errs, syntax_cases[i].nerrors,
			         syntax_cases[i].errs);
		run_free(&r);
	}
}

static void test_values_land_in_the_struct(void **state)
{
	struct run r;

	(void)state;
	run_parse(&r, "count = 7\nlabel = \"  two words \"\nlow = 250ms\n", NULL, 0);
	assert_int_equal(r.nerrors, 0);
	assert_int_equal(r.t.count, 7);
	assert_string_equal(r.t.label, "  two words ");
	assert_int_equal(r.t.low, 250);
	assert_int_equal(r.t.high, 10000); /* the default */
	run_free(&r);
}

static void test_nul_byte_and_long_line_are_errors_of_their_line(void **state)
{
	char text[CONF_LINE_MAX + 64];
	conf_parser p;
	struct toy t;

	(void)state;
	memset(&t, 0, sizeof t);
	assert_int_equal(conf_keys_set_defaults(toy_keys, NTOY, &t), 0);
	assert_int_equal(conf_parser_init(&p, toy_keys, NTOY, &t, "f", NULL), 0);
	conf_parse_buffer(&p, "count = 4\nlabel = a\0b\n", 22, NULL, 0);
	assert_int_equal(p.nerrors, 1);
	assert_int_equal(conf_parser_line(&p, "count"), 1);
	assert_int_equal(conf_parser_line(&p, "label"), 0);
	conf_parser_fini(&p);

	memset(text, 'x', sizeof text);
	memcpy(text, "label = ", 8);
	assert_int_equal(conf_parser_init(&p, toy_keys, NTOY, &t, "f", NULL), 0);
	conf_parse_buffer(&p, text, CONF_LINE_MAX + 1, NULL, 0);
	assert_int_equal(p.nerrors, 1);
	conf_parser_fini(&p);
	conf_keys_free(toy_keys, NTOY, &t);
}

/* ---- cross checks ---- */

static void test_cross_check_blames_the_later_line_and_only_runs_when_the_file_set_a_key(void **state)
{
	struct run r;

	(void)state;
	run_parse(&r, "high = 2s\ncount = 4\nlow = 5s\n", strict, 1);
	assert_string_equal(r.errs, "f:3: low above high\n");
	run_free(&r);

	run_parse(&r, "low = 5s\n\nhigh = 2s\n", strict, 1);
	assert_string_equal(r.errs, "f:3: low above high\n");
	run_free(&r);

	run_parse(&r, "high = 500ms\n", strict, 1); /* low unset: its default 1s is above 500ms */
	assert_string_equal(r.errs, "f:1: low above high\n");
	run_free(&r);

	run_parse(&r, "count = 4\n", strict, 1); /* neither set: defaults are consistent by construction */
	assert_string_equal(r.errs, "");
	run_free(&r);

	run_parse(&r, "low = soon\nhigh = 1ms\n", strict, 1); /* a refused value is reported once, not again */
	assert_int_equal(r.nerrors, 1);
	run_free(&r);

	run_parse(&r, "low = 5s\nhigh = 5s\n", strict, 1); /* equal is fine */
	assert_int_equal(r.nerrors, 0);
	run_free(&r);
}

static void test_cross_check_fits_an_unset_default_instead_of_refusing(void **state)
{
	struct run r;

	(void)state;
	run_parse(&r, "high = 500ms\n", fitting, 1);
	assert_int_equal(r.nerrors, 0);
	assert_int_equal(r.t.low, 500);
	run_free(&r);

	run_parse(&r, "low = 2s\nhigh = 500ms\n", fitting, 1); /* set by the file: still refused */
	assert_string_equal(r.errs, "f:2: low above high\n");
	run_free(&r);
}

/* ---- drivers ---- */

static void collect(const char *key, void *arg)
{
	char *list = arg;
	strcat(list, key);
	strcat(list, " ");
}

static void test_keep_static_keeps_restart_keys_and_reports_changes(void **state)
{
	struct run fresh, old;
	char reported[128] = "";

	(void)state;
	run_parse(&old, "count = 4\nfixed = old\nlabel = a\n", NULL, 0);
	run_parse(&fresh, "count = 4\nfixed = new\nlabel = b\nlow = 2s\n", NULL, 0);
	conf_keys_keep_static(toy_keys, NTOY, &fresh.t, &old.t, collect, reported);
	assert_string_equal(reported, "fixed ");
	assert_string_equal(fresh.t.fixed, "old");
	assert_string_equal(fresh.t.label, "b"); /* reloadable: the new value */
	assert_int_equal(fresh.t.low, 2000);
	run_free(&fresh);
	run_free(&old);
}

static void test_dump_and_reference_follow_the_table(void **state)
{
	struct run r;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	conf_key broken[2];

	(void)state;
	run_parse(&r, "low = 90s\nlabel = \"#x\"\n", NULL, 0);
	f = open_memstream(&buf, &len);
	conf_keys_dump(toy_keys, NTOY, &r.t, f);
	fclose(f);
	assert_string_equal(buf, "low = 90s\nhigh = 10s\ncount = 3\nlabel = \"#x\"\nfixed = a\n");
	free(buf);
	run_free(&r);

	f = open_memstream(&buf, &len);
	assert_int_equal(conf_keys_reference(toy_keys, 3, f), 0);
	fclose(f);
	assert_string_equal(buf, "low\tduration\t1s\t0s\t1h\treload\tthe lower one\n"
	                         "high\tduration\t10s\t0s\t1h\treload\tthe higher one\n"
	                         "count\tinteger\t3\t1\t9\trestart\ta restart-only number\n");
	free(buf);

	memcpy(broken, toy_keys, sizeof broken);
	broken[1].why = "";
	f = open_memstream(&buf, &len);
	assert_int_equal(conf_keys_reference(broken, 2, f), -1); /* a key without a reason fails the man build */
	fclose(f);
	assert_non_null(strstr(buf, "high\tduration"));
	free(buf);
}

static void test_a_bad_default_fails_the_defaults(void **state)
{
	conf_key bad = toy_keys[2];
	struct toy t;

	(void)state;
	memset(&t, 0, sizeof t);
	bad.def = "12"; /* above max */
	assert_int_equal(conf_keys_set_defaults(&bad, 1, &t), -1);
}

static void test_read_file(void **state)
{
	char path[] = "/tmp/test_conf_engine_XXXXXX", *buf = NULL, *errs = NULL;
	size_t len = 0, elen = 0;
	int fd = mkstemp(path);
	FILE *f;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "count = 4\n", 10), 10);
	close(fd);
	assert_int_equal(conf_read_file(path, NULL, &buf, &len), 0);
	assert_int_equal(len, 10);
	assert_memory_equal(buf, "count = 4\n", 10);
	free(buf);
	unlink(path);

	f = open_memstream(&errs, &elen);
	assert_int_equal(conf_read_file(path, f, &buf, &len), -1);
	fclose(f);
	assert_non_null(strstr(errs, ": cannot open: No such file or directory\n"));
	assert_memory_equal(errs, path, strlen(path));
	free(errs);
}

static void test_show_escapes_and_cuts(void **state)
{
	char sb[CONF_SHOW_BUF], big[200];

	(void)state;
	assert_string_equal(conf_show("a\\b\n\x01", sb), "a\\\\b\\x0a\\x01");
	memset(big, 'y', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	conf_show(big, sb);
	assert_int_equal(strlen(sb), CONF_SHOW_MAX + 3);
	assert_string_equal(sb + CONF_SHOW_MAX, "...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines_and_errors),
		cmocka_unit_test(test_values_land_in_the_struct),
		cmocka_unit_test(test_nul_byte_and_long_line_are_errors_of_their_line),
		cmocka_unit_test(test_cross_check_blames_the_later_line_and_only_runs_when_the_file_set_a_key),
		cmocka_unit_test(test_cross_check_fits_an_unset_default_instead_of_refusing),
		cmocka_unit_test(test_keep_static_keeps_restart_keys_and_reports_changes),
		cmocka_unit_test(test_dump_and_reference_follow_the_table),
		cmocka_unit_test(test_a_bad_default_fails_the_defaults),
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_show_escapes_and_cuts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
