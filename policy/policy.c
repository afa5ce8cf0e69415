/*
 * policy/policy.c — what a persisted row means to a browser.
 *
 * This file owns the meaning of the gateway's two resources: the mapping from a persisted status (and,
 * for runs, outcome) to the normalised state of api.md, whether that state is active (held by long-polls,
 * re-read by the safety net) or terminal, how often an active resource is re-read, the exact bytes of
 * its JSON representation and the strong ETag of those bytes. It also owns the value syntax of the
 * config keys that feed those decisions (state lists, outcome maps, the run poll schedule).
 *
 * Everything here is a pure function of its arguments: no I/O, no clock (the caller passes `now`), no
 * state outside the structs it is given. The representation is built with jansson in a fixed key order
 * and dumped compact, so the same row always yields the same bytes and therefore the same ETag.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "common/digest.h"
#include "common/hex.h"
#include "policy/policy.h"

#define ERR_TOKEN_SHOWN 64 /* bytes of an offending token quoted back in an error message */
#define TIME_BUF 28        /* "2026-03-08T11:00:00.123456Z" and its NUL */

/* ---------------------------------------------------------------------------------------------------
 * Defaults
 */

static void copy_name(char dst[POL_NAME_MAX], const char *src)
{
	snprintf(dst, POL_NAME_MAX, "%s", src);
}

void pol_config_default(pol_config *c)
{
	static const char *const run_active[] = {"queued", "running"};
	static const char *const outcomes[][2] = {
		{"succeeded", "succeeded"},
		{"partially_succeeded", "partial"},
		{"failed", "failed"},
		{"cancelled", "cancelled"},
	};
	static const pol_step schedule[] = {{10000, 1000}, {60000, 5000}, {-1, 10000}};
	static const char *const pack_active[] = {"queued", "generating"};
	static const char *const pack_terminal[] = {"ready", "failed", "expired"};

	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < sizeof run_active / sizeof run_active[0]; i++)
		copy_name(c->run_active[c->n_run_active++], run_active[i]);
	copy_name(c->run_completed_status, "completed");
	for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
		copy_name(c->run_outcomes[i].outcome, outcomes[i][0]);
		copy_name(c->run_outcomes[i].state, outcomes[i][1]);
		c->n_run_outcomes++;
	}
	for (size_t i = 0; i < sizeof schedule / sizeof schedule[0]; i++)
		c->run_schedule[c->n_run_schedule++] = schedule[i];
	for (size_t i = 0; i < sizeof pack_active / sizeof pack_active[0]; i++)
		copy_name(c->pack_active[c->n_pack_active++], pack_active[i]);
	for (size_t i = 0; i < sizeof pack_terminal / sizeof pack_terminal[0]; i++)
		copy_name(c->pack_terminal[c->n_pack_terminal++], pack_terminal[i]);
	c->pack_interval_ms = 10000;
}

/* ---------------------------------------------------------------------------------------------------
 * Config value parsers
 *
 * All three share one tokenizer: tokens are separated by spaces, tabs and/or commas. Each parser fills a
 * private copy and only writes the caller's output on success, so a refused value changes nothing.
 */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0) return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static bool is_sep(char ch)
{
	return ch == ' ' || ch == '\t' || ch == ',';
}

/* Finds the next token at or after *pos; sets *tok and *len and advances *pos past it. Returns false at
 * the end of the value. */
static bool next_token(const char **pos, const char **tok, size_t *len)
{
	const char *p = *pos;

	while (*p != '\0' && is_sep(*p)) p++;
	if (*p == '\0') {
		*pos = p;
		return false;
	}
	*tok = p;
	while (*p != '\0' && !is_sep(*p)) p++;
	*len = (size_t)(p - *tok);
	*pos = p;
	return true;
}

/* Length of a token for "%.*s" in an error message. */
static int shown(size_t len)
{
	return len > ERR_TOKEN_SHOWN ? ERR_TOKEN_SHOWN : (int)len;
}

static bool name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
}

/* Checks one name [a-z0-9_.-]+ of len bytes and copies it into dst. Returns 0, or -1 with err set. */
static int take_name(const char *s, size_t len, char dst[POL_NAME_MAX], char *err, size_t errlen)
{
	if (len == 0) {
		set_err(err, errlen, "a name is empty");
		return -1;
	}
	if (len >= POL_NAME_MAX) {
		set_err(err, errlen, "name '%.*s' is too long (max %d bytes)", shown(len), s, POL_NAME_MAX - 1);
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		if (!name_char(s[i])) {
			set_err(err, errlen, "invalid name '%.*s' (use only a-z, 0-9, '_', '.' and '-')", shown(len), s);
			return -1;
		}
	}
	memcpy(dst, s, len);
	dst[len] = '\0';
	return 0;
}

