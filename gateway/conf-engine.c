/*
 * gateway/conf-engine.c — the config engine: the line syntax, file reading, error collection, and the
 * generic jobs over a key table (defaults, free, keep-static, dump, reference), each one loop calling the
 * key's conf_type. It knows no key and no value type: those are gateway/config.c and gateway/conf-types.c.
 * Messages are "NAME:LINE: message"; values echoed in them are escaped and cut short (conf_show). No
 * mutable file-scope state.
 */
#include "gateway/conf-engine.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "common/hex.h"
#include "common/log.h"

/* ---- text helpers ---- */

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

const char *conf_show_n(const char *s, size_t n, char *buf, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i == CONF_SHOW_MAX) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (ch == '\\') {
			buf[o++] = '\\';
			buf[o++] = '\\';
		} else if (ch >= 0x20 && ch < 0x7f) {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = '\\';
			buf[o++] = 'x';
			cm_hex_encode(&ch, 1, buf + o); /* o + 8 < len: the digits and their NUL fit */
			o += 2;
		}
	}
	buf[o] = '\0';
	return buf;
}

const char *conf_show(const char *s, char *buf)
{
	return conf_show_n(s, strlen(s), buf, CONF_SHOW_BUF);
}

void conf_fmt_duration(int64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % CONF_HOUR(1) == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / CONF_HOUR(1)));
	else if (ms % CONF_MIN(1) == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / CONF_MIN(1)));
	else if (ms % CONF_SEC(1) == 0)
		snprintf(buf, len, "%llds", (long long)(ms / CONF_SEC(1)));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

void conf_fmt_size(int64_t n, char *buf, size_t len)
{
	if (n != 0 && n % CONF_MIB(1) == 0)
		snprintf(buf, len, "%lldMiB", (long long)(n / CONF_MIB(1)));
	else if (n != 0 && n % CONF_KIB(1) == 0)
		snprintf(buf, len, "%lldKiB", (long long)(n / CONF_KIB(1)));
	else
		snprintf(buf, len, "%lldB", (long long)n);
}

int conf_scan_int(const char *s, bool sign, int64_t *out, const char **end)
{
	bool neg = false;
	int64_t n = 0;
	const char *p = s;

	if (sign && *p == '-') {
		neg = true;
		p++;
	}
	if (*p < '0' || *p > '9') return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		int d = *p - '0';
		if (n > (INT64_MAX - d) / 10)
			n = INT64_MAX;
		else
			n = n * 10 + d;
	}
	*out = neg ? (n == INT64_MAX ? INT64_MIN : -n) : n;
	*end = p;
	return 0;
}

static bool needs_quotes(const char *s, size_t n)
{
	return n == 0 || is_ws(s[0]) || is_ws(s[n - 1]) || s[0] == '"' || strchr(s, '#') != NULL;
}

size_t conf_dumped_len(const char *s)
{
	size_t n = strlen(s), out = n;
	if (!needs_quotes(s, n)) return n;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '"' || s[i] == '\\') out++;
	return out + 2;
}

void conf_dump_string(const char *s, FILE *out)
{
	size_t n = s ? strlen(s) : 0;
	bool quote = needs_quotes(s, n);

	if (!quote) {
		fputs(s, out);
		return;
	}
	fputc('"', out);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '"' || s[i] == '\\') fputc('\\', out);
		fputc(s[i], out);
	}
	fputc('"', out);
}

/* ---- drivers over a key table ---- */

