/*
 * common/log.c — see log.h. Formats the message into a stack buffer, parses its fields back, and writes
 * the whole line with one write(2), so lines from a drain or a crash never interleave mid-line. JSON lines
 * are built with jansson; when jansson cannot allocate, the line is written as logfmt instead of lost.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

int cm_log_current_level = CM_LOG_INFO;
static cm_log_format log_fmt = CM_LOG_LOGFMT;
static int log_fd = STDERR_FILENO;

enum { ACCESS_OFF = 0, ACCESS_MAIN, ACCESS_FILE };
static int access_mode = ACCESS_OFF;
static int access_fd = -1;
static char proc_field[40]; /* " worker=N" (or " role=supervisor") on every line, or "" */

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_priorities[] = {3, 4, 6, 7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */

int cm_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0) return i;
	return -1;
}

const char *cm_log_level_name(int level)
{
	return (level >= 0 && level < 4) ? level_names[level] : "info";
}

int cm_log_level_priority(int level)
{
	return (level >= 0 && level < 4) ? level_priorities[level] : 6;
}

void cm_log_configure(int level, cm_log_format fmt)
{
	cm_log_current_level = level;
	log_fmt = fmt;
}

int cm_log_open(const char *path)
{
	if (path == NULL || path[0] == '\0') {
		cm_log_close();
		return 0;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) return -1;
	cm_log_close();
	log_fd = fd;
	return 0;
}

void cm_log_close(void)
{
	if (log_fd != STDERR_FILENO) close(log_fd);
	log_fd = STDERR_FILENO;
}

int cm_log_access_open(const char *setting)
{
	int fd = -1, mode = ACCESS_OFF;
	if (setting == NULL || setting[0] == '\0' || strcmp(setting, "off") == 0) mode = ACCESS_OFF;
	else if (strcmp(setting, "on") == 0) mode = ACCESS_MAIN;
	else {
		fd = open(setting, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (fd < 0) return -1;
		mode = ACCESS_FILE;
	}
	if (access_mode == ACCESS_FILE && access_fd >= 0) close(access_fd);
	access_fd = fd;
	access_mode = mode;
	return 0;
}

int cm_log_access_enabled(void)
{
	return access_mode != ACCESS_OFF;
}

/* ---- values ---- */

/* Length of the valid UTF-8 sequence (2..4 bytes) starting at p, or 0. */
static size_t utf8_seq(const unsigned char *p)
{
	size_t n;
	uint32_t cp;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) n = 2, cp = p[0] & 0x1fu;
	else if (p[0] >= 0xe0 && p[0] <= 0xef) n = 3, cp = p[0] & 0x0fu;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4) n = 4, cp = p[0] & 0x07u;
	else return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) return 0;
		cp = (cp << 6) | (p[i] & 0x3fu);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

char *cm_log_quote(char *buf, size_t cap, const char *s)
{
	size_t w = 0;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	buf[w++] = '"';
	while (*p) {
		char piece[8];
		size_t n = 0, adv = 1;
		unsigned char c = *p;
		if (c == '"' || c == '\\') piece[n++] = '\\', piece[n++] = (char)c;
		else if (c == '\n') piece[n++] = '\\', piece[n++] = 'n';
		else if (c == '\r') piece[n++] = '\\', piece[n++] = 'r';
		else if (c == '\t') piece[n++] = '\\', piece[n++] = 't';
		else if (c < 0x20 || c == 0x7f) n = (size_t)snprintf(piece, sizeof piece, "\\u%04x", c);
		else if (c < 0x80) piece[n++] = (char)c;
		else if ((adv = utf8_seq(p)) > 0) memcpy(piece, p, adv), n = adv;
		else adv = 1, memcpy(piece, "\\ufffd", 6), n = 6;
		if (w + n + 5 > cap) { /* room for `..."` and the NUL */
			memcpy(buf + w, "...", 3);
			w += 3;
			break;
		}
		memcpy(buf + w, piece, n);
		w += n;
		p += adv;
	}
	buf[w++] = '"';
	buf[w] = '\0';
	return buf;
}

static bool key_char(char c, bool first)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') return true;
	return !first && ((c >= '0' && c <= '9') || c == '.' || c == '-');
}

