/*
 * tests/unit/gateway/config_helpers.h — helpers shared by the config-file unit tests (test_config.c and
 * test_config_files.c): load a text as file "t" and capture its error stream, load one that must be
 * clean, and read back what conf_dump prints for a key. Static inline, so each test file links alone.
 */
#ifndef POLLGATE_TESTS_CONFIG_HELPERS_H
#define POLLGATE_TESTS_CONFIG_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/config.h"

/* Parse text as file "t"; *errs gets everything written to the error stream (caller frees). */
static inline conf *load(const char *text, int *nerrors, char **errs)
{
	size_t len = 0;
	FILE *f = open_memstream(errs, &len);
	conf *c;

	assert_non_null(f);
	c = conf_load_string("t", text, f, nerrors);
	fclose(f);
	return c;
}

static inline conf *load_ok(const char *text)
{
	int n = -1;
	char *errs = NULL;
	conf *c = load(text, &n, &errs);

	if (c == NULL || n != 0) fprintf(stderr, "unexpected errors for <<%s>>:\n%s", text, errs);
	assert_non_null(c);
	assert_int_equal(n, 0);
	assert_string_equal(errs, "");
	free(errs);
	return c;
}

static inline char *dump(const conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	conf_dump(c, f);
	fclose(f);
	return buf;
}

/* The value conf_dump prints for key (caller frees). */
static inline char *dumped(const conf *c, const char *key)
{
	char *all = dump(c), *line = all, *out = NULL;
	size_t klen = strlen(key);

	while (line && *line) {
		char *nl = strchr(line, '\n');
		if (strncmp(line, key, klen) == 0 && strncmp(line + klen, " = ", 3) == 0) {
			out = strndup(line + klen + 3, strcspn(line + klen + 3, "\n"));
			break;
		}
		line = nl ? nl + 1 : NULL;
	}
	free(all);
	if (out == NULL) fail_msg("key %s not in dump", key);
	return out;
}

static inline void assert_dumped(const conf *c, const char *key, const char *want)
{
	char *got = dumped(c, key);
	if (strcmp(got, want) != 0) fail_msg("%s: dumped '%s', want '%s'", key, got, want);
	free(got);
}

#endif