int pol_parse_list(const char *value, char out[][POL_NAME_MAX], size_t *n, char *err, size_t errlen)
{
	char names[POL_MAX_LIST][POL_NAME_MAX];
	size_t count = 0, len = 0;
	const char *pos = value != NULL ? value : "", *tok = NULL;

	while (next_token(&pos, &tok, &len)) {
		if (count == POL_MAX_LIST) {
			set_err(err, errlen, "too many names (max %d)", POL_MAX_LIST);
			return -1;
		}
		if (take_name(tok, len, names[count], err, errlen) != 0) return -1;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(names[i], names[count]) == 0) {
				set_err(err, errlen, "duplicate name '%s'", names[count]);
				return -1;
			}
		}
		count++;
	}
	if (count == 0) {
		set_err(err, errlen, "expected at least one name, got an empty value");
		return -1;
	}
	memcpy(out, names, count * sizeof names[0]);
	*n = count;
	return 0;
}

int pol_parse_outcomes(const char *value, pol_outcome_map *out, size_t *n, char *err, size_t errlen)
{
	pol_outcome_map map[POL_MAX_LIST];
	size_t count = 0, len = 0;
	const char *pos = value != NULL ? value : "", *tok = NULL;

	while (next_token(&pos, &tok, &len)) {
		const char *eq = memchr(tok, '=', len);
		size_t key_len = eq != NULL ? (size_t)(eq - tok) : len;
		size_t val_len = eq != NULL ? len - key_len - 1 : 0;

		if (count == POL_MAX_LIST) {
			set_err(err, errlen, "too many outcomes (max %d)", POL_MAX_LIST);
			return -1;
		}
		if (eq == NULL || key_len == 0 || val_len == 0 || memchr(eq + 1, '=', val_len) != NULL) {
			set_err(err, errlen, "expected outcome=state pairs, got '%.*s'", shown(len), tok);
			return -1;
		}
		if (take_name(tok, key_len, map[count].outcome, err, errlen) != 0) return -1;
		if (take_name(eq + 1, val_len, map[count].state, err, errlen) != 0) return -1;
		for (size_t i = 0; i < count; i++) {
			if (strcmp(map[i].outcome, map[count].outcome) == 0) {
				set_err(err, errlen, "duplicate outcome '%s'", map[count].outcome);
				return -1;
			}
		}
		count++;
	}
	if (count == 0) {
		set_err(err, errlen, "expected outcome=state pairs, got an empty value");
		return -1;
	}
	memcpy(out, map, count * sizeof map[0]);
	*n = count;
	return 0;
}

/* Parses one duration of len bytes (not NUL-terminated) through pol_parse_duration. */
static int duration_n(const char *s, size_t len, int64_t *ms)
{
	char buf[32];

	if (len == 0 || len >= sizeof buf) return -1;
	memcpy(buf, s, len);
	buf[len] = '\0';
	return pol_parse_duration(buf, ms);
}

