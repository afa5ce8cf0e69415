/*
 * gateway/config.c — the configuration file: its syntax, its keys and every check on their values.
 *
 * This file owns one declarative table, `keys[]`: for each key its name, value type, where it lands in
 * struct conf, its default as text, its bounds, whether SIGHUP may change it, and a one-line reason. Every
 * other function here walks that table: the defaults are produced by parsing each default text through
 * the same setter a file value goes through (so a default can never be something a file could not say),
 * conf_dump prints it back, conf_keep_static copies the keys a reload may not change, conf_free frees the
 * owned fields. A file is read whole and split into lines; every error is collected as "NAME:LINE:
 * message" and nothing from a file with an error is returned. Checks that involve two keys run after the
 * last line, reported on the line of the later-set key. Value echoes in messages are escaped and cut short,
 * so junk input yields readable, bounded messages. No file-scope mutable state.
 */
#include "gateway/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

#define CONF_LINE_MAX 4096                /* bytes of one line, CR/LF not counted */
#define CONF_FILE_MAX (16L * 1024 * 1024) /* a config file larger than this is not a config file */
#define ERR_LEN 512                       /* one message, before the "NAME:LINE: " prefix */
#define SHOW_MAX 64                       /* bytes of a value echoed in a message */

#define MS(x) ((int64_t)(x))
#define SEC(x) ((int64_t)(x) * 1000)
#define MIN(x) ((int64_t)(x) * 60000)
#define HOUR(x) ((int64_t)(x) * 3600000)
#define KIB(x) ((int64_t)(x) * 1024)
#define MIB(x) ((int64_t)(x) * 1024 * 1024)

enum ktype {
	T_LISTEN,    /* ADDRESS:PORT into listen, listen_host, listen_port */
	T_STRING,    /* char *, optionally checked by key_def.check */
	T_INT,       /* int or int64_t (key_def.aux = its size) */
	T_DURATION,  /* int64_t milliseconds */
	T_SECONDS,   /* a duration stored as int64_t whole seconds, rounded up */
	T_SIZE,      /* int64_t bytes */
	T_CIDRS,     /* conf_cidr_list */
	T_LOG_LEVEL, /* int cm_log_level */
	T_LOG_FORMAT,
	T_POL_LIST,     /* char [POL_MAX_LIST][POL_NAME_MAX]; aux = offset of the size_t count */
	T_POL_NAME,     /* char [POL_NAME_MAX] */
	T_POL_OUTCOMES, /* pol_outcome_map [POL_MAX_LIST]; aux = offset of the count */
	T_POL_SCHEDULE, /* pol_step [POL_MAX_STEPS]; aux = offset of the count */
};

#define K_RELOAD 1u   /* SIGHUP may change it */
#define K_EMPTY_OK 2u /* an empty value is meaningful */
#define K_AUTO 4u     /* a T_INT that also takes "auto", stored as 0 */

struct key_def {
	const char *name;
	enum ktype type;
	size_t off; /* target in struct conf */
	size_t aux; /* see enum ktype */
	const char *def;
	int64_t min, max; /* T_INT, T_DURATION, T_SECONDS (in ms), T_SIZE */
	unsigned flags;
	int (*check)(const char *value, char *err, size_t errlen); /* extra check of a T_STRING */
	const char *why;                                             /* one line, mirrored in conf/pollgate.conf */
};

static int check_cookie_name(const char *value, char *err, size_t errlen);
static int check_origins(const char *value, char *err, size_t errlen);
static int check_hint_source(const char *value, char *err, size_t errlen);

#define OFF(f) offsetof(conf, f)
#define FSIZE(f) sizeof(((conf *)0)->f)
#define KEY(n, t, f, a, d, lo, hi, fl, chk, r)                                                                  \
	{                                                                                                           \
		.name = (n), .type = (t), .off = OFF(f), .aux = (a), .def = (d), .min = (lo), .max = (hi),          \
		.flags = (fl), .check = (chk), .why = (r)                                                           \
	}
#define INT(n, f, d, lo, hi, fl, r) KEY(n, T_INT, f, FSIZE(f), d, lo, hi, fl, NULL, r)
#define DUR(n, f, d, lo, hi, fl, r) KEY(n, T_DURATION, f, 0, d, lo, hi, fl, NULL, r)
#define STR(n, f, d, fl, chk, r) KEY(n, T_STRING, f, 0, d, 0, 0, fl, chk, r)
#define LIST(n, t, f, cnt, d, r) KEY(n, t, f, OFF(cnt), d, 0, 0, K_RELOAD, NULL, r)

