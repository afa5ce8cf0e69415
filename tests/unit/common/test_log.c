/*
 * tests/unit/common/test_log.c — common/log.c as a specification: a value from outside, quoted with CM_Q(),
 * can neither end its field nor forge another one, and no control byte reaches the line raw, in both
 * formats; JSON lines carry every field as its own member (numbers as numbers) and the syslog priority.
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

#include <jansson.h>

#include "common/log.h"

static char logpath[64];

/* Log one line in `fmt`-format to a scratch file and return it (caller frees). */
static char *capture(cm_log_format f, const char *rid, const char *path_value)
{
	snprintf(logpath, sizeof logpath, "/tmp/pollgate-test-log-%d", (int)getpid());
	unlink(logpath);
	cm_log_configure(CM_LOG_DEBUG, f);
	assert_int_equal(cm_log_open(logpath), 0);
	cm_log_write(CM_LOG_INFO, rid, "request method=GET path=%s client=%s n=42 ratio=0.25 tok=%s", CM_Q(path_value),
	             "10.0.0.1", "0123abcd");
	cm_log_close();
	FILE *fp = fopen(logpath, "r");
	assert_non_null(fp);
	char *buf = calloc(1, 16384);
	size_t n = fread(buf, 1, 16383, fp);
	fclose(fp);
	unlink(logpath);
	buf[n] = '\0';
	return buf;
}

static const char *const hostile = "/v1/runs/1 rid=forged level=error \"x\x1b[31mred\r\nts=0 \\\"";

typedef struct seen {
	int n_rid, n_path, n_level;
	char path[512];
} seen;

static void on_field(void *arg, const char *key, const char *val, size_t vlen, int quoted)
{
	seen *s = arg;
	(void)quoted;
	if (strcmp(key, "rid") == 0) s->n_rid++;
	if (strcmp(key, "level") == 0) s->n_level++;
	if (strcmp(key, "path") == 0) {
		s->n_path++;
		snprintf(s->path, sizeof s->path, "%.*s", (int)vlen, val);
	}
}

static void test_logfmt_injection(void **state)
{
	(void)state;
	char *line = capture(CM_LOG_LOGFMT, "abc123", hostile);
	/* one line, no raw ESC or CR */
	assert_null(strchr(line, '\x1b'));
	assert_null(strchr(line, '\r'));
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);
	line[strlen(line) - 1] = '\0';
	/* the line parses back to exactly one rid, one level and the path as sent */
	size_t textlen;
	seen s = {0};
	cm_log_parse(strstr(line, " level="), &textlen, on_field, &s);
	assert_int_equal(s.n_rid, 1);
	assert_int_equal(s.n_level, 1);
	assert_int_equal(s.n_path, 1);
	assert_string_equal(s.path, hostile);
	assert_non_null(strstr(line, " rid=abc123 "));
	free(line);
}

static void test_json_members(void **state)
{
	(void)state;
	char *line = capture(CM_LOG_JSON, "abc123", hostile);
	assert_null(strchr(line, '\x1b'));
	assert_null(strchr(line, '\r'));
	json_error_t e;
	json_t *j = json_loads(line, 0, &e);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "rid")), "abc123");
	assert_string_equal(json_string_value(json_object_get(j, "level")), "info");
	assert_int_equal(json_integer_value(json_object_get(j, "priority")), 6);
	assert_string_equal(json_string_value(json_object_get(j, "msg")), "request");
	assert_string_equal(json_string_value(json_object_get(j, "method")), "GET");
	assert_string_equal(json_string_value(json_object_get(j, "path")), hostile);
	assert_string_equal(json_string_value(json_object_get(j, "client")), "10.0.0.1");
	assert_true(json_is_integer(json_object_get(j, "n")));
	assert_int_equal(json_integer_value(json_object_get(j, "n")), 42);
	assert_true(json_is_real(json_object_get(j, "ratio")));
	assert_string_equal(json_string_value(json_object_get(j, "tok")), "0123abcd"); /* not a JSON number */
	json_decref(j);
	free(line);
}

static void test_process_field_on_every_line(void **state)
{
	(void)state;
	cm_log_set_process("worker=3");
	char *a = capture(CM_LOG_LOGFMT, NULL, "/x");
	char *b = capture(CM_LOG_JSON, NULL, "/x");
	cm_log_set_process(NULL);
	char *c = capture(CM_LOG_LOGFMT, NULL, "/x");
	assert_non_null(strstr(a, " worker=3\n"));
	assert_non_null(strstr(b, "\"worker\":3}"));
	assert_null(strstr(c, "worker="));
	free(a);
	free(b);
	free(c);
}

static void test_quote(void **state)
{
	(void)state;
	char b[24];
	assert_string_equal(cm_log_quote(b, sizeof b, "a b"), "\"a b\"");
	assert_string_equal(cm_log_quote(b, sizeof b, NULL), "\"\"");
	assert_string_equal(cm_log_quote(b, sizeof b, "\x1b\xff"), "\"\\u001b\\ufffd\"");
	assert_string_equal(cm_log_quote(b, sizeof b, "0123456789abcdefghijklmnop"), "\"0123456789abcdefgh...\"");
	assert_string_equal(cm_log_quote(b, sizeof b, "\xc3\xa9"), "\"\xc3\xa9\"");
}

static void test_priorities(void **state)
{
	(void)state;
	assert_int_equal(cm_log_level_priority(CM_LOG_ERROR), 3);
	assert_int_equal(cm_log_level_priority(CM_LOG_WARN), 4);
	assert_int_equal(cm_log_level_priority(CM_LOG_INFO), 6);
	assert_int_equal(cm_log_level_priority(CM_LOG_DEBUG), 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_logfmt_injection),
		cmocka_unit_test(test_json_members),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_process_field_on_every_line),
		cmocka_unit_test(test_priorities),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
