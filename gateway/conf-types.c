/*
 * gateway/conf-types.c — the value types of the config file: for each, how a value is parsed and checked,
 * freed, compared, copied and written back, gathered in one conf_type so the engine (conf-engine.c) and
 * the key table (config.c) never switch on a type. A new type is one block here and one line in
 * conf-types.h. Fields are reached through the key's offsets; every parse leaves the field untouched when
 * it refuses a value, and its message names the key and echoes the value through conf_show().
 */
#include "gateway/conf-types.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "gateway/cidr.h"
#include "gateway/conf-redact.h"
#include "policy/policy.h" /* pol_parse_duration */

/* ---- typed access through a table offset ---- */

static void *field(void *obj, size_t off)
{
	return (char *)obj + off;
}

static const void *cfield(const void *obj, size_t off)
{
	return (const char *)obj + off;
}

static char **str_at(void *obj, size_t off)
{
	return (char **)field(obj, off);
}

static const char *cstr_at(const void *obj, size_t off)
{
	return *(char *const *)cfield(obj, off);
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

/* A number field: int when aux says so (conf_t_int on an int), else int64_t. */
static int64_t num_get(const void *obj, const conf_key *k)
{
	if (k->aux == sizeof(int)) return *(const int *)cfield(obj, k->off);
	return *(const int64_t *)cfield(obj, k->off);
}

static void num_put(void *obj, const conf_key *k, int64_t v)
{
	if (k->aux == sizeof(int))
		*(int *)field(obj, k->off) = (int)v;
	else
		*(int64_t *)field(obj, k->off) = v;
}

static bool num_equal(const void *a, const void *b, const conf_key *k)
{
	return num_get(a, k) == num_get(b, k);
}

static int num_copy(void *dst, const void *src, const conf_key *k)
{
	num_put(dst, k, num_get(src, k));
	return 0;
}

static bool int_equal(const void *a, const void *b, const conf_key *k)
{
	return *(const int *)cfield(a, k->off) == *(const int *)cfield(b, k->off);
}

static int int_copy(void *dst, const void *src, const conf_key *k)
{
	*(int *)field(dst, k->off) = *(const int *)cfield(src, k->off);
	return 0;
}

/* "KEY must be between LO and HI (got V)", the bounds written in the type's unit. */
static int bounds_error(const conf_key *k, const char *given, char *err, size_t errlen)
{
	char lo[32], hi[32], sb[CONF_SHOW_BUF];

	k->type->bound(k->min, lo, sizeof lo);
	k->type->bound(k->max, hi, sizeof hi);
	snprintf(err, errlen, "%s must be between %s and %s (got %s)", k->name, lo, hi, conf_show(given, sb));
	return -1;
}

/* ---- strings ---- */

static int string_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char *copy;

	if (k->check && k->check(v, err, errlen) != 0) return -1;
	/* --print-config must give a file that loads again: the value, quoted and escaped as it would be
	 * written back, must fit one line. */
	size_t w = strlen(k->name) + 3 + conf_dumped_len(v);
	if (w > CONF_LINE_MAX) {
		snprintf(err, errlen, "value of %s is too long (%zu bytes once written back; a line holds at most %d)",
		         k->name, w, CONF_LINE_MAX);
		return -1;
	}
	copy = strdup(v);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	free(*str_at(obj, k->off));
	*str_at(obj, k->off) = copy;
	return 0;
}

static void string_free(void *obj, const conf_key *k)
{
	free(*str_at(obj, k->off));
	*str_at(obj, k->off) = NULL;
}

static bool string_equal(const void *a, const void *b, const conf_key *k)
{
	return str_eq(cstr_at(a, k->off), cstr_at(b, k->off));
}

static int string_copy(void *dst, const void *src, const conf_key *k)
{
	const char *s = cstr_at(src, k->off);
	char *t = strdup(s ? s : "");
	if (t == NULL) return -1;
	free(*str_at(dst, k->off));
	*str_at(dst, k->off) = t;
	return 0;
}

static void string_dump(const void *obj, const conf_key *k, FILE *out)
{
	conf_dump_string(cstr_at(obj, k->off), out);
}

const conf_type conf_t_string = {
	.name = "string", .parse = string_parse, .free = string_free, .equal = string_equal,
	.copy = string_copy, .dump = string_dump,
};

/* --print-config never shows the database password. */
static void conninfo_dump(const void *obj, const conf_key *k, FILE *out)
{
	const char *v = cstr_at(obj, k->off);
	size_t cap = 2 * (v ? strlen(v) : 0) + 16;
	char *red = malloc(cap);

	if (red == NULL) {
		fputs("\"\"", out);
		return;
	}
	conf_redact_conninfo(v, red, cap);
	conf_dump_string(red, out);
	free(red);
}