/* Does a field start at p (key chars then '=')? Returns the key length or 0. */
static size_t field_at(const char *p)
{
	size_t n = 0;
	if (!key_char(p[0], true)) return 0;
	while (key_char(p[n], n == 0)) n++;
	return p[n] == '=' ? n : 0;
}

/* The length of the message's free text: up to the first ` key=`, or all of it. */
static size_t text_len(const char *msg)
{
	for (const char *p = msg; (p = strchr(p, ' ')) != NULL; p++)
		if (field_at(p + 1)) return (size_t)(p - msg);
	return strlen(msg);
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
	if (cp < 0x80) return o[0] = (char)cp, 1;
	if (cp < 0x800) return o[0] = (char)(0xc0 | (cp >> 6)), o[1] = (char)(0x80 | (cp & 0x3f)), 2;
	o[0] = (char)(0xe0 | (cp >> 12));
	o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[2] = (char)(0x80 | (cp & 0x3f));
	return 3;
}

/* Unescape a quoted value starting after its opening quote; writes into out (at least strlen(p)+1).
 * Returns the end of the value in p (after the closing quote, or at the end when it is unterminated). */
static const char *unquote(const char *p, char *out, size_t *olen)
{
	size_t w = 0;
	while (*p && *p != '"') {
		if (*p != '\\' || p[1] == '\0') {
			out[w++] = *p++;
			continue;
		}
		p++;
		char e = *p++;
		switch (e) {
		case 'n': out[w++] = '\n'; break;
		case 'r': out[w++] = '\r'; break;
		case 't': out[w++] = '\t'; break;
		case 'b': out[w++] = '\b'; break;
		case 'f': out[w++] = '\f'; break;
		case 'u': {
			uint32_t cp = 0;
			int i;
			for (i = 0; i < 4 && p[i]; i++) {
				char h = p[i];
				int v = (h >= '0' && h <= '9') ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10
				                                          : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
				if (v < 0) break;
				cp = cp * 16 + (uint32_t)v;
			}
			p += i;
			/* a \u escape takes 6 characters of input and gives at most 3 bytes; a broken one gives '?',
			 * so the output is never longer than the input */
			if (i < 4) out[w++] = '?';
			else w += put_utf8(out + w, cp);
			break;
		}
		default: out[w++] = e; break; /* \" \\ \/ and anything else: the character itself */
		}
	}
	out[w] = '\0';
	*olen = w;
	return *p == '"' ? p + 1 : p;
}

int cm_log_parse(const char *msg, size_t *textlen, cm_log_field_fn field, void *arg)
{
	const char *p = msg;
	int n = 0;
	char val[2048];

	*textlen = text_len(msg);
	p = msg + *textlen;
	while (*p) {
		while (*p == ' ') p++;
		if (*p == '\0') break;
		char key[64];
		size_t kl = field_at(p);
		if (kl == 0 || kl >= sizeof key) {
			/* a word that is not key=value: keep it, as the value of "extra" */
			size_t wl = strcspn(p, " ");
			if (wl >= sizeof val) wl = sizeof val - 1;
			memcpy(val, p, wl);
			val[wl] = '\0';
			field(arg, "extra", val, wl, 0);
			n++;
			p += strcspn(p, " ");
			continue;
		}
		memcpy(key, p, kl);
		key[kl] = '\0';
		p += kl + 1;
		size_t vl;
		if (*p == '"') {
			if (strlen(p) >= sizeof val) { /* cannot happen with a message from a 2048-byte buffer */
				p += strlen(p);
				continue;
			}
			p = unquote(p + 1, val, &vl);
			field(arg, key, val, vl, 1);
		} else {
			vl = strcspn(p, " ");
			if (vl >= sizeof val) vl = sizeof val - 1;
			memcpy(val, p, vl);
			val[vl] = '\0';
			p += strcspn(p, " ");
			field(arg, key, val, vl, 0);
		}
		n++;
	}
	return n;
}

/* ---- lines ---- */

typedef struct line_buf {
	char s[4096];
	size_t len;
} line_buf;

