/*
 * tests/unit/gateway/test_conf_redact.c — masking the password in a libpq connection string
 * (gateway/conf-redact.c), as a table.
 *
 * Owns: the URI form (user:password@ before the host, with an '@' inside the password; ?password= among
 * other parameters, and only that parameter), the key=value form (bare, spaced around '=', single-quoted
 * with escapes, at the start or the end), what must stay as it is (no password, a key that only begins
 * with "password", a password= inside another key's quoted value), and the output buffer: NUL-terminated
 * at any capacity, cut rather than overrun, nothing written at capacity 0. (test_config_files.c checks
 * that --print-config uses it.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "gateway/conf-redact.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

typedef struct {
	const char *in, *want;
} redact_case;

static void run_cases(const redact_case *cases, size_t n)
{
	char out[512];
	for (size_t i = 0; i < n; i++) {
		memset(out, 'X', sizeof out);
		conf_redact_conninfo(cases[i].in, out, sizeof out);
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("redact(%s)\n   got '%s'\n  want '%s'", cases[i].in ? cases[i].in : "(NULL)", out, cases[i].want);
	}
}

static void test_uri_form(void **state)
{
	static const redact_case cases[] = {
		{"postgresql://gw:s3cret@db.example:5432/app", "postgresql://gw:REDACTED@db.example:5432/app"},
		{"postgres://gw:s3cr@t@db/app?sslmode=require", "postgres://gw:REDACTED@db/app?sslmode=require"},
		{"postgresql://gw@db/app?password=s3cret&sslmode=require",
		 "postgresql://gw@db/app?password=REDACTED&sslmode=require"},
		{"postgresql://gw@db/app?sslmode=require&password=s3cret", "postgresql://gw@db/app?sslmode=require&password=REDACTED"},
		{"postgresql://gw:a@db/app?password=b", "postgresql://gw:REDACTED@db/app?password=REDACTED"},
		/* only the parameter named password: not one that ends in it, nor a value that says it */
		{"postgresql://db/app?passwordx=1", "postgresql://db/app?passwordx=1"},
		{"postgresql://db/app?xpassword=1&application_name=password=x",
		 "postgresql://db/app?xpassword=1&application_name=password=x"},
		{"postgresql://db/app", "postgresql://db/app"},
		{"postgresql://gw@db/app", "postgresql://gw@db/app"},
		/* an '@' after the host part is not a user:password@ */
		{"postgresql://db/app?options=a:b@c", "postgresql://db/app?options=a:b@c"},
		{"postgresql://gw:@db/app", "postgresql://gw:REDACTED@db/app"},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

static void test_key_value_form(void **state)
{
	static const redact_case cases[] = {
		{"host=db user=gw password=s3cret dbname=app", "host=db user=gw password=REDACTED dbname=app"},
		{"host=db password = s3cret dbname=app", "host=db password = REDACTED dbname=app"},
		{"host=db password='s3 c\\'ret' dbname=app", "host=db password=REDACTED dbname=app"},
		{"password='a\\\\' dbname=app", "password=REDACTED dbname=app"},
		{"password=s3cret", "password=REDACTED"},
		{"  password=s3cret\tdbname=app\n", "  password=REDACTED\tdbname=app\n"},
		{"password='never closed", "password=REDACTED"},
		/* other keys, even ones that look like it, keep their values */
		{"passwordx=1 password_file=/x dbname=app", "passwordx=1 password_file=/x dbname=app"},
		{"options='-c password=x' dbname=app", "options='-c password=x' dbname=app"},
		{"host=db dbname=app", "host=db dbname=app"},
		{"", ""},
		{NULL, ""},
	};
	(void)state;
	run_cases(cases, NELEM(cases));
}

/* The buffer: always NUL-terminated within cap, a long input cut, never a byte past cap. */
static void test_output_is_cut_to_capacity(void **state)
{
	static const char *in[] = {
		"host=db user=gw password=s3cret dbname=app",
		"postgresql://gw:s3cret@db/app?password=x&sslmode=require",
	};
	(void)state;

	for (size_t i = 0; i < NELEM(in); i++) {
		char full[256];
		conf_redact_conninfo(in[i], full, sizeof full);
		for (size_t cap = 1; cap <= strlen(full) + 1; cap++) {
			char out[256 + 8];
			memset(out, 'X', sizeof out);
			conf_redact_conninfo(in[i], out, cap);
			if (strlen(out) != cap - 1 || strncmp(out, full, cap - 1) != 0)
				fail_msg("redact(%s, cap %zu) = '%s', want the first %zu bytes of '%s'", in[i], cap, out, cap - 1, full);
			for (size_t j = cap; j < sizeof out; j++)
				if (out[j] != 'X') fail_msg("redact(%s, cap %zu) wrote byte %zu", in[i], cap, j);
			/* what is cut never shows a byte of the secret */
			if (strstr(out, "s3c") != NULL) fail_msg("redact(%s, cap %zu) shows the secret: '%s'", in[i], cap, out);
		}
	}
}

static void test_capacity_zero_writes_nothing(void **state)
{
	char out[4] = "XXX";
	(void)state;
	conf_redact_conninfo("password=s3cret", out, 0);
	assert_memory_equal(out, "XXX", 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uri_form),
		cmocka_unit_test(test_key_value_form),
		cmocka_unit_test(test_output_is_cut_to_capacity),
		cmocka_unit_test(test_capacity_zero_writes_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