static const struct key_def keys[] = {
	KEY("listen", T_LISTEN, listen, 0, "127.0.0.1:8080", 0, 0, 0, NULL,
	    "where HTTP is served; loopback by default because a proxy is meant to sit in front"),
	STR("database", database, "", K_EMPTY_OK, NULL,
	    "libpq conninfo or URI; empty lets the PG* environment variables decide"),
	INT("db_pool_size", db_pool_size, "2", 1, 64, 0,
	    "query connections; re-reads are batched, so a few connections carry many waiters"),
	DUR("db_connect_timeout", db_connect_timeout_ms, "5s", MS(100), MIN(5), 0,
	    "give up on a connection attempt after this and retry with backoff"),
	DUR("db_query_timeout", db_query_timeout_ms, "10s", MS(100), MIN(10), 0,
	    "a query running longer than this is cancelled; held waiters keep their last good state"),
	DUR("db_reconnect_min", db_reconnect_min_ms, "250ms", MS(10), MIN(1), 0,
	    "first reconnect delay after the database goes away"),
	DUR("db_reconnect_max", db_reconnect_max_ms, "10s", MS(10), MIN(10), 0,
	    "cap of the doubling reconnect delay, so a long outage is not hammered"),
	DUR("db_heartbeat", db_heartbeat_ms, "5s", MS(100), MIN(5), 0,
	    "the LISTEN session asks the server this often; no answer within it means a dead link: reconnect"),
	STR("hint_source", hint_source, "notify", 0, check_hint_source,
	    "where wake-up hints come from: notify (row triggers + LISTEN) or logical (a temporary logical "
	    "replication slot on the publication pollgate; no triggers, needs wal_level = logical and REPLICATION)"),
	INT("reread_batch_max", reread_batch_max, "1000", 1, 100000, K_RELOAD,
	    "dirty resources re-read by one query; bounds query size after a burst of NOTIFYs"),
	DUR("default_wait", default_wait_ms, "25s", MS(0), HOUR(1), K_RELOAD,
	    "hold time when the client asks for none; under common 30 s proxy idle timeouts"),
	DUR("max_wait", max_wait_ms, "55s", SEC(1), HOUR(1), K_RELOAD,
	    "cap on any hold; stays under the 60 s idle timeout of most proxies and load balancers"),
	DUR("proxy_timeout", proxy_timeout_ms, "0s", MS(0), HOUR(1), K_RELOAD,
	    "read timeout of the reverse proxy in front (nginx proxy_read_timeout, HAProxy timeout server); "
	    "when set, max_wait must stay 5s below it; 0 = not checked"),
	DUR("header_timeout", header_timeout_ms, "10s", MS(100), MIN(10), K_RELOAD,
	    "a request whose headers are not complete by then is dropped (slowloris)"),
	KEY("max_header_size", T_SIZE, max_header_size, 0, "8KiB", KIB(1), MIB(1), K_RELOAD, NULL,
	    "a larger request header block is refused with 400 and close; cookies and a bearer token fit"),
	DUR("drain_timeout", drain_timeout_ms, "10s", MS(0), MIN(10), K_RELOAD,
	    "on SIGTERM, time allowed to answer held requests before exiting"),
	KEY("retry_after", T_SECONDS, retry_after_s, 0, "2s", SEC(1), HOUR(1), K_RELOAD, NULL,
	    "Retry-After sent with 503 and 429, so refused clients back off instead of spinning"),
	STR("auth_cookie", auth_cookie, "pollgate_token", K_RELOAD, check_cookie_name,
	    "cookie read for the token when there is no Authorization header"),
	DUR("auth_cache_ttl", auth_cache_ttl_ms, "10s", MS(0), HOUR(1), K_RELOAD,
	    "how long a token->principal answer is reused; a revoked token lives at most this long"),
	STR("jwt_key_file", jwt_key_file, "", K_RELOAD | K_EMPTY_OK, NULL,
	    "HS256 secret (the file's bytes) or RS256/ES256 public key (PEM) that signs JWT credentials; "
	    "empty = none"),
	STR("jwt_audience", jwt_audience, "", K_RELOAD | K_EMPTY_OK, NULL,
	    "a JWT's aud must name this; when empty, a JWT that carries aud is refused"),
	STR("jwt_issuer", jwt_issuer, "", K_RELOAD | K_EMPTY_OK, NULL,
	    "a JWT's iss must be exactly this; empty = not checked"),
	KEY("jwt_leeway", T_SECONDS, jwt_leeway_s, 0, "0s", MS(0), MIN(5), K_RELOAD, NULL,
	    "clock skew allowed on a JWT's exp and nbf; 0 keeps expiry exact"),
	DUR("terminal_linger", terminal_linger_ms, "5m", MS(0), HOUR(24), K_RELOAD,
	    "how long a terminal resource's last state is remembered to answer late pollers cheaply"),
	STR("cors_origins", cors_origins, "", K_RELOAD | K_EMPTY_OK, check_origins,
	    "browser origins (scheme://host[:port]) allowed to read answers with credentials; empty = CORS off"),
	DUR("cors_max_age", cors_max_age_ms, "10m", MS(0), HOUR(2), K_RELOAD,
	    "how long a browser may cache a CORS preflight answer (Chromium caps it at 2h)"),
	KEY("metrics_allow", T_CIDRS, metrics_allow, 0, "127.0.0.1/32 ::1/128", 0, 0, K_RELOAD | K_EMPTY_OK,
	    NULL, "client addresses that may read /metrics; empty means nobody"),
	KEY("trusted_proxies", T_CIDRS, trusted_proxies, 0, "", 0, 0, K_RELOAD | K_EMPTY_OK, NULL,
	    "peers whose X-Forwarded-For and X-Request-Id are believed; empty trusts none"),
	KEY("workers", T_INT, workers, FSIZE(workers), "auto", 1, 256, K_AUTO, NULL,
	    "processes serving HTTP, each with its own loop, pool and LISTEN session on the shared port "
	    "(SO_REUSEPORT); auto = one per online core; 1 = a single process and no supervisor"),
	INT("max_waiters", max_waiters, "100000", 1, 10000000, K_RELOAD,
	    "held requests in the whole process; past it 503, well below the file-descriptor limit"),
	INT("max_waiters_per_principal", max_waiters_per_principal, "64", 1, 1000000, K_RELOAD,
	    "held requests of one user; past it 429, so one user cannot starve the rest"),
	INT("max_waiters_per_client", max_waiters_per_client, "256", 1, 1000000, K_RELOAD,
	    "held requests of one client address; past it 429; higher than per user for shared NATs"),
	INT("client_ipv6_prefix", client_ipv6_prefix, "64", 32, 128, K_RELOAD,
	    "IPv6 clients are counted per this many leading bits (one /64 is one client: a host has all of it)"),
	KEY("log_level", T_LOG_LEVEL, log_level, 0, "info", 0, 0, K_RELOAD, NULL,
	    "error, warn, info or debug; debug logs every request"),
	KEY("log_format", T_LOG_FORMAT, log_format, 0, "logfmt", 0, 0, K_RELOAD, NULL,
	    "logfmt for people, json for log shippers"),
	STR("log_file", log_file, "", K_RELOAD | K_EMPTY_OK, NULL,
	    "log destination, reopened on SIGHUP; empty means stderr"),
	STR("access_log", access_log, "off", K_RELOAD, NULL,
	    "one line per answered request: off, on (into the log above) or a file path, reopened on SIGHUP"),
	LIST("run_active_statuses", T_POL_LIST, policy.run_active, policy.n_run_active, "queued running",
	     "run statuses that are still moving: held and re-read"),
	KEY("run_completed_status", T_POL_NAME, policy.run_completed_status, 0, "completed", 0, 0, K_RELOAD,
	    NULL, "the run status whose outcome decides the terminal state"),
	LIST("run_outcome_states", T_POL_OUTCOMES, policy.run_outcomes, policy.n_run_outcomes,
	     "succeeded=succeeded partially_succeeded=partial failed=failed cancelled=cancelled",
	     "persisted outcome=served state pairs for completed runs"),
	LIST("run_poll_schedule", T_POL_SCHEDULE, policy.run_schedule, policy.n_run_schedule,
	     "10s:1s 60s:5s *:10s", "re-read interval by run age: young runs change fast, old ones slowly"),
	LIST("pack_active_statuses", T_POL_LIST, policy.pack_active, policy.n_pack_active, "queued generating",
	     "review pack statuses that are still moving: held and re-read"),
	LIST("pack_terminal_statuses", T_POL_LIST, policy.pack_terminal, policy.n_pack_terminal,
	     "ready failed expired", "review pack statuses that close the watch for good"),
	DUR("pack_poll_interval", policy.pack_interval_ms, "10s", MS(100), HOUR(1), K_RELOAD,
	    "safety-net re-read interval of an active review pack when no NOTIFY arrives"),
};

#define NKEYS (sizeof keys / sizeof keys[0])

/* Checks that involve two keys, run after the whole file. Each fills err and returns -1 on conflict. */
struct cross_check {
	const char *a, *b;
	int (*check)(const conf *c, char *err, size_t errlen);
};