const conf_type conf_t_conninfo = {
	.name = "string", .parse = string_parse, .free = string_free, .equal = string_equal,
	.copy = string_copy, .dump = conninfo_dump,
};

/* ---- listen ---- */

static int listen_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];
	const char *colon, *host_start, *host_end;
	char *text = NULL, *host = NULL;
	int64_t port;
	const char *end;
	int rc = -1;

	if (v[0] == '[') {
		host_start = v + 1;
		host_end = strchr(v, ']');
		if (host_end == NULL) {
			snprintf(err, errlen, "invalid listen address '%s': missing ']' after the IPv6 address",
			         conf_show(v, sb));
			goto out;
		}
		colon = host_end + 1;
		if (*colon != ':') {
			snprintf(err, errlen, "invalid listen address '%s': expected ADDRESS:PORT", conf_show(v, sb));
			goto out;
		}
	} else {
		host_start = v;
		colon = strrchr(v, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "invalid listen address '%s': expected ADDRESS:PORT", conf_show(v, sb));
			goto out;
		}
		host_end = colon;
		if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
			snprintf(err, errlen, "invalid listen address '%s': write an IPv6 address in brackets, as [::1]:8080",
			         conf_show(v, sb));
			goto out;
		}
	}

	if (conf_scan_int(colon + 1, false, &port, &end) != 0 || *end != '\0' || port < 1 || port > 65535) {
		snprintf(err, errlen, "invalid listen address '%s': the port must be a number between 1 and 65535",
		         conf_show(v, sb));
		goto out;
	}

	host = strndup(host_start, (size_t)(host_end - host_start));
	if (host == NULL) goto oom;
	{
		unsigned char buf[16];
		bool ok;
		if (v[0] == '[')
			ok = inet_pton(AF_INET6, host, buf) == 1;
		else
			ok = strcmp(host, "localhost") == 0 || inet_pton(AF_INET, host, buf) == 1;
		if (!ok) {
			snprintf(err, errlen,
			         "invalid listen address '%s': the address must be an IPv4 address, [IPv6] or localhost",
			         conf_show(v, sb));
			goto out;
		}
	}
	text = strdup(v);
	if (text == NULL) goto oom;

	free(*str_at(obj, k->off));
	free(*str_at(obj, k->aux));
	*str_at(obj, k->off) = text;
	*str_at(obj, k->aux) = host;
	*(int *)field(obj, k->aux2) = (int)port;
	text = host = NULL;
	rc = 0;
	goto out;
oom:
	snprintf(err, errlen, "out of memory");
out:
	free(text);
	free(host);
	return rc;
}

static void listen_free(void *obj, const conf_key *k)
{
	string_free(obj, k);
	free(*str_at(obj, k->aux));
	*str_at(obj, k->aux) = NULL;
}

static bool listen_equal(const void *a, const void *b, const conf_key *k)
{
	return str_eq(cstr_at(a, k->aux), cstr_at(b, k->aux)) &&
	       *(const int *)cfield(a, k->aux2) == *(const int *)cfield(b, k->aux2);
}

static int listen_copy(void *dst, const void *src, const conf_key *k)
{
	const char *st = cstr_at(src, k->off), *sh = cstr_at(src, k->aux);
	char *t, *h;

	if (listen_equal(dst, src, k) && str_eq(cstr_at(dst, k->off), st)) return 0; /* identical already */
	t = strdup(st ? st : "");
	h = strdup(sh ? sh : "");
	if (t == NULL || h == NULL) {
		free(t);
		free(h);
		return -1;
	}
	free(*str_at(dst, k->off));
	free(*str_at(dst, k->aux));
	*str_at(dst, k->off) = t;
	*str_at(dst, k->aux) = h;
	*(int *)field(dst, k->aux2) = *(const int *)cfield(src, k->aux2);
	return 0;
}

const conf_type conf_t_listen = {
	.name = "address:port", .parse = listen_parse, .free = listen_free, .equal = listen_equal,
	.copy = listen_copy, .dump = string_dump, .copy_when_equal = true, /* "0.0.0.0:080" is "0.0.0.0:80" */
};

/* ---- numbers ---- */

static void int_bound(int64_t v, char *buf, size_t len)
{
	snprintf(buf, len, "%lld", (long long)v);
}

static int int_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];
	const char *end;
	int64_t n;

	if (conf_scan_int(v, true, &n, &end) != 0 || *end != '\0') {
		snprintf(err, errlen, "invalid integer '%s' for %s: use a whole number", conf_show(v, sb), k->name);
		return -1;
	}
	if (n < k->min || n > k->max) return bounds_error(k, v, err, errlen);
	num_put(obj, k, n);
	return 0;
}

