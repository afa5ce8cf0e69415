/*
 * gateway/conf-policy.c — the config value types of the policy room's settings (policy/policy.h): status
 * lists, one status name, outcome=state maps and the age:interval poll schedule, one conf_type each. The
 * values are fixed-size arrays with a count, parsed by the policy room's own pol_parse_* functions (the
 * syntax lives next to its meaning) and wrapped here in the config's messages: "invalid KEY: reason".
 */
#include "gateway/conf-policy.h"

#include <string.h>

#include "policy/policy.h"

static void *field(void *obj, size_t off)
{
	return (char *)obj + off;
}

static const void *cfield(const void *obj, size_t off)
{
	return (const char *)obj + off;
}

/* ---- policy values: fixed-size arrays with a count at aux, so copying allocates nothing. The policy
 * parsers write into scratch space first, so a refused value leaves the field untouched. Equality compares
 * the first count entries by content: the parsers build names on their own stack, so the bytes after a
 * name's NUL are not theirs to promise. ---- */

#define LIST_BYTES ((size_t)POL_MAX_LIST * POL_NAME_MAX)
#define OUTCOMES_BYTES ((size_t)POL_MAX_LIST * sizeof(pol_outcome_map))
#define SCHEDULE_BYTES ((size_t)POL_MAX_STEPS * sizeof(pol_step))

union pol_scratch {
	char names[POL_MAX_LIST][POL_NAME_MAX];
	pol_outcome_map outcomes[POL_MAX_LIST];
	pol_step steps[POL_MAX_STEPS];
};

static size_t count_get(const void *obj, const conf_key *k)
{
	return *(const size_t *)cfield(obj, k->aux);
}

/* A policy parser's verdict as a config message: "invalid KEY: reason", kept printable. */
static int pol_refuse(const conf_key *k, char *perr, char *err, size_t errlen)
{
	for (char *q = perr; *q; q++) /* the policy parsers echo raw bytes: keep messages printable */
		if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f) *q = '?';
	snprintf(err, errlen, "invalid %s: %s", k->name, perr[0] ? perr : "not a valid value");
	return -1;
}

/* Store a parsed array of `bytes` and its count n. */
static int pol_store(void *obj, const conf_key *k, const union pol_scratch *tmp, size_t bytes, size_t n)
{
	memcpy(field(obj, k->off), tmp, bytes);
	*(size_t *)field(obj, k->aux) = n;
	return 0;
}

static int pol_copy_n(void *dst, const void *src, const conf_key *k, size_t bytes)
{
	*(size_t *)field(dst, k->aux) = count_get(src, k);
	memcpy(field(dst, k->off), cfield(src, k->off), bytes);
	return 0;
}

static int pol_list_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	union pol_scratch tmp;
	char perr[256] = "";
	size_t n = 0;

	memset(&tmp, 0, sizeof tmp);
	if (pol_parse_list(v, tmp.names, &n, perr, sizeof perr) != 0) return pol_refuse(k, perr, err, errlen);
	return pol_store(obj, k, &tmp, LIST_BYTES, n);
}

static bool pol_list_equal(const void *a, const void *b, const conf_key *k)
{
	const char(*na)[POL_NAME_MAX] = cfield(a, k->off), (*nb)[POL_NAME_MAX] = cfield(b, k->off);
	size_t n = count_get(a, k);

	if (n != count_get(b, k)) return false;
	for (size_t i = 0; i < n && i < POL_MAX_LIST; i++)
		if (strncmp(na[i], nb[i], POL_NAME_MAX) != 0) return false;
	return true;
}

static int pol_list_copy(void *dst, const void *src, const conf_key *k)
{
	return pol_copy_n(dst, src, k, LIST_BYTES);
}

static void pol_list_dump(const void *obj, const conf_key *k, FILE *out)
{
	const char(*names)[POL_NAME_MAX] = cfield(obj, k->off);
	size_t n = count_get(obj, k);

	for (size_t i = 0; i < n && i < POL_MAX_LIST; i++) fprintf(out, "%s%s", i ? " " : "", names[i]);
}

const conf_type conf_t_pol_list = {
	.name = "name list", .parse = pol_list_parse, .equal = pol_list_equal, .copy = pol_list_copy,
	.dump = pol_list_dump,
};

static int pol_name_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	union pol_scratch tmp;
	char perr[256] = "";
	size_t n = 0;

	memset(&tmp, 0, sizeof tmp);
	if (pol_parse_list(v, tmp.names, &n, perr, sizeof perr) != 0) return pol_refuse(k, perr, err, errlen);
	if (n != 1) {
		snprintf(err, errlen, "invalid %s: give exactly one status name", k->name);
		return -1;
	}
	memcpy(field(obj, k->off), tmp.names[0], POL_NAME_MAX);
	return 0;
}

