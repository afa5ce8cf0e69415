/*
 * tests/fuzz/fuzz_config.c — libFuzzer target: the config file parser (gateway/config.c) and the policy
 * value parsers under it (policy/).
 *
 * The input is a whole config file (a NUL-terminated copy; conf_load_string stops at the first NUL, as
 * its contract says). Checked on every input:
 *   - a conf comes back exactly when no error was reported, and the error stream holds exactly one
 *     "fuzz.conf:LINE: message" line per reported error, LINE within the file (junk input must give
 *     readable, one-line messages: a raw newline in a message would forge a line of --check-config);
 *   - an accepted file's conf_dump (what --print-config prints) loads again without error and dumps to
 *     the same text, unless a dumped line is longer than a line may be (see the README of this folder);
 *   - conf_keep_static against the defaults (what a reload does) leaves a conf that still dumps and frees.
 * The whole input also goes through pol_parse_duration and the pol_parse_* list parsers directly, which
 * the config file only reaches one bounded line at a time.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/config.h"
#include "policy/policy.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NAME "fuzz.conf"
#define LINE_MAX_BYTES 4096 /* CONF_LINE_MAX of config.c */

static conf *defaults;

#define CHECK(cond)                                                                                          \
	do {                                                                                                     \
		if (!(cond)) {                                                                                       \
			fprintf(stderr, "fuzz_config: invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond);      \
			abort();                                                                                         \
		}                                                                                                    \
	} while (0)

/* Load text; *errs gets the error stream (caller frees). */
static conf *load(const char *text, int *nerrors, char **errs, size_t *errlen)
{
	FILE *f = open_memstream(errs, errlen);
	if (f == NULL) abort();
	conf *c = conf_load_string(NAME, text, f, nerrors);
	if (fclose(f) != 0) abort();
	return c;
}

static char *dump(const conf *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL) abort();
	conf_dump(c, f);
	if (fclose(f) != 0) abort();
	return buf;
}

static size_t longest_line(const char *s)
{
	size_t best = 0;
	while (*s) {
		size_t n = strcspn(s, "\n");
		if (n > best) best = n;
		s += n;
		if (*s == '\n') s++;
	}
	return best;
}

/* Every error line is "fuzz.conf:LINE: message" with 1 <= LINE <= nlines; returns how many lines. */
static int check_errors(const char *errs, size_t errlen, long nlines)
{
	int count = 0;
	const char *p = errs;

	CHECK(strlen(errs) == errlen); /* no NUL byte in a message */
	while (*p) {
		const char *nl = strchr(p, '\n');
		CHECK(nl != NULL); /* every message ends its line */
		CHECK(strncmp(p, NAME ":", strlen(NAME ":")) == 0);
		char *end = NULL;
		long line = strtol(p + strlen(NAME ":"), &end, 10);
		CHECK(end != NULL && end[0] == ':' && end[1] == ' ');
		CHECK(line >= 1 && line <= nlines);
		count++;
		p = nl + 1;
	}
	return count;
}

static int keep_reports;
static void count_report(const char *key, void *arg)
{
	(void)arg;
	CHECK(key != NULL && key[0] != '\0');
	keep_reports++;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	cm_log_configure(CM_LOG_ERROR, CM_LOG_LOGFMT);
	defaults = conf_new_defaults();
	if (defaults == NULL) abort();
	return 0;
}

static void policy_parsers(const char *text)
{
	char names[POL_MAX_LIST][POL_NAME_MAX];
	pol_outcome_map outcomes[POL_MAX_LIST];
	pol_step steps[POL_MAX_STEPS];
	char err[256];
	size_t n = 0;
	int64_t ms = -1;

	if (pol_parse_duration(text, &ms) == 0) CHECK(ms >= 0);

	memset(err, 'x', sizeof err);
	if (pol_parse_list(text, names, &n, err, sizeof err) == 0) {
		CHECK(n >= 1 && n <= POL_MAX_LIST);
		for (size_t i = 0; i < n; i++) CHECK(memchr(names[i], '\0', POL_NAME_MAX) != NULL && names[i][0] != '\0');
	} else {
		CHECK(memchr(err, '\0', sizeof err) != NULL);
	}

	memset(err, 'x', sizeof err);
	if (pol_parse_outcomes(text, outcomes, &n, err, sizeof err) == 0) {
		CHECK(n <= POL_MAX_LIST);
		for (size_t i = 0; i < n; i++)
			CHECK(memchr(outcomes[i].outcome, '\0', POL_NAME_MAX) != NULL &&
			      memchr(outcomes[i].state, '\0', POL_NAME_MAX) != NULL);
	} else {
		CHECK(memchr(err, '\0', sizeof err) != NULL);
	}

	memset(err, 'x', sizeof err);
	if (pol_parse_schedule(text, steps, &n, err, sizeof err) == 0) {
		CHECK(n >= 1 && n <= POL_MAX_STEPS);
		CHECK(steps[n - 1].below_age_ms == -1);
		for (size_t i = 0; i < n; i++) CHECK(steps[i].interval_ms > 0);
		for (size_t i = 0; i + 2 < n; i++) CHECK(steps[i].below_age_ms < steps[i + 1].below_age_ms);
	} else {
		CHECK(memchr(err, '\0', sizeof err) != NULL);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = NULL, *errs = NULL, *errs2 = NULL, *d1 = NULL, *d2 = NULL;
	size_t errlen = 0, errlen2 = 0;
	conf *c = NULL, *again = NULL;
	int nerr = -1, nerr2 = -1;

	text = malloc(size + 1);
	if (text == NULL) return 0;
	memcpy(text, data, size);
	text[size] = '\0';

	/* Lines as the parser counts them: the text up to its first NUL, split at '\n'. */
	size_t len = strlen(text);
	long nlines = 0;
	for (size_t i = 0; i < len; i++) nlines += text[i] == '\n';
	if (len > 0 && text[len - 1] != '\n') nlines++;

	c = load(text, &nerr, &errs, &errlen);
	CHECK((c == NULL) == (nerr > 0) && nerr >= 0);
	CHECK(check_errors(errs, errlen, nlines) == nerr);

	if (c != NULL) {
		d1 = dump(c);
		if (longest_line(d1) <= LINE_MAX_BYTES) {
			again = load(d1, &nerr2, &errs2, &errlen2);
			if (again == NULL) fprintf(stderr, "fuzz_config: the dump does not load again:\n%s---\n%s", d1, errs2);
			CHECK(again != NULL && nerr2 == 0);
			d2 = dump(again);
			if (strcmp(d1, d2) != 0) fprintf(stderr, "fuzz_config: dump changed on reload:\n%s---\n%s", d1, d2);
			CHECK(strcmp(d1, d2) == 0);
			/* A reload of the same values reports no restart-only key as changed. Not when the dump
			 * masked a password: the masked `database` it loads back is rightly a different value (found
			 * by the fuzzer once the dump began to redact). */
			if (strstr(d1, "REDACTED") == NULL) {
				keep_reports = 0;
				conf_keep_static(again, c, count_report, NULL);
				CHECK(keep_reports == 0);
			}
		}
		/* A reload against the defaults: restart-only keys are copied back from them. */
		conf_keep_static(c, defaults, count_report, NULL);
		free(d2);
		d2 = dump(c);
		CHECK(d2 != NULL && d2[0] != '\0');
	}

	policy_parsers(text);

	conf_free(again);
	conf_free(c);
	free(d1);
	free(d2);
	free(errs);
	free(errs2);
	free(text);
	return 0;
}
