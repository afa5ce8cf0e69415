/*
 * tests/unit/gateway/prom_check.h — a checker of the Prometheus text exposition format (0.0.4) for the unit
 * tests (test_metrics.c renders /metrics and runs every rendering through check_exposition; that file
 * also tests the checker on broken inputs). Static functions, included by one test file.
 */
#ifndef POLLGATE_TESTS_PROM_CHECK_H
#define POLLGATE_TESTS_PROM_CHECK_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the text format's rules ----
 *
 * Prometheus text exposition 0.0.4, as this file checks it: lines end in \n, the last one too; a family
 * is "# HELP name text", then "# TYPE name type" (counter, gauge, histogram, summary, untyped), then its
 * samples, all together, and no family appears twice; metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label
 * names [a-zA-Z_][a-zA-Z0-9_]* (never "__" first, never twice in one sample), label values are quoted
 * with only \\, \" and \n escaped; a value is a decimal float, NaN, +Inf or -Inf; no series twice. A
 * counter's samples are NAME (ending in _total, the convention promtool enforces); a histogram's are
 * NAME_bucket with an le label, NAME_sum and NAME_count, and per label set the buckets ascend in le,
 * never decrease, end at +Inf, and _count equals that last bucket. */

/* A broken rule fails the test; in a probing child (test_the_checker_refuses_each_broken_rule) it ends
 * the child with status 1 instead. */
static bool probing;
#define BAD(...)                                                                                             \
	do {                                                                                                     \
		if (probing) _exit(1);                                                                               \
		fail_msg(__VA_ARGS__);                                                                               \
	} while (0)

#define MAX_SERIES 512
#define MAX_GROUPS 32

typedef struct hist_group {
	char key[256]; /* the labels other than le */
	double last_le, last_cum, inf;
	bool saw_bucket, saw_inf, saw_sum, saw_count;
	double count;
} hist_group;

typedef struct checker {
	char family[128], type[32];
	bool help_seen, type_seen;
	char *families[MAX_SERIES];
	size_t nfamilies;
	char *series[MAX_SERIES * 4];
	size_t nseries;
	hist_group g[MAX_GROUPS];
	size_t ng;
	int line;
} checker;

static bool metric_name_ok(const char *s, size_t n)
{
	if (n == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':')) return false;
	for (size_t i = 1; i < n; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':')) return false;
	return true;
}

static bool value_ok(const char *s, double *v)
{
	if (strcmp(s, "NaN") == 0) return *v = NAN, true;
	if (strcmp(s, "+Inf") == 0) return *v = INFINITY, true;
	if (strcmp(s, "-Inf") == 0) return *v = -INFINITY, true;
	const char *p = s;
	if (*p == '-') p++;
	if (!isdigit((unsigned char)*p)) return false;
	while (isdigit((unsigned char)*p)) p++;
	if (*p == '.') {
		p++;
		if (!isdigit((unsigned char)*p)) return false;
		while (isdigit((unsigned char)*p)) p++;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-') p++;
		if (!isdigit((unsigned char)*p)) return false;
		while (isdigit((unsigned char)*p)) p++;
	}
	if (*p != '\0') return false;
	*v = strtod(s, NULL);
	return true;
}

static bool ends_with(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);
	return n >= m && memcmp(s + n - m, suffix, m) == 0;
}

static void family_end(checker *c)
{
	if (c->family[0] == '\0') return;
	if (!c->type_seen) BAD("line %d: family %s has no # TYPE", c->line, c->family);
	for (size_t i = 0; i < c->ng; i++) {
		hist_group *g = &c->g[i];
		if (!g->saw_bucket || !g->saw_inf || !g->saw_sum || !g->saw_count)
			BAD("histogram %s{%s}: needs buckets ending at +Inf, _sum and _count", c->family, g->key);
		if (g->count != g->inf) BAD("histogram %s{%s}: _count %g but the +Inf bucket %g", c->family, g->key, g->count, g->inf);
	}
	c->ng = 0;
	c->family[0] = '\0';
	c->help_seen = c->type_seen = false;
}

