/*
 * gateway/config.c — the keys of the configuration file: what each one is, its checks, and the API the
 * rest of the gateway loads and reloads its settings through.
 *
 * This file owns one declarative table, `keys[]`: for each key its name, value type (a conf_type of
 * gateway/conf-types.c), where it lands in struct conf, its default as text, its bounds, whether SIGHUP may
 * change it, and a one-line reason (the man page's text: conf_reference). Beside it: the validators of
 * single string values (cookie name, CORS origins), the checks that involve two keys (`crosses[]`, run
 * after the last line and reported on the line of the later-set key), and the JWT key, loaded once the
 * file is read. Everything generic — the line syntax, error collection, defaults, dump, free, reload's
 * keep-static — is the engine's (gateway/conf-engine.c) walking this table. No file-scope mutable state.
 */
#include "gateway/config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gateway/conf-engine.h"
#include "gateway/conf-policy.h"
#include "gateway/conf-types.h"

/* The table's shorthand: units, flags and types. */
#define MS(x) ((int64_t)(x))
#define SEC(x) CONF_SEC(x)
#define MIN(x) CONF_MIN(x)
#define HOUR(x) CONF_HOUR(x)
#define KIB(x) CONF_KIB(x)
#define MIB(x) CONF_MIB(x)

/* The validators' shorthand for the engine's text helpers. */
#define SHOW_BUF CONF_SHOW_BUF
#define show(s, buf) conf_show(s, buf)
#define show_n(s, n, buf, len) conf_show_n(s, n, buf, len)
#define fmt_duration(ms, buf, len) conf_fmt_duration(ms, buf, len)

#define K_RELOAD CONF_K_RELOAD
#define K_EMPTY_OK CONF_K_EMPTY_OK

#define T_LISTEN (&conf_t_listen)
#define T_STRING (&conf_t_string)
#define T_CONNINFO (&conf_t_conninfo)
#define T_INT (&conf_t_int)
#define T_INT_AUTO (&conf_t_int_auto)
#define T_DURATION (&conf_t_duration)
#define T_SECONDS (&conf_t_seconds)
#define T_SIZE (&conf_t_size)
#define T_CIDRS (&conf_t_cidrs)
#define T_LOG_LEVEL (&conf_t_log_level)
#define T_LOG_FORMAT (&conf_t_log_format)
#define T_POL_LIST (&conf_t_pol_list)
#define T_POL_NAME (&conf_t_pol_name)
#define T_POL_OUTCOMES (&conf_t_pol_outcomes)
#define T_POL_SCHEDULE (&conf_t_pol_schedule)

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