static void lb_add(line_buf *b, const char *s, size_t n)
{
	if (b->len + n > sizeof b->s - 2) n = sizeof b->s - 2 - b->len;
	memcpy(b->s + b->len, s, n);
	b->len += n;
}

static void lb_str(line_buf *b, const char *s)
{
	lb_add(b, s, strlen(s));
}

/* A bare logfmt value needs no quotes: printable ASCII without space, quote, backslash or '='. */
static bool bare_ok(const char *v, size_t n)
{
	if (n == 0) return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '=') return false;
	}
	return true;
}

static void logfmt_field(void *arg, const char *key, const char *val, size_t vlen, int quoted)
{
	line_buf *b = arg;
	char q[CM_LOG_QMAX * 2];
	lb_str(b, " ");
	lb_str(b, key);
	lb_str(b, "=");
	if (!quoted && bare_ok(val, vlen)) lb_add(b, val, vlen);
	else lb_str(b, cm_log_quote(q, sizeof q, val));
}

/* A JSON number by the JSON grammar, that fits: an int64 or a finite double. */
static json_t *json_number_of(const char *v)
{
	const char *p = v;
	bool frac = false;
	if (*p == '-') p++;
	if (*p == '0') p++;
	else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
	else return NULL;
	if (*p == '.') {
		frac = true;
		p++;
		if (!(*p >= '0' && *p <= '9')) return NULL;
		while (*p >= '0' && *p <= '9') p++;
	}
	if (*p == 'e' || *p == 'E') {
		frac = true;
		p++;
		if (*p == '+' || *p == '-') p++;
		if (!(*p >= '0' && *p <= '9')) return NULL;
		while (*p >= '0' && *p <= '9') p++;
	}
	if (*p != '\0') return NULL;
	errno = 0;
	if (!frac) {
		long long x = strtoll(v, NULL, 10);
		return errno == 0 ? json_integer(x) : NULL;
	}
	double d = strtod(v, NULL);
	return (errno == 0 && d == d && d - d == 0) ? json_real(d) : NULL;
}

typedef struct json_ctx {
	json_t *obj;
	bool failed;
} json_ctx;

static void json_field(void *arg, const char *key, const char *val, size_t vlen, int quoted)
{
	json_ctx *c = arg;
	char k[80];
	json_t *v = NULL;
	/* the writer's own members are never overwritten by a field of the message */
	static const char *const reserved[] = {"ts", "level", "priority", "rid", "msg"};
	snprintf(k, sizeof k, "%s", key);
	for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
		if (strcmp(key, reserved[i]) == 0) snprintf(k, sizeof k, "field_%s", key);
	if (!quoted) v = json_number_of(val);
	if (v == NULL) v = json_stringn(val, vlen);
	if (v == NULL) { /* not UTF-8 (a bare value): keep its escaped form */
		char q[CM_LOG_QMAX * 2];
		cm_log_quote(q, sizeof q, val);
		v = json_stringn(q + 1, strlen(q) - 2);
	}
	if (v == NULL || json_object_set_new(c->obj, k, v) != 0) c->failed = true;
}