static hist_group *group_of(checker *c, const char *key)
{
	for (size_t i = 0; i < c->ng; i++)
		if (strcmp(c->g[i].key, key) == 0) return &c->g[i];
	assert_true(c->ng < MAX_GROUPS);
	hist_group *g = &c->g[c->ng++];
	memset(g, 0, sizeof *g);
	snprintf(g->key, sizeof g->key, "%s", key);
	g->last_le = -INFINITY;
	return g;
}

static void check_comment(checker *c, const char *l)
{
	char name[128];
	int n = 0;
	if (strncmp(l, "# HELP ", 7) == 0) {
		family_end(c);
		if (sscanf(l + 7, "%127[^ ]%n", name, &n) != 1 || l[7 + n] != ' ' || l[8 + n] == '\0')
			BAD("line %d: HELP without a name and a text: %s", c->line, l);
		if (!metric_name_ok(name, strlen(name))) BAD("line %d: bad metric name %s", c->line, name);
		for (size_t i = 0; i < c->nfamilies; i++)
			if (strcmp(c->families[i], name) == 0) BAD("line %d: family %s appears twice", c->line, name);
		assert_true(c->nfamilies < MAX_SERIES);
		c->families[c->nfamilies++] = strdup(name);
		snprintf(c->family, sizeof c->family, "%s", name);
		c->help_seen = true;
		/* in HELP text only \\ and \n are escapes */
		for (const char *p = l + 8 + n; *p; p++)
			if (*p == '\\' && p[1] != '\\' && p[1] != 'n') BAD("line %d: bad escape in HELP", c->line);
		return;
	}
	if (strncmp(l, "# TYPE ", 7) == 0) {
		char type[32];
		if (!c->help_seen || c->type_seen) BAD("line %d: TYPE not right after its HELP: %s", c->line, l);
		if (sscanf(l + 7, "%127s %31s", name, type) != 2 || strcmp(name, c->family) != 0)
			BAD("line %d: TYPE of another family: %s", c->line, l);
		if (strcmp(type, "counter") && strcmp(type, "gauge") && strcmp(type, "histogram") && strcmp(type, "summary") &&
		    strcmp(type, "untyped"))
			BAD("line %d: unknown type %s", c->line, type);
		if (strcmp(type, "counter") == 0 && !ends_with(name, strlen(name), "_total"))
			BAD("line %d: counter %s does not end in _total", c->line, name);
		snprintf(c->type, sizeof c->type, "%s", type);
		c->type_seen = true;
		return;
	}
	BAD("line %d: a comment that is neither HELP nor TYPE: %s", c->line, l);
}