int pol_parse_schedule(const char *value, pol_step *out, size_t *n, char *err, size_t errlen)
{
	pol_step steps[POL_MAX_STEPS];
	size_t count = 0, len = 0;
	const char *pos = value != NULL ? value : "", *tok = NULL;

	while (next_token(&pos, &tok, &len)) {
		const char *colon = memchr(tok, ':', len);
		size_t age_len, iv_len;
		int64_t age, iv;

		if (count == POL_MAX_STEPS) {
			set_err(err, errlen, "too many steps (max %d)", POL_MAX_STEPS);
			return -1;
		}
		if (count > 0 && steps[count - 1].below_age_ms == -1) {
			set_err(err, errlen, "the '*' step must be the last one");
			return -1;
		}
		if (colon == NULL || memchr(colon + 1, ':', len - (size_t)(colon + 1 - tok)) != NULL) {
			set_err(err, errlen, "expected age:interval steps, got '%.*s'", shown(len), tok);
			return -1;
		}
		age_len = (size_t)(colon - tok);
		iv_len = len - age_len - 1;
		if (age_len == 1 && tok[0] == '*') {
			age = -1;
		} else if (duration_n(tok, age_len, &age) != 0) {
			set_err(err, errlen, "bad age in step '%.*s' (use <digits><unit>, unit ms, s, m or h, or '*')",
			        shown(len), tok);
			return -1;
		} else if (age == 0) {
			set_err(err, errlen, "age must be > 0 in step '%.*s'", shown(len), tok);
			return -1;
		} else if (count > 0 && age <= steps[count - 1].below_age_ms) {
			set_err(err, errlen, "ages must ascend ('%.*s' does not)", shown(len), tok);
			return -1;
		}
		if (duration_n(colon + 1, iv_len, &iv) != 0) {
			set_err(err, errlen, "bad interval in step '%.*s' (use <digits><unit>, unit ms, s, m or h)",
			        shown(len), tok);
			return -1;
		}
		if (iv <= 0) {
			set_err(err, errlen, "interval must be > 0 in step '%.*s'", shown(len), tok);
			return -1;
		}
		steps[count].below_age_ms = age;
		steps[count].interval_ms = iv;
		count++;
	}
	if (count == 0 || steps[count - 1].below_age_ms != -1) {
		set_err(err, errlen, "the last step must be '*:<interval>'");
		return -1;
	}
	memcpy(out, steps, count * sizeof steps[0]);
	*n = count;
	return 0;
}

/* ---------------------------------------------------------------------------------------------------
 * States and intervals
 */

static const char *find_name(const char (*list)[POL_NAME_MAX], size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i], name) == 0) return list[i];
	return NULL;
}

static void set_flags(bool *active, bool *terminal, bool a, bool t)
{
	if (active != NULL) *active = a;
	if (terminal != NULL) *terminal = t;
}

const char *pol_run_state(const pol_config *c, const char *status, const char *outcome, bool *active,
                          bool *terminal)
{
	const char *name;

	set_flags(active, terminal, false, false);
	if (status == NULL) return "unknown";
	name = find_name(c->run_active, c->n_run_active, status);
	if (name != NULL) {
		set_flags(active, terminal, true, false);
		return name;
	}
	if (outcome == NULL || strcmp(status, c->run_completed_status) != 0) return "unknown";
	for (size_t i = 0; i < c->n_run_outcomes; i++) {
		if (strcmp(c->run_outcomes[i].outcome, outcome) == 0) {
			set_flags(active, terminal, false, true);
			return c->run_outcomes[i].state;
		}
	}
	return "unknown";
}

/* State of a pack status, like pol_run_state. */
static const char *pack_state(const pol_config *c, const char *status, bool *active, bool *terminal)
{
	const char *name;

	set_flags(active, terminal, false, false);
	if (status == NULL) return "unknown";
	name = find_name(c->pack_active, c->n_pack_active, status);
	if (name != NULL) {
		set_flags(active, terminal, true, false);
		return name;
	}
	name = find_name(c->pack_terminal, c->n_pack_terminal, status);
	if (name != NULL) {
		set_flags(active, terminal, false, true);
		return name;
	}
	return "unknown";
}

/* The first step whose age bound the run is still under, else the last step; 0 for an empty schedule
 * (a validated config never has one). */
int64_t pol_run_interval_ms(const pol_config *c, const pol_run *r, int64_t now)
{
	int64_t since = r->started_at != POL_NULL ? r->started_at : r->created_at;
	int64_t age_us = 0, age_ms;

	if (since != POL_NULL && now > since) {
		/* now - since cannot overflow unless since is far in the past; saturate then. */
		if (since < 0 && now > INT64_MAX + since)
			age_us = INT64_MAX;
		else
			age_us = now - since;
	}
	age_ms = age_us / 1000;
	for (size_t i = 0; i < c->n_run_schedule; i++) {
		const pol_step *s = &c->run_schedule[i];

		if (s->below_age_ms == -1 || age_ms < s->below_age_ms) return s->interval_ms;
	}
	return c->n_run_schedule > 0 ? c->run_schedule[c->n_run_schedule - 1].interval_ms : 0;
}

/* ---------------------------------------------------------------------------------------------------
 * Time and ETag
 */

/* Formats in a fixed 28-byte minimum so that a caller's buffer either always fits or never does,
 * whatever the microseconds of the value. */