static const conf_key keys[] = {
	{.name = "listen", .type = T_LISTEN, .off = OFF(listen), .aux = OFF(listen_host), .aux2 = OFF(listen_port),
	 .def = "127.0.0.1:8080",
	 .why = "where HTTP is served; loopback by default because a proxy is meant to sit in front"},
	KEY("database", T_CONNINFO, database, 0, "", 0, 0, K_EMPTY_OK, NULL,
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
	KEY("workers", T_INT_AUTO, workers, FSIZE(workers), "auto", 1, 256, 0, NULL,
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

static int cross_waits(const void *obj, char *err, size_t errlen);
static int cross_reconnect(const void *obj, char *err, size_t errlen);
static int cross_proxy(const void *obj, char *err, size_t errlen);
static int cross_pack_lists(const void *obj, char *err, size_t errlen);
static int cross_completed(const void *obj, char *err, size_t errlen);
static void fit_default_wait(void *obj);

/* Checks that involve two keys (see conf_cross: reported on the later-set key's line). */
static const conf_cross crosses[] = {
	{"default_wait", "max_wait", cross_waits, fit_default_wait},
	{"db_reconnect_min", "db_reconnect_max", cross_reconnect, NULL},
	{"max_wait", "proxy_timeout", cross_proxy, NULL},
	{"pack_active_statuses", "pack_terminal_statuses", cross_pack_lists, NULL},
	{"run_active_statuses", "run_completed_status", cross_completed, NULL},
};

#define NCROSSES (sizeof crosses / sizeof crosses[0])

/* ---- validators of single values ---- */

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

/* ---- checks that involve two keys ---- */

/* Lowering only the cap takes the unset default with it: an operator who writes max_wait = 20s means
 * every hold, the default one included, ends by 20 s. */
static void fit_default_wait(void *obj)
{
	conf *c = obj;
	if (c->default_wait_ms > c->max_wait_ms) c->default_wait_ms = c->max_wait_ms;
}

static int cross_waits(const void *obj, char *err, size_t errlen)
{
	const conf *c = obj;
	char a[32], b[32];

	if (c->default_wait_ms <= c->max_wait_ms) return 0;
	fmt_duration(c->default_wait_ms, a, sizeof a);
	fmt_duration(c->max_wait_ms, b, sizeof b);
	snprintf(err, errlen, "default_wait (%s) must not be longer than max_wait (%s)", a, b);
	return -1;
}

/* A proxy that times out a held request first answers the browser 504 and the wake is lost: max_wait
 * must end the hold, with time to spare for the answer to cross the proxy. */
#define PROXY_MARGIN_MS CONF_SEC(5)
static int cross_proxy(const void *obj, char *err, size_t errlen)
{
	const conf *c = obj;
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

static int cross_reconnect(const void *obj, char *err, size_t errlen)
{
	const conf *c = obj;
	char a[32], b[32];

	if (c->db_reconnect_min_ms <= c->db_reconnect_max_ms) return 0;
	fmt_duration(c->db_reconnect_min_ms, a, sizeof a);
	fmt_duration(c->db_reconnect_max_ms, b, sizeof b);
	snprintf(err, errlen, "db_reconnect_min (%s) must not be longer than db_reconnect_max (%s)", a, b);
	return -1;
}

static int cross_pack_lists(const void *obj, char *err, size_t errlen)
{
	const conf *c = obj;
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

static int cross_completed(const void *obj, char *err, size_t errlen)
{
	const conf *c = obj;
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

/* ---- after the last line ---- */

/* The JWT key is read once the whole file is parsed (so a reload re-reads it), and its errors are
 * reported on the line of jwt_key_file. */
static void load_jwt_key(conf_parser *p, conf *c)
{
	char err[CONF_ERR_LEN / 2], sb[SHOW_BUF];
	int la, li;

	if (conf_parser_bad(p, "jwt_key_file")) return;
	if (c->jwt_key_file[0] == '\0') {
		la = conf_parser_line(p, "jwt_audience");
		li = conf_parser_line(p, "jwt_issuer");
		if (c->jwt_audience[0] != '\0' || c->jwt_issuer[0] != '\0')
			conf_report(p, la > li ? la : li,
			            "jwt_audience and jwt_issuer need jwt_key_file (no JWT is verified without a key)");
		return;
	}
	c->jwt_key = auth_jwt_key_load(c->jwt_key_file, err, sizeof err);
	if (c->jwt_key == NULL) {
		/* A plain path is echoed whole (an operator needs all of it); anything odd escaped and cut. */
		bool plain = strlen(c->jwt_key_file) <= 200;
		for (const char *q = c->jwt_key_file; plain && *q; q++) plain = *q >= 0x20 && *q < 0x7f && *q != '\\';
		conf_report(p, conf_parser_line(p, "jwt_key_file"), "jwt_key_file '%s' %s",
		            plain ? c->jwt_key_file : show(c->jwt_key_file, sb), err);
	}
}

/* ---- public API ---- */

conf *conf_new_defaults(void)
{
	conf *c = calloc(1, sizeof *c);

	if (c == NULL) return NULL;
	if (conf_keys_set_defaults(keys, NKEYS, c) != 0) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static conf *load_buffer(const char *name, const char *buf, size_t len, FILE *errs, int *nerrors)
{
	conf_parser p;
	conf *c = NULL;

	memset(&p, 0, sizeof p);
	p.name = name ? name : "<string>";
	p.errs = errs;
	c = conf_new_defaults();
	if (c == NULL) {
		conf_report(&p, 0, "out of memory");
		goto out;
	}
	if (name) {
		c->path = strdup(name);
		if (c->path == NULL) {
			conf_report(&p, 0, "out of memory");
			goto out;
		}
	}
	if (conf_parser_init(&p, keys, NKEYS, c, name ? name : "<string>", errs) != 0) {
		conf_report(&p, 0, "out of memory");
		goto out;
	}
	conf_parse_buffer(&p, buf, len, crosses, NCROSSES);
	load_jwt_key(&p, c);
out:
	if (p.nerrors > 0) {
		conf_free(c);
		c = NULL;
	}
	if (nerrors) *nerrors = p.nerrors;
	conf_parser_fini(&p);
	return c;
}

conf *conf_load_string(const char *name, const char *text, FILE *errs, int *nerrors)
{
	if (text == NULL) text = "";
	return load_buffer(name, text, strlen(text), errs, nerrors);
}

conf *conf_load(const char *path, FILE *errs, int *nerrors)
{
	char *buf = NULL;
	size_t len = 0;
	conf *c;

	if (nerrors) *nerrors = 1;
	if (path == NULL) path = "(null)";
	if (conf_read_file(path, errs, &buf, &len) != 0) return NULL;
	c = load_buffer(path, buf, len, errs, nerrors);
	free(buf);
	return c;
}

void conf_free(conf *c)
{
	if (c == NULL) return;
	conf_keys_free(keys, NKEYS, c);
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

void conf_keep_static(conf *fresh, const conf *old, void (*report_fn)(const char *key, void *arg), void *arg)
{
	if (fresh == NULL || old == NULL) return;
	conf_keys_keep_static(keys, NKEYS, fresh, old, report_fn, arg);
}

void conf_dump(const conf *c, FILE *out)
{
	if (c == NULL || out == NULL) return;
	conf_keys_dump(keys, NKEYS, c, out);
}

int conf_reference(FILE *out)
{
	return conf_keys_reference(keys, NKEYS, out);
}