static void check_sample(checker *c, const char *l)
{
	size_t nl = strcspn(l, "{ ");
	const char *p = l + nl;
	char key[256] = "", le[64] = "", labels_seen[16][64];
	int nlabels = 0;
	double v;

	if (!c->type_seen) BAD("line %d: a sample outside a family: %s", c->line, l);
	if (!metric_name_ok(l, nl)) BAD("line %d: bad metric name: %s", c->line, l);
	if (*p == '{') {
		p++;
		while (*p != '}') {
			size_t kl = strcspn(p, "=");
			char lname[64];
			if (kl == 0 || kl >= sizeof lname || p[kl] != '=' || p[kl + 1] != '"')
				BAD("line %d: bad label: %s", c->line, l);
			memcpy(lname, p, kl);
			lname[kl] = '\0';
			if (!(isalpha((unsigned char)lname[0]) || lname[0] == '_') || strncmp(lname, "__", 2) == 0)
				BAD("line %d: bad label name %s", c->line, lname);
			for (size_t i = 1; i < kl; i++)
				if (!(isalnum((unsigned char)lname[i]) || lname[i] == '_')) BAD("line %d: bad label name %s", c->line, lname);
			for (int i = 0; i < nlabels; i++)
				if (strcmp(labels_seen[i], lname) == 0) BAD("line %d: label %s twice", c->line, lname);
			assert_true(nlabels < 16);
			snprintf(labels_seen[nlabels++], 64, "%s", lname);
			p += kl + 2;
			const char *vstart = p;
			for (; *p != '"'; p++) {
				if (*p == '\0' || *p == '\n') BAD("line %d: unterminated label value: %s", c->line, l);
				if (*p == '\\') {
					if (p[1] != '\\' && p[1] != '"' && p[1] != 'n') BAD("line %d: bad escape: %s", c->line, l);
					p++;
				}
			}
			size_t vl = (size_t)(p - vstart);
			if (strcmp(lname, "le") == 0) snprintf(le, sizeof le, "%.*s", (int)vl, vstart);
			else snprintf(key + strlen(key), sizeof key - strlen(key), "%s=%.*s,", lname, (int)vl, vstart);
			p++;
			if (*p == ',') p++;
			else if (*p != '}') BAD("line %d: labels not separated by ',': %s", c->line, l);
		}
		p++;
	}
	if (*p != ' ' || !value_ok(p + 1, &v)) BAD("line %d: bad value: %s", c->line, l);

	char series[512];
	snprintf(series, sizeof series, "%.*s", (int)(p - l), l);
	for (size_t i = 0; i < c->nseries; i++)
		if (strcmp(c->series[i], series) == 0) BAD("line %d: series twice: %s", c->line, series);
	assert_true(c->nseries < MAX_SERIES * 4);
	c->series[c->nseries++] = strdup(series);

	size_t fl = strlen(c->family);
	bool own = nl == fl && memcmp(l, c->family, fl) == 0;
	if (strcmp(c->type, "histogram") != 0) {
		if (!own) BAD("line %d: sample of another family than %s: %s", c->line, c->family, l);
		if (le[0]) BAD("line %d: le label outside a histogram: %s", c->line, l);
		return;
	}
	if (own || nl <= fl || memcmp(l, c->family, fl) != 0) BAD("line %d: not a sample of histogram %s: %s", c->line, c->family, l);
	const char *suffix = l + fl;
	size_t sl = nl - fl;
	hist_group *g = group_of(c, key);
	if (sl == 7 && memcmp(suffix, "_bucket", 7) == 0) {
		double lev;
		if (!le[0] || !value_ok(le, &lev) || isnan(lev)) BAD("line %d: bucket without a valid le: %s", c->line, l);
		if (g->saw_inf || lev <= g->last_le) BAD("line %d: buckets not ascending in le: %s", c->line, l);
		if (g->saw_bucket && v < g->last_cum) BAD("line %d: buckets not cumulative: %s", c->line, l);
		g->saw_bucket = true;
		g->last_le = lev;
		g->last_cum = v;
		if (isinf(lev)) g->saw_inf = true, g->inf = v;
	} else if (sl == 4 && memcmp(suffix, "_sum", 4) == 0) {
		if (le[0] || g->saw_sum) BAD("line %d: bad _sum: %s", c->line, l);
		g->saw_sum = true;
	} else if (sl == 6 && memcmp(suffix, "_count", 6) == 0) {
		if (le[0] || g->saw_count) BAD("line %d: bad _count: %s", c->line, l);
		g->saw_count = true;
		g->count = v;
	} else {
		BAD("line %d: not a sample of histogram %s: %s", c->line, c->family, l);
	}
}

static void check_exposition(const char *text)
{
	checker *c = calloc(1, sizeof *c);
	assert_non_null(c);
	size_t len = strlen(text);
	if (len == 0 || text[len - 1] != '\n') BAD("the exposition does not end in a newline");
	for (const char *l = text; *l;) {
		const char *nlp = strchr(l, '\n');
		char line[1024];
		size_t n = (size_t)(nlp - l);
		c->line++;
		if (n >= sizeof line) BAD("line %d too long", c->line);
		memcpy(line, l, n);
		line[n] = '\0';
		if (n == 0) BAD("line %d: empty", c->line);
		if (line[0] == '#') check_comment(c, line);
		else check_sample(c, line);
		l = nlp + 1;
	}
	family_end(c);
	for (size_t i = 0; i < c->nfamilies; i++) free(c->families[i]);
	for (size_t i = 0; i < c->nseries; i++) free(c->series[i]);
	free(c);
}

#endif