int pol_format_time(int64_t us, char *buf, size_t len)
{
	int64_t secs = us / 1000000, frac = us % 1000000;
	time_t t;
	struct tm tm;
	int n;

	if (buf == NULL || len < TIME_BUF) {
		if (buf != NULL && len > 0) buf[0] = '\0';
		return -1;
	}
	buf[0] = '\0';
	if (frac < 0) { /* floor, so that -1 us is 23:59:59.999999 the day before */
		frac += 1000000;
		secs -= 1;
	}
	t = (time_t)secs;
	if ((int64_t)t != secs || gmtime_r(&t, &tm) == NULL) return -1;
	if (tm.tm_year < 0 - 1900 || tm.tm_year > 9999 - 1900) return -1; /* RFC 3339 has 4-digit years */
	if (frac != 0)
		n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
	else
		n = snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -1;
	}
	return n;
}

/* The ETag, or -1 if the digest failed (allocation failure in libcrypto, below common/digest.h). */
static int etag_of(const char *bytes, size_t len, char out[POL_ETAG_LEN + 1])
{
	uint8_t md[CM_SHA256_LEN];

	out[0] = '\0';
	if (cm_sha256(bytes, len, md) != 0) return -1;
	out[0] = '"';
	cm_hex_encode(md, 16, out + 1);
	out[POL_ETAG_LEN - 1] = '"';
	out[POL_ETAG_LEN] = '\0';
	return 0;
}

/* On a digest failure out is the empty string, which matches no client's ETag. */
void pol_etag(const char *bytes, size_t len, char out[POL_ETAG_LEN + 1])
{
	(void)etag_of(bytes, len, out);
}

/* ---------------------------------------------------------------------------------------------------
 * Representation
 *
 * The value builders below return a new reference, or NULL only on allocation failure; a value that
 * cannot be served (unparsable JSON column, invalid UTF-8, timestamp out of RFC 3339's range) becomes
 * null and counts in *bad.
 */