static void int_dump(const void *obj, const conf_key *k, FILE *out)
{
	fprintf(out, "%lld", (long long)num_get(obj, k));
}

const conf_type conf_t_int = {
	.name = "integer", .parse = int_parse, .equal = num_equal, .copy = num_copy, .dump = int_dump,
	.bound = int_bound,
};

/* An integer that also takes "auto", stored as 0 (resolved by whoever uses the value). */
static int int_auto_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];
	const char *end;
	int64_t n;

	if (strcmp(v, "auto") == 0) {
		num_put(obj, k, 0);
		return 0;
	}
	if (conf_scan_int(v, true, &n, &end) != 0 || *end != '\0') {
		snprintf(err, errlen, "invalid value '%s' for %s: use auto or a whole number", conf_show(v, sb), k->name);
		return -1;
	}
	if (n < k->min || n > k->max) return bounds_error(k, v, err, errlen);
	num_put(obj, k, n);
	return 0;
}

static void int_auto_dump(const void *obj, const conf_key *k, FILE *out)
{
	if (num_get(obj, k) == 0)
		fputs("auto", out);
	else
		int_dump(obj, k, out);
}

const conf_type conf_t_int_auto = {
	.name = "auto or integer", .parse = int_auto_parse, .equal = num_equal, .copy = num_copy,
	.dump = int_auto_dump, .bound = int_bound,
};

/* Parse a duration into ms within the bounds; -1 with err. */
static int duration_scan(const conf_key *k, const char *v, int64_t *ms, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];

	if (pol_parse_duration(v, ms) != 0) {
		snprintf(err, errlen, "invalid duration '%s' for %s: use a number with ms, s, m or h", conf_show(v, sb),
		         k->name);
		return -1;
	}
	if (*ms < k->min || *ms > k->max) return bounds_error(k, v, err, errlen);
	return 0;
}

static int duration_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	int64_t ms;

	if (duration_scan(k, v, &ms, err, errlen) != 0) return -1;
	num_put(obj, k, ms);
	return 0;
}

static void duration_dump(const void *obj, const conf_key *k, FILE *out)
{
	char buf[64];
	conf_fmt_duration(num_get(obj, k), buf, sizeof buf);
	fputs(buf, out);
}

const conf_type conf_t_duration = {
	.name = "duration", .parse = duration_parse, .equal = num_equal, .copy = num_copy, .dump = duration_dump,
	.bound = conf_fmt_duration,
};

static int seconds_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	int64_t ms;

	if (duration_scan(k, v, &ms, err, errlen) != 0) return -1;
	num_put(obj, k, (ms + 999) / 1000);
	return 0;
}

static void seconds_dump(const void *obj, const conf_key *k, FILE *out)
{
	char buf[64];
	conf_fmt_duration(num_get(obj, k) * 1000, buf, sizeof buf);
	fputs(buf, out);
}

const conf_type conf_t_seconds = {
	.name = "duration", .parse = seconds_parse, .equal = num_equal, .copy = num_copy, .dump = seconds_dump,
	.bound = conf_fmt_duration,
};

static int size_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"", 1},           {"B", 1},        {"KiB", CONF_KIB(1)}, {"k", CONF_KIB(1)},
	             {"K", CONF_KIB(1)}, {"MiB", CONF_MIB(1)}, {"M", CONF_MIB(1)}};
	char sb[CONF_SHOW_BUF];
	const char *end;
	int64_t n;

	if (conf_scan_int(v, false, &n, &end) == 0) {
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			if (strcmp(end, units[i].unit) != 0) continue;
			n = n > INT64_MAX / units[i].mult ? INT64_MAX : n * units[i].mult;
			if (n < k->min || n > k->max) return bounds_error(k, v, err, errlen);
			num_put(obj, k, n);
			return 0;
		}
	}
	snprintf(err, errlen, "invalid size '%s' for %s: use a number with B, KiB or MiB", conf_show(v, sb), k->name);
	return -1;
}

static void size_dump(const void *obj, const conf_key *k, FILE *out)
{
	char buf[64];
	conf_fmt_size(num_get(obj, k), buf, sizeof buf);
	fputs(buf, out);
}

const conf_type conf_t_size = {
	.name = "size", .parse = size_parse, .equal = num_equal, .copy = num_copy, .dump = size_dump,
	.bound = conf_fmt_size,
};

/* ---- CIDR lists ---- */

static bool cidr_sep(char ch)
{
	return ch == ' ' || ch == ',' || ch == '\t';
}