const conf_key *conf_key_find(const conf_key *keys, size_t nkeys, const char *name, size_t *idx)
{
	for (size_t i = 0; i < nkeys; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			if (idx) *idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

int conf_key_set(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
{
	if (*v == '\0' && !(k->flags & CONF_K_EMPTY_OK)) {
		snprintf(err, errlen, "%s needs a value", k->name);
		return -1;
	}
	return k->type->parse(obj, k, v, err, errlen);
}

int conf_keys_set_defaults(const conf_key *keys, size_t nkeys, void *obj)
{
	char err[CONF_ERR_LEN];

	for (size_t i = 0; i < nkeys; i++) {
		if (conf_key_set(obj, &keys[i], keys[i].def, err, sizeof err) != 0) {
			log_error("config: default of %s: %s", keys[i].name, err);
			return -1;
		}
	}
	return 0;
}

void conf_keys_free(const conf_key *keys, size_t nkeys, void *obj)
{
	for (size_t i = 0; i < nkeys; i++)
		if (keys[i].type->free) keys[i].type->free(obj, &keys[i]);
}

void conf_keys_keep_static(const conf_key *keys, size_t nkeys, void *fresh, const void *old,
                           void (*report)(const char *key, void *arg), void *arg)
{
	for (size_t i = 0; i < nkeys; i++) {
		const conf_key *k = &keys[i];
		bool same;
		if (k->flags & CONF_K_RELOAD) continue;
		same = k->type->equal(fresh, old, k);
		if (!same && report) report(k->name, arg);
		if (same && !k->type->copy_when_equal) continue;
		if (k->type->copy(fresh, old, k) != 0)
			log_error("config: out of memory keeping %s; the running value stays in effect until restart",
			          k->name);
	}
}

void conf_keys_dump(const conf_key *keys, size_t nkeys, const void *obj, FILE *out)
{
	for (size_t i = 0; i < nkeys; i++) {
		fprintf(out, "%s = ", keys[i].name);
		keys[i].type->dump(obj, &keys[i], out);
		fputc('\n', out);
	}
}

int conf_keys_reference(const conf_key *keys, size_t nkeys, FILE *out)
{
	int rc = 0;

	for (size_t i = 0; i < nkeys; i++) {
		const conf_key *k = &keys[i];
		char lo[32] = "", hi[32] = "";
		if (k->type->bound) {
			k->type->bound(k->min, lo, sizeof lo);
			k->type->bound(k->max, hi, sizeof hi);
		}
		if (k->why == NULL || k->why[0] == '\0') rc = -1;
		fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->name, k->type->name, k->def ? k->def : "", lo, hi,
		        (k->flags & CONF_K_RELOAD) ? "reload" : "restart", k->why ? k->why : "");
	}
	return rc;
}

/* ---- the parser ---- */

int conf_parser_init(conf_parser *p, const conf_key *keys, size_t nkeys, void *obj, const char *name, FILE *errs)
{
	memset(p, 0, sizeof *p);
	p->name = name;
	p->errs = errs;
	p->keys = keys;
	p->nkeys = nkeys;
	p->obj = obj;
	p->set_line = calloc(nkeys ? nkeys : 1, sizeof *p->set_line);
	p->bad = calloc(nkeys ? nkeys : 1, sizeof *p->bad);
	if (p->set_line == NULL || p->bad == NULL) {
		conf_parser_fini(p);
		return -1;
	}
	return 0;
}

void conf_parser_fini(conf_parser *p)
{
	free(p->set_line);
	free(p->bad);
	p->set_line = NULL;
	p->bad = NULL;
}

void conf_report(conf_parser *p, int line, const char *fmt, ...)
{
	char msg[CONF_ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->nerrors++;
	if (p->errs) fprintf(p->errs, "%s:%d: %s\n", p->name, line, msg);
}

int conf_parser_line(const conf_parser *p, const char *name)
{
	size_t i = 0;
	if (p->set_line == NULL || conf_key_find(p->keys, p->nkeys, name, &i) == NULL) return 0;
	return p->set_line[i];
}

bool conf_parser_bad(const conf_parser *p, const char *name)
{
	size_t i = 0;
	if (p->bad == NULL || conf_key_find(p->keys, p->nkeys, name, &i) == NULL) return false;
	return p->bad[i];
}

/* Optimal string alignment distance (edits incl. one transposition), or 3 when surely above 2. */
static int edit_distance(const char *a, const char *b)
{
	size_t n = strlen(a), m = strlen(b);
	int d[40][40];

	if (n > m + 2 || m > n + 2 || n >= 38 || m >= 38) return 3;
	for (size_t i = 0; i <= n; i++) d[i][0] = (int)i;
	for (size_t j = 0; j <= m; j++) d[0][j] = (int)j;
	for (size_t i = 1; i <= n; i++) {
		for (size_t j = 1; j <= m; j++) {
			int cost = a[i - 1] == b[j - 1] ? 0 : 1;
			int best = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < best) best = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < best)
				best = d[i - 2][j - 2] + 1;
			d[i][j] = best;
		}
	}
	return d[n][m];
}

static void report_unknown(conf_parser *p, int line, const char *key)
{
	char sb[CONF_SHOW_BUF];
	const char *best = NULL;
	int best_d = 3;

	for (size_t i = 0; i < p->nkeys; i++) {
		int d = edit_distance(key, p->keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = p->keys[i].name;
		}
	}
	if (best)
		conf_report(p, line, "unknown key '%s' (did you mean '%s'?)", conf_show(key, sb), best);
	else
		conf_report(p, line, "unknown key '%s'", conf_show(key, sb));
}

/* Unquote a value starting at '"' (len bytes) into out (at least len bytes). Returns 0 or -1 with err. */
static int unquote(const char *s, size_t len, char *out, const char *key, char *err, size_t errlen)
{
	size_t i = 1, o = 0;
	bool closed = false;

	while (i < len) {
		char ch = s[i];
		if (ch == '\\') {
			if (i + 1 < len && (s[i + 1] == '"' || s[i + 1] == '\\')) {
				out[o++] = s[i + 1];
				i += 2;
				continue;
			}
			if (i + 1 >= len) break; /* "\ at the end: the quote is not closed */
			snprintf(err, errlen, "invalid escape '\\%c' in quoted value of %s: only \\\" and \\\\ are known",
			         (s[i + 1] >= 0x20 && s[i + 1] < 0x7f) ? s[i + 1] : '?', key);
			return -1;
		}
		i++;
		if (ch == '"') {
			closed = true;
			break;
		}
		out[o++] = ch;
	}
	if (!closed) {
		snprintf(err, errlen, "unterminated quote in value of %s", key);
		return -1;
	}
	while (i < len && is_ws(s[i])) i++;
	if (i < len && s[i] != '#') {
		snprintf(err, errlen, "unexpected text after the closing quote of %s", key);
		return -1;
	}
	out[o] = '\0';
	return 0;
}

static void parse_line(conf_parser *p, int lineno, const char *s, size_t len)
{
	char key[CONF_LINE_MAX + 1], val[CONF_LINE_MAX + 1], err[CONF_ERR_LEN];
	const char *eq, *k0, *k1, *v0, *v1;
	const conf_key *k;
	size_t idx;

	if (len > 0 && s[len - 1] == '\r') len--; /* CRLF */
	if (len > CONF_LINE_MAX) {
		conf_report(p, lineno, "line too long (%zu bytes; at most %d)", len, CONF_LINE_MAX);
		return;
	}
	if (memchr(s, '\0', len) != NULL) {
		conf_report(p, lineno, "NUL byte in line");
		return;
	}
	k0 = s;
	v1 = s + len;
	while (k0 < v1 && is_ws(*k0)) k0++;
	if (k0 == v1 || *k0 == '#') return; /* blank or comment */

	eq = memchr(k0, '=', (size_t)(v1 - k0));
	if (eq == NULL) { /* the line is not echoed: it may be a stray piece of a connection string */
		conf_report(p, lineno, "expected 'key = value' (no '=' on this line)");
		return;
	}
	k1 = eq;
	while (k1 > k0 && is_ws(k1[-1])) k1--;
	if (k1 == k0) {
		conf_report(p, lineno, "missing key before '='");
		return;
	}
	memcpy(key, k0, (size_t)(k1 - k0));
	key[k1 - k0] = '\0';

	k = conf_key_find(p->keys, p->nkeys, key, &idx);
	if (k == NULL) {
		report_unknown(p, lineno, key);
		return;
	}
	if (p->set_line[idx] != 0) {
		conf_report(p, lineno, "duplicate key '%s' (first set on line %d)", k->name, p->set_line[idx]);
		return;
	}
	p->set_line[idx] = lineno;

	v0 = eq + 1;
	while (v0 < v1 && is_ws(*v0)) v0++;
	if (v0 < v1 && *v0 == '"') {
		if (unquote(v0, (size_t)(v1 - v0), val, k->name, err, sizeof err) != 0) goto bad;
	} else {
		/* A '#' at the start of the value or after whitespace begins a comment. */
		const char *end = v0;
		while (end < v1 && !(*end == '#' && (end == v0 || is_ws(end[-1])))) end++;
		while (end > v0 && is_ws(end[-1])) end--;
		memcpy(val, v0, (size_t)(end - v0));
		val[end - v0] = '\0';
	}
	if (conf_key_set(p->obj, k, val, err, sizeof err) != 0) goto bad;
	return;
bad:
	p->bad[idx] = true;
	conf_report(p, lineno, "%s", err);
}

static void run_crosses(conf_parser *p, const conf_cross *crosses, size_t ncrosses)
{
	for (size_t i = 0; i < ncrosses; i++) {
		const conf_cross *x = &crosses[i];
		size_t ia = 0, ib = 0;
		char err[CONF_ERR_LEN];
		int line;

		if (conf_key_find(p->keys, p->nkeys, x->a, &ia) == NULL ||
		    conf_key_find(p->keys, p->nkeys, x->b, &ib) == NULL)
			continue;
		if (p->bad[ia] || p->bad[ib]) continue; /* already reported */
		if (x->fit_default_a && p->set_line[ia] == 0) {
			x->fit_default_a(p->obj);
			continue;
		}
		line = p->set_line[ia] > p->set_line[ib] ? p->set_line[ia] : p->set_line[ib];
		if (line == 0) continue; /* both defaults: consistent by construction */
		if (x->check(p->obj, err, sizeof err) != 0) conf_report(p, line, "%s", err);
	}
}

void conf_parse_buffer(conf_parser *p, const char *buf, size_t len, const conf_cross *crosses, size_t ncrosses)
{
	size_t pos = 0;
	int lineno = 0;

	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - buf) : len;
		if (lineno < INT32_MAX) lineno++;
		parse_line(p, lineno, buf + pos, end - pos);
		pos = end + 1;
	}
	run_crosses(p, crosses, ncrosses);
}

int conf_read_file(const char *path, FILE *errs, char **out, size_t *outlen)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	const char *why = NULL;
	int saved = 0, rc = -1;

	f = fopen(path, "rb");
	if (f == NULL) {
		saved = errno;
		why = "cannot open";
		goto out;
	}
	for (;;) {
		size_t got;
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			char *nbuf;
			if (cap >= (size_t)CONF_FILE_MAX) {
				if (errs) fprintf(errs, "%s: too large (more than %ld bytes)\n", path, CONF_FILE_MAX);
				goto out;
			}
			nbuf = realloc(buf, ncap);
			if (nbuf == NULL) {
				saved = ENOMEM;
				why = "cannot read";
				goto out;
			}
			buf = nbuf;
			cap = ncap;
		}
		got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) break;
	}
	if (ferror(f)) {
		saved = errno ? errno : EIO;
		why = "cannot read";
		goto out;
	}
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	if (why && errs) fprintf(errs, "%s: %s: %s\n", path, why, strerror(saved));
	if (f) fclose(f);
	free(buf);
	return rc;
}