static int cross_waits(const conf *c, char *err, size_t errlen);
static int cross_reconnect(const conf *c, char *err, size_t errlen);
static int cross_proxy(const conf *c, char *err, size_t errlen);
static int cross_pack_lists(const conf *c, char *err, size_t errlen);
static int cross_completed(const conf *c, char *err, size_t errlen);

static const struct cross_check crosses[] = {
	{"default_wait", "max_wait", cross_waits},
	{"db_reconnect_min", "db_reconnect_max", cross_reconnect},
	{"max_wait", "proxy_timeout", cross_proxy},
	{"pack_active_statuses", "pack_terminal_statuses", cross_pack_lists},
	{"run_active_statuses", "run_completed_status", cross_completed},
};

/* One parse: where errors go and which keys a file set, on which line, and whether the value was good. */
struct parser {
	const char *name;
	FILE *errs;
	int nerrors;
	int set_line[NKEYS]; /* 0 = not set by the file */
	bool bad[NKEYS];
	conf *c;
};

/* ---- typed access to struct conf through a table offset ---- */

static void *field(conf *c, size_t off)
{
	return (char *)c + off;
}

static const void *cfield(const conf *c, size_t off)
{
	return (const char *)c + off;
}

static int64_t *i64_at(conf *c, size_t off)
{
	return (int64_t *)field(c, off);
}

static int *int_at(conf *c, size_t off)
{
	return (int *)field(c, off);
}

static char **str_at(conf *c, size_t off)
{
	return (char **)field(c, off);
}

static size_t *count_at(conf *c, size_t off)
{
	return (size_t *)field(c, off);
}

static int64_t get_int(const conf *c, const struct key_def *k)
{
	if (k->type == T_INT && k->aux == sizeof(int)) return *(const int *)cfield(c, k->off);
	return *(const int64_t *)cfield(c, k->off);
}

/* Bytes of a fixed-size policy field (so equality and copying need no allocation). */
static size_t pol_field_size(enum ktype t)
{
	switch (t) {
	case T_POL_LIST: return (size_t)POL_MAX_LIST * POL_NAME_MAX;
	case T_POL_NAME: return POL_NAME_MAX;
	case T_POL_OUTCOMES: return (size_t)POL_MAX_LIST * sizeof(pol_outcome_map);
	case T_POL_SCHEDULE: return (size_t)POL_MAX_STEPS * sizeof(pol_step);
	default: return 0;
	}
}

static const struct key_def *key_find(const char *name, size_t *idx)
{
	for (size_t i = 0; i < NKEYS; i++) {
		if (strcmp(keys[i].name, name) == 0) {
			if (idx) *idx = i;
			return &keys[i];
		}
	}
	return NULL;
}

/* ---- small text helpers ---- */

static bool is_ws(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\v' || ch == '\f';
}

/* A printable, bounded copy of n bytes of s for a message: non-printable bytes as \xNN, long text cut. */
static const char *show_n(const char *s, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n && o + 8 < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (i == SHOW_MAX) {
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
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

#define SHOW_BUF (SHOW_MAX * 4 + 8)
static const char *show(const char *s, char *buf)
{
	return show_n(s, strlen(s), buf, SHOW_BUF);
}

/* "250ms", "25s", "5m", "1h": the largest unit that states the value exactly. */
static void fmt_duration(int64_t ms, char *buf, size_t len)
{
	if (ms == 0)
		snprintf(buf, len, "0s");
	else if (ms % HOUR(1) == 0)
		snprintf(buf, len, "%lldh", (long long)(ms / HOUR(1)));
	else if (ms % MIN(1) == 0)
		snprintf(buf, len, "%lldm", (long long)(ms / MIN(1)));
	else if (ms % SEC(1) == 0)
		snprintf(buf, len, "%llds", (long long)(ms / SEC(1)));
	else
		snprintf(buf, len, "%lldms", (long long)ms);
}

static void fmt_size(int64_t n, char *buf, size_t len)
{
	if (n != 0 && n % MIB(1) == 0)
		snprintf(buf, len, "%lldMiB", (long long)(n / MIB(1)));
	else if (n != 0 && n % KIB(1) == 0)
		snprintf(buf, len, "%lldKiB", (long long)(n / KIB(1)));
	else
		snprintf(buf, len, "%lldB", (long long)n);
}

/* Digits, with an optional leading '-' when `sign`; a value beyond int64 saturates (the bounds check
 * then refuses it). Sets *end to the first byte after the digits. -1 when there are no digits. */
static int scan_int(const char *s, bool sign, int64_t *out, const char **end)
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

static bool cidr_sep(char ch)
{
	return ch == ' ' || ch == ',' || ch == '\t';
}

/* ---- value setters: each parses `v` into c's field or fills err and returns -1 ---- */

static int check_cookie_name(const char *value, char *err, size_t errlen)
{
	/* RFC 6265 cookie-name = token (RFC 2616): visible ASCII except separators. */
	static const char separators[] = "()<>@,;:\\\"/[]?={}";
	char sb[SHOW_BUF];

	if (*value == '\0') {
		snprintf(err, errlen, "auth_cookie must not be empty");
		return -1;
	}
	for (const char *p = value; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || strchr(separators, ch) != NULL) {
			snprintf(err, errlen, "invalid cookie name '%s' for auth_cookie: use letters, digits and !#$%%&'*+-.^_`|~",
			         show(value, sb));
			return -1;
		}
	}
	return 0;
}

static int check_hint_source(const char *value, char *err, size_t errlen)
{
	char sb[SHOW_BUF];

	if (strcmp(value, "notify") == 0 || strcmp(value, "logical") == 0) return 0;
	snprintf(err, errlen, "invalid hint_source '%s': use notify or logical", show(value, sb));
	return -1;
}

/* One origin as browsers serialise it (RFC 6454): lower-case http or https, a lower-case host name, IPv4
 * or [IPv6] address, an optional port without leading zeros, and nothing after it (no path, no slash). */
static bool origin_ok(const char *s, size_t n)
{
	size_t i;
	if (n > 8 && memcmp(s, "https://", 8) == 0) i = 8;
	else if (n > 7 && memcmp(s, "http://", 7) == 0) i = 7;
	else return false;
	size_t host = i;
	if (s[i] == '[') {
		while (i < n && s[i] != ']') {
			char ch = s[i];
			if (i > host && !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || ch == ':' || ch == '.'))
				return false;
			i++;
		}
		if (i >= n || i - host < 3) return false;
		i++;
	} else {
		while (i < n && s[i] != ':') {
			char ch = s[i];
			if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.')) return false;
			i++;
		}
		if (i == host || s[host] == '.' || s[host] == '-' || s[i - 1] == '.' || s[i - 1] == '-') return false;
	}
	if (i == n) return true;
	if (s[i] != ':' || i + 1 == n || s[i + 1] == '0' || n - i - 1 > 5) return false;
	long port = 0;
	for (i++; i < n; i++) {
		if (s[i] < '0' || s[i] > '9') return false;
		port = port * 10 + (s[i] - '0');
	}
	return port >= 1 && port <= 65535;
}