/* Strict UTF-8 (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF), as jansson requires. */
static bool utf8_valid(const unsigned char *s)
{
	while (*s != '\0') {
		unsigned char c = *s;
		uint32_t cp;
		int more;

		if (c < 0x80) {
			s++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			cp = c & 0x1f;
			more = 1;
		} else if (c >= 0xe0 && c <= 0xef) {
			cp = c & 0x0f;
			more = 2;
		} else if (c >= 0xf0 && c <= 0xf4) {
			cp = c & 0x07;
			more = 3;
		} else {
			return false;
		}
		for (int i = 1; i <= more; i++) {
			if ((s[i] & 0xc0) != 0x80) return false;
			cp = (cp << 6) | (s[i] & 0x3f);
		}
		if ((more == 2 && cp < 0x800) || (more == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		s += more + 1;
	}
	return true;
}

static json_t *j_int(int64_t v)
{
	return v == POL_NULL ? json_null() : json_integer((json_int_t)v);
}

static json_t *j_str(const char *s, int *bad)
{
	if (s == NULL) return json_null();
	if (!utf8_valid((const unsigned char *)s)) {
		(*bad)++;
		return json_null();
	}
	return json_string(s);
}

static json_t *j_time(int64_t us, int *bad)
{
	char buf[TIME_BUF];

	if (us == POL_NULL) return json_null();
	if (pol_format_time(us, buf, sizeof buf) < 0) {
		(*bad)++;
		return json_null();
	}
	return json_string(buf);
}

static json_t *j_json(const char *text, int *bad)
{
	json_error_t jerr;
	json_t *v;

	if (text == NULL) return json_null();
	v = json_loads(text, JSON_DECODE_ANY, &jerr);
	if (v == NULL) {
		(*bad)++;
		return json_null();
	}
	return v;
}

/* Adds key -> val (a new reference, consumed even on failure). Returns 0 or -1. */
static int put(json_t *obj, const char *key, json_t *val)
{
	if (val == NULL) return -1;
	return json_object_set_new(obj, key, val);
}

/* Adds "state", "terminal" and "poll" to root, dumps it into out->body and sets the rest of out.
 * Returns 0 or -1; root stays the caller's. */
static int finish(json_t *root, const char *state, bool active, bool terminal, int64_t interval_ms,
                  int bad, pol_view *out)
{
	json_t *poll = NULL;
	char *body = NULL;
	int rc = -1;

	if (active) {
		poll = json_object();
		if (poll == NULL || put(poll, "interval_ms", json_integer((json_int_t)interval_ms)) != 0) goto done;
	} else {
		poll = json_null();
	}
	if (put(root, "state", json_string(state)) != 0 || put(root, "terminal", json_boolean(terminal)) != 0)
		goto done;
	if (put(root, "poll", poll) != 0) {
		poll = NULL; /* consumed */
		goto done;
	}
	poll = NULL;
	body = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (body == NULL) goto done;
	if (etag_of(body, strlen(body), out->etag) != 0) goto done;
	copy_name(out->state, state);
	out->active = active;
	out->terminal = terminal;
	out->interval_ms = active ? interval_ms : 0;
	out->body_len = strlen(body);
	out->body = body;
	out->bad_fields = bad;
	body = NULL;
	rc = 0;
done:
	json_decref(poll);
	free(body);
	if (rc != 0) memset(out, 0, sizeof *out);
	return rc;
}

int pol_run_view(const pol_config *c, const pol_run *r, int64_t now, pol_view *out)
{
	json_t *root = NULL, *run = NULL;
	bool active, terminal;
	const char *state;
	int bad = 0, rc = -1;

	memset(out, 0, sizeof *out);
	state = pol_run_state(c, r->status, r->outcome, &active, &terminal);
	root = json_object();
	run = json_object();
	if (root == NULL || run == NULL) goto done;
	if (put(run, "id", j_int(r->id)) != 0 || put(run, "workspace_id", j_int(r->workspace_id)) != 0 ||
	    put(run, "tenant_id", j_int(r->tenant_id)) != 0 || put(run, "type", j_str(r->type, &bad)) != 0 ||
	    put(run, "status", j_str(r->status, &bad)) != 0 || put(run, "outcome", j_str(r->outcome, &bad)) != 0 ||
	    put(run, "summary_counts", j_json(r->summary_counts, &bad)) != 0 ||
	    put(run, "failure_summary", j_json(r->failure_summary, &bad)) != 0 ||
	    put(run, "created_at", j_time(r->created_at, &bad)) != 0 ||
	    put(run, "started_at", j_time(r->started_at, &bad)) != 0 ||
	    put(run, "completed_at", j_time(r->completed_at, &bad)) != 0)
		goto done;
	if (put(root, "run", run) != 0) {
		run = NULL; /* consumed */
		goto done;
	}
	run = NULL;
	rc = finish(root, state, active, terminal, active ? pol_run_interval_ms(c, r, now) : 0, bad, out);
done:
	json_decref(run);
	json_decref(root);
	return rc;
}

int pol_pack_view(const pol_config *c, const pol_pack *p, int64_t now, pol_view *out)
{
	json_t *root = NULL, *pack = NULL;
	bool active = false, terminal = false;
	const char *state = "none";
	int bad = 0, rc = -1;

	(void)now; /* a pack's interval does not depend on its age */
	memset(out, 0, sizeof *out);
	root = json_object();
	if (root == NULL) goto done;
	if (!p->present) {
		pack = json_null();
	} else {
		state = pack_state(c, p->status, &active, &terminal);
		pack = json_object();
		if (pack == NULL) goto done;
		if (put(pack, "id", j_int(p->id)) != 0 || put(pack, "workspace_id", j_int(p->workspace_id)) != 0 ||
		    put(pack, "tenant_id", j_int(p->tenant_id)) != 0 ||
		    put(pack, "operation_run_id", j_int(p->operation_run_id)) != 0 ||
		    put(pack, "status", j_str(p->status, &bad)) != 0 ||
		    put(pack, "generated_at", j_time(p->generated_at, &bad)) != 0 ||
		    put(pack, "expires_at", j_time(p->expires_at, &bad)) != 0 ||
		    put(pack, "file_size", j_int(p->file_size)) != 0 ||
		    put(pack, "created_at", j_time(p->created_at, &bad)) != 0 ||
		    put(pack, "updated_at", j_time(p->updated_at, &bad)) != 0)
			goto done;
	}
	if (put(root, "review_pack", pack) != 0) {
		pack = NULL; /* consumed */
		goto done;
	}
	pack = NULL;
	rc = finish(root, state, active, terminal, active ? c->pack_interval_ms : 0, bad, out);
done:
	json_decref(pack);
	json_decref(root);
	return rc;
}

void pol_view_clear(pol_view *v)
{
	if (v == NULL) return;
	free(v->body);
	memset(v, 0, sizeof *v);
}