static bool pol_name_equal(const void *a, const void *b, const conf_key *k)
{
	return strncmp(cfield(a, k->off), cfield(b, k->off), POL_NAME_MAX) == 0;
}

static int pol_name_copy(void *dst, const void *src, const conf_key *k)
{
	memcpy(field(dst, k->off), cfield(src, k->off), POL_NAME_MAX);
	return 0;
}

static void pol_name_dump(const void *obj, const conf_key *k, FILE *out)
{
	fputs((const char *)cfield(obj, k->off), out);
}

const conf_type conf_t_pol_name = {
	.name = "name", .parse = pol_name_parse, .equal = pol_name_equal, .copy = pol_name_copy,
	.dump = pol_name_dump,
};

static int pol_outcomes_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	union pol_scratch tmp;
	char perr[256] = "";
	size_t n = 0;

	memset(&tmp, 0, sizeof tmp);
	if (pol_parse_outcomes(v, tmp.outcomes, &n, perr, sizeof perr) != 0) return pol_refuse(k, perr, err, errlen);
	return pol_store(obj, k, &tmp, OUTCOMES_BYTES, n);
}

static bool pol_outcomes_equal(const void *a, const void *b, const conf_key *k)
{
	const pol_outcome_map *ma = cfield(a, k->off), *mb = cfield(b, k->off);
	size_t n = count_get(a, k);

	if (n != count_get(b, k)) return false;
	for (size_t i = 0; i < n && i < POL_MAX_LIST; i++)
		if (strncmp(ma[i].outcome, mb[i].outcome, POL_NAME_MAX) != 0 ||
		    strncmp(ma[i].state, mb[i].state, POL_NAME_MAX) != 0)
			return false;
	return true;
}

static int pol_outcomes_copy(void *dst, const void *src, const conf_key *k)
{
	return pol_copy_n(dst, src, k, OUTCOMES_BYTES);
}

static void pol_outcomes_dump(const void *obj, const conf_key *k, FILE *out)
{
	const pol_outcome_map *m = cfield(obj, k->off);
	size_t n = count_get(obj, k);

	for (size_t i = 0; i < n && i < POL_MAX_LIST; i++) fprintf(out, "%s%s=%s", i ? " " : "", m[i].outcome, m[i].state);
}

const conf_type conf_t_pol_outcomes = {
	.name = "outcome=state list", .parse = pol_outcomes_parse, .equal = pol_outcomes_equal,
	.copy = pol_outcomes_copy, .dump = pol_outcomes_dump,
};

static int pol_schedule_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	union pol_scratch tmp;
	char perr[256] = "";
	size_t n = 0;

	memset(&tmp, 0, sizeof tmp);
	if (pol_parse_schedule(v, tmp.steps, &n, perr, sizeof perr) != 0) return pol_refuse(k, perr, err, errlen);
	return pol_store(obj, k, &tmp, SCHEDULE_BYTES, n);
}

static bool pol_schedule_equal(const void *a, const void *b, const conf_key *k)
{
	const pol_step *sa = cfield(a, k->off), *sb = cfield(b, k->off);
	size_t n = count_get(a, k);

	if (n != count_get(b, k)) return false;
	for (size_t i = 0; i < n && i < POL_MAX_STEPS; i++)
		if (sa[i].below_age_ms != sb[i].below_age_ms || sa[i].interval_ms != sb[i].interval_ms) return false;
	return true;
}

static int pol_schedule_copy(void *dst, const void *src, const conf_key *k)
{
	return pol_copy_n(dst, src, k, SCHEDULE_BYTES);
}

static void pol_schedule_dump(const void *obj, const conf_key *k, FILE *out)
{
	const pol_step *st = cfield(obj, k->off);
	size_t n = count_get(obj, k);

	for (size_t i = 0; i < n && i < POL_MAX_STEPS; i++) {
		char age[32], iv[32];
		if (st[i].below_age_ms < 0)
			snprintf(age, sizeof age, "*");
		else
			conf_fmt_duration(st[i].below_age_ms, age, sizeof age);
		conf_fmt_duration(st[i].interval_ms, iv, sizeof iv);
		fprintf(out, "%s%s:%s", i ? " " : "", age, iv);
	}
}

const conf_type conf_t_pol_schedule = {
	.name = "age:interval list", .parse = pol_schedule_parse, .equal = pol_schedule_equal,
	.copy = pol_schedule_copy, .dump = pol_schedule_dump,
};