static int check_origins(const char *value, char *err, size_t errlen)
{
	char sb[SHOW_BUF];
	const char *p = value;

	while (*p) {
		while (*p == ' ' || *p == '\t') p++;
		if (*p == '\0') break;
		size_t n = strcspn(p, " \t");
		if (!origin_ok(p, n)) {
			if (n == 1 && *p == '*')
				snprintf(err, errlen, "cors_origins: '*' cannot be used with credentials; list each origin");
			else
				snprintf(err, errlen,
				         "cors_origins: '%s' is not an origin; write it as a browser sends it, e.g. "
				         "https://admin.example.com or http://localhost:3000 (lower case, no path)",
				         show_n(p, n, sb, sizeof sb));
			return -1;
		}
		p += n;
	}
	return 0;
}

static bool needs_quotes(const char *s, size_t n)
{
	return n == 0 || is_ws(s[0]) || is_ws(s[n - 1]) || s[0] == '"' || strchr(s, '#') != NULL;
}

/* Bytes dump_string() writes for s. */
static size_t dumped_len(const char *s)
{
	size_t n = strlen(s), out = n;
	if (!needs_quotes(s, n)) return n;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '"' || s[i] == '\\') out++;
	return out + 2;
}

static int set_string(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	char *copy;

	if (k->check && k->check(v, err, errlen) != 0) return -1;
	/* --print-config must give a file that loads again: the value, quoted and escaped as it would be
	 * written back, must fit one line. */
	size_t w = strlen(k->name) + 3 + dumped_len(v);
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
	free(*str_at(c, k->off));
	*str_at(c, k->off) = copy;
	return 0;
}

static int set_listen(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	char sb[SHOW_BUF];
	const char *colon, *host_start, *host_end;
	char *text = NULL, *host = NULL;
	int64_t port;
	const char *end;
	int rc = -1;

	(void)k;
	if (v[0] == '[') {
		host_start = v + 1;
		host_end = strchr(v, ']');
		if (host_end == NULL) {
			snprintf(err, errlen, "invalid listen address '%s': missing ']' after the IPv6 address", show(v, sb));
			goto out;
		}
		colon = host_end + 1;
		if (*colon != ':') {
			snprintf(err, errlen, "invalid listen address '%s': expected ADDRESS:PORT", show(v, sb));
			goto out;
		}
	} else {
		host_start = v;
		colon = strrchr(v, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "invalid listen address '%s': expected ADDRESS:PORT", show(v, sb));
			goto out;
		}
		host_end = colon;
		if (memchr(v, ':', (size_t)(colon - v)) != NULL) {
			snprintf(err, errlen, "invalid listen address '%s': write an IPv6 address in brackets, as [::1]:8080",
			         show(v, sb));
			goto out;
		}
	}

	if (scan_int(colon + 1, false, &port, &end) != 0 || *end != '\0' || port < 1 || port > 65535) {
		snprintf(err, errlen, "invalid listen address '%s': the port must be a number between 1 and 65535",
		         show(v, sb));
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
			         show(v, sb));
			goto out;
		}
	}
	text = strdup(v);
	if (text == NULL) goto oom;

	free(c->listen);
	free(c->listen_host);
	c->listen = text;
	c->listen_host = host;
	c->listen_port = (int)port;
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

static int bounds_error(const struct key_def *k, const char *given, char *err, size_t errlen)
{
	char lo[32], hi[32], sb[SHOW_BUF];

	switch (k->type) {
	case T_DURATION:
	case T_SECONDS:
		fmt_duration(k->min, lo, sizeof lo);
		fmt_duration(k->max, hi, sizeof hi);
		break;
	case T_SIZE:
		fmt_size(k->min, lo, sizeof lo);
		fmt_size(k->max, hi, sizeof hi);
		break;
	default:
		snprintf(lo, sizeof lo, "%lld", (long long)k->min);
		snprintf(hi, sizeof hi, "%lld", (long long)k->max);
		break;
	}
	snprintf(err, errlen, "%s must be between %s and %s (got %s)", k->name, lo, hi, show(given, sb));
	return -1;
}

static int set_int(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	char sb[SHOW_BUF];
	const char *end;
	int64_t n;

	if ((k->flags & K_AUTO) && strcmp(v, "auto") == 0) {
		n = 0; /* auto: resolved when it is used (conf_workers) */
		goto store;
	}
	if (scan_int(v, true, &n, &end) != 0 || *end != '\0') {
		if (k->flags & K_AUTO)
			snprintf(err, errlen, "invalid value '%s' for %s: use auto or a whole number", show(v, sb), k->name);
		else
			snprintf(err, errlen, "invalid integer '%s' for %s: use a whole number", show(v, sb), k->name);
		return -1;
	}
	if (n < k->min || n > k->max) return bounds_error(k, v, err, errlen);
store:
	if (k->aux == sizeof(int))
		*int_at(c, k->off) = (int)n;
	else
		*i64_at(c, k->off) = n;
	return 0;
}

static int set_duration(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	char sb[SHOW_BUF];
	int64_t ms;

	if (pol_parse_duration(v, &ms) != 0) {
		snprintf(err, errlen, "invalid duration '%s' for %s: use a number with ms, s, m or h", show(v, sb),
		         k->name);
		return -1;
	}
	if (ms < k->min || ms > k->max) return bounds_error(k, v, err, errlen);
	*i64_at(c, k->off) = k->type == T_SECONDS ? (ms + 999) / 1000 : ms;
	return 0;
}

static int set_size(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	static const struct {
		const char *unit;
		int64_t mult;
	} units[] = {{"", 1}, {"B", 1}, {"KiB", KIB(1)}, {"k", KIB(1)}, {"K", KIB(1)}, {"MiB", MIB(1)}, {"M", MIB(1)}};
	char sb[SHOW_BUF];
	const char *end;
	int64_t n;

	if (scan_int(v, false, &n, &end) == 0) {
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			if (strcmp(end, units[i].unit) != 0) continue;
			n = n > INT64_MAX / units[i].mult ? INT64_MAX : n * units[i].mult;
			if (n < k->min || n > k->max) return bounds_error(k, v, err, errlen);
			*i64_at(c, k->off) = n;
			return 0;
		}
	}
	snprintf(err, errlen, "invalid size '%s' for %s: use a number with B, KiB or MiB", show(v, sb), k->name);
	return -1;
}