static void timestamp(char ts[40])
{
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	int n = (int)strftime(ts, 40, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, 40 - (size_t)n, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static int emit_json(int fd, int level, const char *rid, const char *ts, const char *msg)
{
	json_ctx c = {json_object(), false};
	size_t textlen;
	char *out = NULL;
	int rc = -1;
	if (c.obj == NULL) return -1;
	if (json_object_set_new(c.obj, "ts", json_string(ts)) != 0 ||
	    json_object_set_new(c.obj, "level", json_string(cm_log_level_name(level))) != 0 ||
	    json_object_set_new(c.obj, "priority", json_integer(cm_log_level_priority(level))) != 0)
		goto done;
	if (rid && json_object_set_new(c.obj, "rid", json_stringn(rid, strlen(rid))) != 0) goto done;
	textlen = text_len(msg);
	json_t *m = json_stringn(msg, textlen);
	if (m == NULL) { /* free text is the call site's own; be safe anyway */
		char q[CM_LOG_QMAX * 2];
		char t[2048];
		snprintf(t, sizeof t, "%.*s", (int)textlen, msg);
		cm_log_quote(q, sizeof q, t);
		m = json_stringn(q + 1, strlen(q) - 2);
	}
	if (json_object_set_new(c.obj, "msg", m) != 0) goto done;
	(void)cm_log_parse(msg, &textlen, json_field, &c);
	if (c.failed) goto done;
	out = json_dumps(c.obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
	if (out == NULL) goto done;
	size_t n = strlen(out), dels = 0;
	for (size_t i = 0; i < n; i++) dels += out[i] == 0x7f;
	if (dels) {
		/* jansson writes DEL raw; it can only be inside a string, where \u007f means the same */
		char *esc = malloc(n + dels * 5 + 1);
		if (esc == NULL) goto done;
		size_t o = 0;
		for (size_t i = 0; i < n; i++) {
			if (out[i] == 0x7f) memcpy(esc + o, "\\u007f", 6), o += 6;
			else esc[o++] = out[i];
		}
		esc[o] = '\0';
		free(out);
		out = esc;
		n = o;
	}
	out[n] = '\n'; /* overwrites the NUL; write n + 1 bytes */
	ssize_t w = write(fd, out, n + 1);
	(void)w;
	rc = 0;
done:
	free(out);
	json_decref(c.obj);
	return rc;
}

static void emit_logfmt(int fd, int level, const char *rid, const char *ts, const char *msg)
{
	line_buf b = {.len = 0};
	char q[CM_LOG_QMAX * 2];
	char text[2048];
	size_t textlen;

	lb_str(&b, "ts=");
	lb_str(&b, ts);
	lb_str(&b, " level=");
	lb_str(&b, cm_log_level_name(level));
	if (rid) {
		lb_str(&b, " rid=");
		if (bare_ok(rid, strlen(rid))) lb_str(&b, rid);
		else lb_str(&b, cm_log_quote(q, sizeof q, rid));
	}
	/* the text first (fields are appended while parsing) */
	textlen = text_len(msg);
	snprintf(text, sizeof text, "%.*s", (int)textlen, msg);
	lb_str(&b, " msg=");
	lb_str(&b, cm_log_quote(q, sizeof q, text));
	(void)cm_log_parse(msg, &textlen, logfmt_field, &b);
	b.s[b.len++] = '\n';
	ssize_t w = write(fd, b.s, b.len);
	(void)w;
}

static void emit(int fd, int level, const char *rid, const char *msg)
{
	char ts[40];
	timestamp(ts);
	if (log_fmt == CM_LOG_JSON && emit_json(fd, level, rid, ts, msg) == 0) return;
	emit_logfmt(fd, level, rid, ts, msg);
}

void cm_log_set_process(const char *field)
{
	if (field && *field) snprintf(proc_field, sizeof proc_field, " %s", field);
	else proc_field[0] = '\0';
}

static void add_proc_field(char *msg, size_t cap)
{
	size_t n = strlen(msg);
	if (proc_field[0] && n < cap) snprintf(msg + n, cap - n, "%s", proc_field);
}

void cm_log_vwrite(int level, const char *rid, const char *fmt, va_list ap)
{
	char msg[2048];
	vsnprintf(msg, sizeof msg, fmt, ap);
	add_proc_field(msg, sizeof msg);
	emit(log_fd, level, rid, msg);
}

void cm_log_write(int level, const char *rid, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cm_log_vwrite(level, rid, fmt, ap);
	va_end(ap);
}

void cm_log_access(const char *rid, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	if (access_mode == ACCESS_OFF) return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	add_proc_field(msg, sizeof msg);
	emit(access_mode == ACCESS_FILE ? access_fd : log_fd, CM_LOG_INFO, rid, msg);
}

static void libevent_log(int severity, const char *msg)
{
	int level = CM_LOG_DEBUG;
	if (severity == EVENT_LOG_ERR) level = CM_LOG_ERROR;
	else if (severity == EVENT_LOG_WARN) level = CM_LOG_WARN;
	else if (severity == EVENT_LOG_MSG) level = CM_LOG_INFO;
	if (CM_LOG_ENABLED(level)) cm_log_write(level, NULL, "libevent component=libevent detail=%s", CM_Q(msg));
}

void cm_log_hook_libevent(void)
{
	event_set_log_callback(libevent_log);
}