static int cidrs_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	gw_cidr_list *list = field(obj, k->off);
	gw_cidr *items = NULL;
	size_t n = 0, cap = 0;
	const char *p = v;

	for (const char *q = v; *q;) { /* count the elements first: one allocation */
		while (*q && cidr_sep(*q)) q++;
		if (*q) cap++;
		while (*q && !cidr_sep(*q)) q++;
	}
	if (cap > 0) {
		items = calloc(cap, sizeof *items);
		if (items == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	while (*p) {
		char elem[INET6_ADDRSTRLEN + 8], sb[CONF_SHOW_BUF];
		size_t len;

		while (*p && cidr_sep(*p)) p++;
		if (*p == '\0') break;
		len = strcspn(p, " ,\t");
		if (len < sizeof elem) {
			memcpy(elem, p, len);
			elem[len] = '\0';
		}
		if (len >= sizeof elem || gw_cidr_parse(elem, &items[n]) != 0) {
			snprintf(err, errlen, "invalid CIDR '%s' in %s (element %zu)", conf_show_n(p, len, sb, sizeof sb),
			         k->name, n + 1);
			free(items);
			return -1;
		}
		n++;
		p += len;
	}
	free(list->items);
	list->items = items;
	list->n = n;
	return 0;
}

static void cidrs_free(void *obj, const conf_key *k)
{
	gw_cidr_list *l = field(obj, k->off);
	free(l->items);
	l->items = NULL;
	l->n = 0;
}

static bool cidrs_equal(const void *a, const void *b, const conf_key *k)
{
	const gw_cidr_list *la = cfield(a, k->off), *lb = cfield(b, k->off);

	if (la->n != lb->n) return false;
	for (size_t i = 0; i < la->n; i++)
		if (la->items[i].prefix != lb->items[i].prefix || memcmp(la->items[i].addr, lb->items[i].addr, 16) != 0)
			return false;
	return true;
}

static int cidrs_copy(void *dst, const void *src, const conf_key *k)
{
	const gw_cidr_list *ls = cfield(src, k->off);
	gw_cidr_list *ld = field(dst, k->off);
	gw_cidr *items = NULL;

	if (ls->n > 0) {
		items = calloc(ls->n, sizeof *items);
		if (items == NULL) return -1;
		memcpy(items, ls->items, ls->n * sizeof *items);
	}
	free(ld->items);
	ld->items = items;
	ld->n = ls->n;
	return 0;
}

static void cidrs_dump(const void *obj, const conf_key *k, FILE *out)
{
	const gw_cidr_list *l = cfield(obj, k->off);
	char buf[64];

	if (l->n == 0) fputs("\"\"", out);
	for (size_t i = 0; i < l->n; i++) {
		gw_cidr_format(&l->items[i], buf, sizeof buf);
		fprintf(out, "%s%s", i ? " " : "", buf);
	}
}

const conf_type conf_t_cidrs = {
	.name = "CIDR list", .parse = cidrs_parse, .free = cidrs_free, .equal = cidrs_equal, .copy = cidrs_copy,
	.dump = cidrs_dump,
};

/* ---- log settings ---- */

static int log_level_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];
	int val = cm_log_level_parse(v);

	if (val < 0) {
		snprintf(err, errlen, "invalid log_level '%s': use error, warn, info or debug", conf_show(v, sb));
		return -1;
	}
	*(int *)field(obj, k->off) = val;
	return 0;
}

static void log_level_dump(const void *obj, const conf_key *k, FILE *out)
{
	fputs(cm_log_level_name(*(const int *)cfield(obj, k->off)), out);
}

const conf_type conf_t_log_level = {
	.name = "level", .parse = log_level_parse, .equal = int_equal, .copy = int_copy, .dump = log_level_dump,
};

static int log_format_parse(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	char sb[CONF_SHOW_BUF];
	int val;

	if (strcmp(v, "logfmt") == 0)
		val = CM_LOG_LOGFMT;
	else if (strcmp(v, "json") == 0)
		val = CM_LOG_JSON;
	else {
		snprintf(err, errlen, "invalid log_format '%s': use logfmt or json", conf_show(v, sb));
		return -1;
	}
	*(int *)field(obj, k->off) = val;
	return 0;
}

static void log_format_dump(const void *obj, const conf_key *k, FILE *out)
{
	fputs(*(const int *)cfield(obj, k->off) == CM_LOG_JSON ? "json" : "logfmt", out);
}

const conf_type conf_t_log_format = {
	.name = "format", .parse = log_format_parse, .equal = int_equal, .copy = int_copy, .dump = log_format_dump,
};