static int set_cidrs(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	conf_cidr_list *list = (conf_cidr_list *)field(c, k->off);
	conf_cidr *items = NULL;
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
		char elem[INET6_ADDRSTRLEN + 8], sb[SHOW_BUF];
		size_t len;

		while (*p && cidr_sep(*p)) p++;
		if (*p == '\0') break;
		len = strcspn(p, " ,\t");
		if (len < sizeof elem) {
			memcpy(elem, p, len);
			elem[len] = '\0';
		}
		if (len >= sizeof elem || conf_cidr_parse(elem, &items[n]) != 0) {
			snprintf(err, errlen, "invalid CIDR '%s' in %s (element %zu)", show_n(p, len, sb, sizeof sb), k->name,
			         n + 1);
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

static int set_enum(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	char sb[SHOW_BUF];
	int val = -1;

	if (k->type == T_LOG_LEVEL) {
		val = cm_log_level_parse(v);
		if (val < 0) {
			snprintf(err, errlen, "invalid log_level '%s': use error, warn, info or debug", show(v, sb));
			return -1;
		}
	} else {
		if (strcmp(v, "logfmt") == 0)
			val = CM_LOG_LOGFMT;
		else if (strcmp(v, "json") == 0)
			val = CM_LOG_JSON;
		else {
			snprintf(err, errlen, "invalid log_format '%s': use logfmt or json", show(v, sb));
			return -1;
		}
	}
	*int_at(c, k->off) = val;
	return 0;
}

/* The policy parsers write into zeroed scratch space first, so a refused value leaves the conf untouched
 * and unused bytes compare equal. */
static int set_policy(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	union {
		char names[POL_MAX_LIST][POL_NAME_MAX];
		pol_outcome_map outcomes[POL_MAX_LIST];
		pol_step steps[POL_MAX_STEPS];
	} tmp;
	char perr[256] = "";
	size_t n = 0;
	int rc = -1;

	memset(&tmp, 0, sizeof tmp);
	switch (k->type) {
	case T_POL_LIST:
	case T_POL_NAME: rc = pol_parse_list(v, tmp.names, &n, perr, sizeof perr); break;
	case T_POL_OUTCOMES: rc = pol_parse_outcomes(v, tmp.outcomes, &n, perr, sizeof perr); break;
	case T_POL_SCHEDULE: rc = pol_parse_schedule(v, tmp.steps, &n, perr, sizeof perr); break;
	default: break;
	}
	if (rc != 0) {
		for (char *q = perr; *q; q++) /* the policy parsers echo raw bytes: keep messages printable */
			if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f) *q = '?';
		snprintf(err, errlen, "invalid %s: %s", k->name, perr[0] ? perr : "not a valid value");
		return -1;
	}
	if (k->type == T_POL_NAME) {
		if (n != 1) {
			snprintf(err, errlen, "invalid %s: give exactly one status name", k->name);
			return -1;
		}
		memcpy(field(c, k->off), tmp.names[0], POL_NAME_MAX);
		return 0;
	}
	memcpy(field(c, k->off), &tmp, pol_field_size(k->type));
	*count_at(c, k->aux) = n;
	return 0;
}

/* Parse one value of key k into c. `v` is the unquoted value. */
static int set_value(conf *c, const struct key_def *k, const char *v, char *err, size_t errlen)
{
	if (*v == '\0' && !(k->flags & K_EMPTY_OK)) {
		snprintf(err, errlen, "%s needs a value", k->name);
		return -1;
	}
	switch (k->type) {
	case T_LISTEN: return set_listen(c, k, v, err, errlen);
	case T_STRING: return set_string(c, k, v, err, errlen);
	case T_INT: return set_int(c, k, v, err, errlen);
	case T_DURATION:
	case T_SECONDS: return set_duration(c, k, v, err, errlen);
	case T_SIZE: return set_size(c, k, v, err, errlen);
	case T_CIDRS: return set_cidrs(c, k, v, err, errlen);
	case T_LOG_LEVEL:
	case T_LOG_FORMAT: return set_enum(c, k, v, err, errlen);
	case T_POL_LIST:
	case T_POL_NAME:
	case T_POL_OUTCOMES:
	case T_POL_SCHEDULE: return set_policy(c, k, v, err, errlen);
	}
	snprintf(err, errlen, "internal error: unhandled type of %s", k->name);
	return -1;
}

/* ---- cross-field checks ---- */

static int cross_waits(const conf *c, char *err, size_t errlen)
{
	char a[32], b[32];

	if (c->default_wait_ms <= c->max_wait_ms) return 0;
	fmt_duration(c->default_wait_ms, a, sizeof a);
	fmt_duration(c->max_wait_ms, b, sizeof b);
	snprintf(err, errlen, "default_wait (%s) must not be longer than max_wait (%s)", a, b);
	return -1;
}

/* A proxy that times out a held request first answers the browser 504 and the wake is lost: max_wait
 * must end the hold, with time to spare for the answer to cross the proxy. */
#define PROXY_MARGIN_MS SEC(5)
static int cross_proxy(const conf *c, char *err, size_t errlen)
{
	char a[32], b[32];

	if (c->proxy_timeout_ms == 0 || c->max_wait_ms + PROXY_MARGIN_MS <= c->proxy_timeout_ms) return 0;
	fmt_duration(c->max_wait_ms, a, sizeof a);
	fmt_duration(c->proxy_timeout_ms, b, sizeof b);
	snprintf(err, errlen,
	         "max_wait (%s) must be at least 5s below proxy_timeout (%s), or the proxy times out held requests "
	         "first (504); lower max_wait or raise the proxy's timeout",
	         a, b);
	return -1;
}

static int cross_reconnect(const conf *c, char *err, size_t errlen)
{
	char a[32], b[32];

	if (c->db_reconnect_min_ms <= c->db_reconnect_max_ms) return 0;
	fmt_duration(c->db_reconnect_min_ms, a, sizeof a);
	fmt_duration(c->db_reconnect_max_ms, b, sizeof b);
	snprintf(err, errlen, "db_reconnect_min (%s) must not be longer than db_reconnect_max (%s)", a, b);
	return -1;
}

static int cross_pack_lists(const conf *c, char *err, size_t errlen)
{
	const pol_config *p = &c->policy;

	for (size_t i = 0; i < p->n_pack_active && i < POL_MAX_LIST; i++) {
		for (size_t j = 0; j < p->n_pack_terminal && j < POL_MAX_LIST; j++) {
			if (strcmp(p->pack_active[i], p->pack_terminal[j]) == 0) {
				snprintf(err, errlen, "status '%s' is in both pack_active_statuses and pack_terminal_statuses",
				         p->pack_active[i]);
				return -1;
			}
		}
	}
	return 0;
}

static int cross_completed(const conf *c, char *err, size_t errlen)
{
	const pol_config *p = &c->policy;

	for (size_t i = 0; i < p->n_run_active && i < POL_MAX_LIST; i++) {
		if (strcmp(p->run_active[i], p->run_completed_status) == 0) {
			snprintf(err, errlen, "run_completed_status '%s' is also in run_active_statuses",
			         p->run_completed_status);
			return -1;
		}
	}
	return 0;
}

/* ---- the line parser ---- */

static void report(struct parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void report(struct parser *p, int line, const char *fmt, ...)
{
	char msg[ERR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	p->nerrors++;
	if (p->errs) fprintf(p->errs, "%s:%d: %s\n", p->name, line, msg);
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

static void report_unknown(struct parser *p, int line, const char *key)
{
	char sb[SHOW_BUF];
	const char *best = NULL;
	int best_d = 3;

	for (size_t i = 0; i < NKEYS; i++) {
		int d = edit_distance(key, keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = keys[i].name;
		}
	}
	if (best)
		report(p, line, "unknown key '%s' (did you mean '%s'?)", show(key, sb), best);
	else
		report(p, line, "unknown key '%s'", show(key, sb));
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

static void parse_line(struct parser *p, int lineno, const char *s, size_t len)
{
	char key[CONF_LINE_MAX + 1], val[CONF_LINE_MAX + 1], err[ERR_LEN];
	const char *eq, *k0, *k1, *v0, *v1;
	const struct key_def *k;
	size_t idx;

	if (len > 0 && s[len - 1] == '\r') len--; /* CRLF */
	if (len > CONF_LINE_MAX) {
		report(p, lineno, "line too long (%zu bytes; at most %d)", len, CONF_LINE_MAX);
		return;
	}
	if (memchr(s, '\0', len) != NULL) {
		report(p, lineno, "NUL byte in line");
		return;
	}
	k0 = s;
	v1 = s + len;
	while (k0 < v1 && is_ws(*k0)) k0++;
	if (k0 == v1 || *k0 == '#') return; /* blank or comment */

	eq = memchr(k0, '=', (size_t)(v1 - k0));
	if (eq == NULL) { /* the line is not echoed: it may be a stray piece of a connection string */
		report(p, lineno, "expected 'key = value' (no '=' on this line)");
		return;
	}
	k1 = eq;
	while (k1 > k0 && is_ws(k1[-1])) k1--;
	if (k1 == k0) {
		report(p, lineno, "missing key before '='");
		return;
	}
	memcpy(key, k0, (size_t)(k1 - k0));
	key[k1 - k0] = '\0';

	k = key_find(key, &idx);
	if (k == NULL) {
		report_unknown(p, lineno, key);
		return;
	}
	if (p->set_line[idx] != 0) {
		report(p, lineno, "duplicate key '%s' (first set on line %d)", k->name, p->set_line[idx]);
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
	if (set_value(p->c, k, val, err, sizeof err) != 0) goto bad;
	return;
bad:
	p->bad[idx] = true;
	report(p, lineno, "%s", err);
}

static void parse_buffer(struct parser *p, const char *buf, size_t len)
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

	for (size_t i = 0; i < sizeof crosses / sizeof crosses[0]; i++) {
		const struct cross_check *x = &crosses[i];
		size_t ia = 0, ib = 0;
		char err[ERR_LEN];
		int line;

		if (key_find(x->a, &ia) == NULL || key_find(x->b, &ib) == NULL) continue;
		if (p->bad[ia] || p->bad[ib]) continue; /* already reported */
		if (x->check == cross_waits && p->set_line[ia] == 0) {
			/* Lowering only the cap takes the unset default with it: an operator who writes
			 * max_wait = 20s means every hold, the default one included, ends by 20 s. */
			if (p->c->default_wait_ms > p->c->max_wait_ms) p->c->default_wait_ms = p->c->max_wait_ms;
			continue;
		}
		line = p->set_line[ia] > p->set_line[ib] ? p->set_line[ia] : p->set_line[ib];
		if (line == 0) continue; /* both defaults: consistent by construction */
		if (x->check(p->c, err, sizeof err) != 0) report(p, line, "%s", err);
	}
}

/* The JWT key is read once the whole file is parsed (so a reload re-reads it), and its errors are
 * reported on the line of jwt_key_file. */
static void load_jwt_key(struct parser *p)
{
	char err[ERR_LEN / 2], sb[SHOW_BUF];
	size_t ik = 0, ia = 0, ii = 0;
	conf *c = p->c;

	if (key_find("jwt_key_file", &ik) == NULL || key_find("jwt_audience", &ia) == NULL ||
	    key_find("jwt_issuer", &ii) == NULL || p->bad[ik])
		return;
	if (c->jwt_key_file[0] == '\0') {
		if (c->jwt_audience[0] != '\0' || c->jwt_issuer[0] != '\0')
			report(p, p->set_line[ia] > p->set_line[ii] ? p->set_line[ia] : p->set_line[ii],
			       "jwt_audience and jwt_issuer need jwt_key_file (no JWT is verified without a key)");
		return;
	}
	c->jwt_key = auth_jwt_key_load(c->jwt_key_file, err, sizeof err);
	if (c->jwt_key == NULL) {
		/* A plain path is echoed whole (an operator needs all of it); anything odd escaped and cut. */
		bool plain = strlen(c->jwt_key_file) <= 200;
		for (const char *q = c->jwt_key_file; plain && *q; q++) plain = *q >= 0x20 && *q < 0x7f && *q != '\\';
		report(p, p->set_line[ik], "jwt_key_file '%s' %s", plain ? c->jwt_key_file : show(c->jwt_key_file, sb), err);
	}
}

/* ---- public API ---- */

conf *conf_new_defaults(void)
{
	conf *c = calloc(1, sizeof *c);
	char err[ERR_LEN];

	if (c == NULL) return NULL;
	for (size_t i = 0; i < NKEYS; i++) {
		if (set_value(c, &keys[i], keys[i].def, err, sizeof err) != 0) {
			/* Only out of memory (or a broken default, which the unit tests catch). */
			log_error("config: default of %s: %s", keys[i].name, err);
			conf_free(c);
			return NULL;
		}
	}
	return c;
}

static conf *load_buffer(const char *name, const char *buf, size_t len, FILE *errs, int *nerrors)
{
	struct parser p;
	conf *c = NULL;

	memset(&p, 0, sizeof p);
	p.name = name ? name : "<string>";
	p.errs = errs;
	c = conf_new_defaults();
	if (c == NULL) {
		report(&p, 0, "out of memory");
		goto out;
	}
	if (name) {
		c->path = strdup(name);
		if (c->path == NULL) {
			report(&p, 0, "out of memory");
			goto out;
		}
	}
	p.c = c;
	parse_buffer(&p, buf, len);
	load_jwt_key(&p);
out:
	if (p.nerrors > 0) {
		conf_free(c);
		c = NULL;
	}
	if (nerrors) *nerrors = p.nerrors;
	return c;
}

conf *conf_load_string(const char *name, const char *text, FILE *errs, int *nerrors)
{
	if (text == NULL) text = "";
	return load_buffer(name, text, strlen(text), errs, nerrors);
}

conf *conf_load(const char *path, FILE *errs, int *nerrors)
{
	FILE *f = NULL;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	conf *c = NULL;
	const char *why = NULL;
	int saved = 0;

	if (nerrors) *nerrors = 1;
	if (path == NULL) path = "(null)";
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
	c = load_buffer(path, buf, len, errs, nerrors);
out:
	if (why && errs) fprintf(errs, "%s: %s: %s\n", path, why, strerror(saved));
	if (f) fclose(f);
	free(buf);
	return c;
}

void conf_free(conf *c)
{
	if (c == NULL) return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		switch (k->type) {
		case T_LISTEN:
			free(c->listen);
			free(c->listen_host);
			break;
		case T_STRING: free(*str_at(c, k->off)); break;
		case T_CIDRS: free(((conf_cidr_list *)field(c, k->off))->items); break;
		default: break;
		}
	}
	auth_jwt_key_free(c->jwt_key);
	free(c->path);
	free(c);
}

int conf_workers(const conf *c)
{
	if (c->workers > 0) return c->workers;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool value_equal(const struct key_def *k, const conf *a, const conf *b)
{
	switch (k->type) {
	case T_LISTEN: return str_eq(a->listen_host, b->listen_host) && a->listen_port == b->listen_port;
	case T_STRING:
		return str_eq(*(char *const *)cfield(a, k->off), *(char *const *)cfield(b, k->off));
	case T_CIDRS: {
		const conf_cidr_list *la = cfield(a, k->off), *lb = cfield(b, k->off);
		if (la->n != lb->n) return false;
		for (size_t i = 0; i < la->n; i++)
			if (la->items[i].prefix != lb->items[i].prefix ||
			    memcmp(la->items[i].addr, lb->items[i].addr, 16) != 0)
				return false;
		return true;
	}
	case T_LOG_LEVEL:
	case T_LOG_FORMAT: return *(const int *)cfield(a, k->off) == *(const int *)cfield(b, k->off);
	case T_POL_LIST:
	case T_POL_NAME:
	case T_POL_OUTCOMES:
	case T_POL_SCHEDULE:
		if (k->type != T_POL_NAME &&
		    *(const size_t *)cfield(a, k->aux) != *(const size_t *)cfield(b, k->aux))
			return false;
		return memcmp(cfield(a, k->off), cfield(b, k->off), pol_field_size(k->type)) == 0;
	default: return get_int(a, k) == get_int(b, k);
	}
}

/* Copy k's value from src into dst. Returns 0, or -1 when out of memory (dst keeps its own value). */
static int value_copy(const struct key_def *k, conf *dst, const conf *src)
{
	switch (k->type) {
	case T_LISTEN: {
		char *t = strdup(src->listen ? src->listen : ""), *h = strdup(src->listen_host ? src->listen_host : "");
		if (t == NULL || h == NULL) {
			free(t);
			free(h);
			return -1;
		}
		free(dst->listen);
		free(dst->listen_host);
		dst->listen = t;
		dst->listen_host = h;
		dst->listen_port = src->listen_port;
		return 0;
	}
	case T_STRING: {
		const char *s = *(char *const *)cfield(src, k->off);
		char *t = strdup(s ? s : "");
		if (t == NULL) return -1;
		free(*str_at(dst, k->off));
		*str_at(dst, k->off) = t;
		return 0;
	}
	case T_CIDRS: {
		const conf_cidr_list *ls = cfield(src, k->off);
		conf_cidr_list *ld = field(dst, k->off);
		conf_cidr *items = NULL;
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
	case T_POL_LIST:
	case T_POL_OUTCOMES:
	case T_POL_SCHEDULE: *count_at(dst, k->aux) = *(const size_t *)cfield(src, k->aux); /* fall through */
	case T_POL_NAME: memcpy(field(dst, k->off), cfield(src, k->off), pol_field_size(k->type)); return 0;
	case T_LOG_LEVEL:
	case T_LOG_FORMAT: *int_at(dst, k->off) = *(const int *)cfield(src, k->off); return 0;
	default:
		if (k->type == T_INT && k->aux == sizeof(int))
			*int_at(dst, k->off) = *(const int *)cfield(src, k->off);
		else
			*i64_at(dst, k->off) = get_int(src, k);
		return 0;
	}
}

void conf_keep_static(conf *fresh, const conf *old, void (*report_fn)(const char *key, void *arg), void *arg)
{
	if (fresh == NULL || old == NULL) return;
	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		bool same;
		if (k->flags & K_RELOAD) continue;
		same = value_equal(k, fresh, old);
		if (!same && report_fn) report_fn(k->name, arg);
		/* Equal values need no copy, except listen's text ("0.0.0.0:080" vs "0.0.0.0:80"). */
		if (same && !(k->type == T_LISTEN && !str_eq(fresh->listen, old->listen))) continue;
		if (value_copy(k, fresh, old) != 0)
			log_error("config: out of memory keeping %s; the running value stays in effect until restart",
			          k->name);
	}
}

/* A string value as the parser reads it back: quoted when it would not survive unquoted. */
static void dump_string(const char *s, FILE *out)
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

/* Append n bytes to out (cap bytes, NUL-terminated), cutting what does not fit. */
static void redact_put(char *out, size_t cap, size_t *w, const char *s, size_t n)
{
	if (*w + n >= cap) n = cap - 1 - *w;
	memcpy(out + *w, s, n);
	*w += n;
	out[*w] = '\0';
}

void conf_redact_conninfo(const char *in, char *out, size_t cap)
{
	static const char mask[] = "REDACTED";
	size_t w = 0;
	const char *p = in ? in : "";

	if (cap == 0) return;
	out[0] = '\0';
	if (strncmp(p, "postgresql://", 13) == 0 || strncmp(p, "postgres://", 11) == 0) {
		/* URI: user:password@ before the host part, and password=... among the ?parameters */
		const char *auth = strstr(p, "://") + 3;
		size_t hostpart = strcspn(auth, "/?");
		const char *at = memrchr(auth, '@', hostpart);
		const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
		if (colon) {
			redact_put(out, cap, &w, p, (size_t)(colon + 1 - p));
			redact_put(out, cap, &w, mask, sizeof mask - 1);
			p = at;
		}
		const char *q = strchr(p, '?');
		if (q == NULL) {
			redact_put(out, cap, &w, p, strlen(p));
			return;
		}
		redact_put(out, cap, &w, p, (size_t)(q + 1 - p));
		for (p = q + 1; *p;) {
			size_t n = strcspn(p, "&");
			if (n >= 9 && strncmp(p, "password=", 9) == 0) {
				redact_put(out, cap, &w, p, 9);
				redact_put(out, cap, &w, mask, sizeof mask - 1);
			} else {
				redact_put(out, cap, &w, p, n);
			}
			p += n;
			if (*p == '&') redact_put(out, cap, &w, p++, 1);
		}
		return;
	}
	/* key = value pairs; a value is bare (up to white space) or single-quoted with \' and \\ escapes */
	while (*p) {
		size_t sp = strspn(p, " \t\n\r\f\v");
		redact_put(out, cap, &w, p, sp);
		p += sp;
		if (*p == '\0') break;
		size_t kl = strcspn(p, "= \t\n\r\f\v");
		bool secret = kl == 8 && strncmp(p, "password", 8) == 0;
		redact_put(out, cap, &w, p, kl);
		p += kl;
		sp = strspn(p, " \t\n\r\f\v");
		redact_put(out, cap, &w, p, sp);
		p += sp;
		if (*p != '=') continue;
		redact_put(out, cap, &w, p++, 1);
		sp = strspn(p, " \t\n\r\f\v");
		redact_put(out, cap, &w, p, sp);
		p += sp;
		const char *v = p;
		if (*p == '\'') {
			for (p++; *p && *p != '\''; p++)
				if (*p == '\\' && p[1]) p++;
			if (*p == '\'') p++;
		} else {
			p += strcspn(p, " \t\n\r\f\v");
		}
		if (secret) redact_put(out, cap, &w, mask, sizeof mask - 1);
		else redact_put(out, cap, &w, v, (size_t)(p - v));
	}
}

static void dump_value(const struct key_def *k, const conf *c, FILE *out)
{
	char buf[64];

	switch (k->type) {
	case T_LISTEN: dump_string(c->listen, out); return;
	case T_STRING:
		if (strcmp(k->name, "database") == 0) { /* --print-config never shows the password */
			const char *v = *(char *const *)cfield(c, k->off);
			size_t cap = 2 * (v ? strlen(v) : 0) + 16;
			char *red = malloc(cap);
			if (red == NULL) {
				fputs("\"\"", out);
				return;
			}
			conf_redact_conninfo(v, red, cap);
			dump_string(red, out);
			free(red);
			return;
		}
		dump_string(*(char *const *)cfield(c, k->off), out);
		return;
	case T_INT:
		if ((k->flags & K_AUTO) && get_int(c, k) == 0) fputs("auto", out);
		else fprintf(out, "%lld", (long long)get_int(c, k));
		return;
	case T_DURATION: fmt_duration(get_int(c, k), buf, sizeof buf); break;
	case T_SECONDS: fmt_duration(get_int(c, k) * 1000, buf, sizeof buf); break;
	case T_SIZE: fmt_size(get_int(c, k), buf, sizeof buf); break;
	case T_CIDRS: {
		const conf_cidr_list *l = cfield(c, k->off);
		if (l->n == 0) fputs("\"\"", out);
		for (size_t i = 0; i < l->n; i++) {
			conf_cidr_format(&l->items[i], buf, sizeof buf);
			fprintf(out, "%s%s", i ? " " : "", buf);
		}
		return;
	}
	case T_LOG_LEVEL: fputs(cm_log_level_name(c->log_level), out); return;
	case T_LOG_FORMAT: fputs(c->log_format == CM_LOG_JSON ? "json" : "logfmt", out); return;
	case T_POL_LIST: {
		const char(*names)[POL_NAME_MAX] = cfield(c, k->off);
		size_t n = *(const size_t *)cfield(c, k->aux);
		for (size_t i = 0; i < n && i < POL_MAX_LIST; i++) fprintf(out, "%s%s", i ? " " : "", names[i]);
		return;
	}
	case T_POL_NAME: fputs((const char *)cfield(c, k->off), out); return;
	case T_POL_OUTCOMES: {
		const pol_outcome_map *m = cfield(c, k->off);
		size_t n = *(const size_t *)cfield(c, k->aux);
		for (size_t i = 0; i < n && i < POL_MAX_LIST; i++)
			fprintf(out, "%s%s=%s", i ? " " : "", m[i].outcome, m[i].state);
		return;
	}
	case T_POL_SCHEDULE: {
		const pol_step *st = cfield(c, k->off);
		size_t n = *(const size_t *)cfield(c, k->aux);
		for (size_t i = 0; i < n && i < POL_MAX_STEPS; i++) {
			char iv[32];
			if (st[i].below_age_ms < 0)
				snprintf(buf, sizeof buf, "*");
			else
				fmt_duration(st[i].below_age_ms, buf, sizeof buf);
			fmt_duration(st[i].interval_ms, iv, sizeof iv);
			fprintf(out, "%s%s:%s", i ? " " : "", buf, iv);
		}
		return;
	}
	}
	fputs(buf, out);
}

void conf_dump(const conf *c, FILE *out)
{
	if (c == NULL || out == NULL) return;
	for (size_t i = 0; i < NKEYS; i++) {
		fprintf(out, "%s = ", keys[i].name);
		dump_value(&keys[i], c, out);
		fputc('\n', out);
	}
}

/* ---- the reference (man/pollgate.conf.5 is built from it) ---- */

static const char *type_name(enum ktype t)
{
	switch (t) {
	case T_LISTEN: return "address:port";
	case T_STRING: return "string";
	case T_INT: return "integer";
	case T_DURATION:
	case T_SECONDS: return "duration";
	case T_SIZE: return "size";
	case T_CIDRS: return "CIDR list";
	case T_LOG_LEVEL: return "level";
	case T_LOG_FORMAT: return "format";
	case T_POL_LIST: return "name list";
	case T_POL_NAME: return "name";
	case T_POL_OUTCOMES: return "outcome=state list";
	case T_POL_SCHEDULE: return "age:interval list";
	}
	return "?";
}

static void fmt_bound(const struct key_def *k, int64_t v, char *buf, size_t len)
{
	switch (k->type) {
	case T_INT: snprintf(buf, len, "%lld", (long long)v); break;
	case T_DURATION:
	case T_SECONDS: fmt_duration(v, buf, len); break;
	case T_SIZE: fmt_size(v, buf, len); break;
	default: buf[0] = '\0'; break;
	}
}

int conf_reference(FILE *out)
{
	int rc = 0;
	char lo[32], hi[32];

	for (size_t i = 0; i < NKEYS; i++) {
		const struct key_def *k = &keys[i];
		fmt_bound(k, k->min, lo, sizeof lo);
		fmt_bound(k, k->max, hi, sizeof hi);
		if (k->why == NULL || k->why[0] == '\0') rc = -1;
		fprintf(out, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k->name,
		        (k->flags & K_AUTO) ? "auto or integer" : type_name(k->type), k->def ? k->def : "", lo, hi,
		        (k->flags & K_RELOAD) ? "reload" : "restart", k->why ? k->why : "");
	}
	return rc;
}
