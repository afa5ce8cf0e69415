/*
 * gateway/config.h — the configuration file: `key = value` lines, `#` comments, durations with units.
 *
 * The keys are one declarative table in config.c (name, type, target, default, bounds, reloadable, a
 * one-line reason), walked by the config engine (conf-engine.h) through the value types of conf-types.h
 * and conf-policy.h. conf_load() parses a whole file into a new struct conf or reports every error it
 * found as `FILE:LINE: message`; nothing is applied from a file with an error. Reload (SIGHUP) parses a
 * new conf and the caller swaps it in only on success, keeping non-reloadable keys from the old one.
 */
#ifndef POLLGATE_GATEWAY_CONFIG_H
#define POLLGATE_GATEWAY_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "auth/jwt.h"
#include "gateway/cidr.h"
#include "gateway/conf-redact.h" /* conf_redact_conninfo, part of this API */
#include "policy/policy.h"


typedef struct conf {
	char *path; /* owned; NULL for built-in defaults */

	/* listen = ADDRESS:PORT ("127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080") */
	char *listen;      /* owned: the text as written */
	char *listen_host; /* owned: the address part, brackets removed */
	int listen_port;

	char *database; /* owned; "" means libpq defaults / PG* environment */
	int db_pool_size;
	int64_t db_connect_timeout_ms;
	int64_t db_query_timeout_ms;
	int64_t db_reconnect_min_ms;
	int64_t db_reconnect_max_ms;
	int64_t db_heartbeat_ms;
	char *hint_source; /* owned: "notify" or "logical" (checked) */
	int64_t reread_batch_max;

	int64_t default_wait_ms;
	int64_t max_wait_ms;
	int64_t proxy_timeout_ms; /* 0 = no proxy timeout to check max_wait against */
	int64_t header_timeout_ms;
	int64_t max_header_size; /* bytes */
	int64_t drain_timeout_ms;
	int64_t retry_after_s; /* Retry-After on 503/429 */

	char *auth_cookie; /* owned */
	int64_t auth_cache_ttl_ms;
	char *jwt_key_file;   /* owned; "" = JWT credentials are opaque table tokens */
	char *jwt_audience;   /* owned; "" = a JWT must carry no aud */
	char *jwt_issuer;     /* owned; "" = iss not checked */
	int64_t jwt_leeway_s; /* clock skew allowed on exp and nbf */
	auth_jwt_key *jwt_key; /* owned; loaded from jwt_key_file when the file is parsed, NULL when unset */
	int64_t terminal_linger_ms;

	char *cors_origins; /* owned; space-separated exact origins, "" = CORS off */
	int64_t cors_max_age_ms;

	gw_cidr_list metrics_allow;
	gw_cidr_list trusted_proxies;

	int workers; /* processes; 0 = auto (one per online core): read it through conf_workers() */

	int64_t max_waiters;
	int64_t max_waiters_per_principal;
	int64_t max_waiters_per_client;
	int64_t client_ipv6_prefix; /* bits of an IPv6 client address that name one client for the cap */

	int log_level;  /* cm_log_level */
	int log_format; /* cm_log_format */
	char *log_file; /* owned; "" = stderr */
	char *access_log; /* owned; "off", "on" (into the main log) or a file path */

	pol_config policy;
} conf;

/* A conf with every default. NULL on allocation failure. */
conf *conf_new_defaults(void) __attribute__((warn_unused_result));

/* Parse `path`. On success returns a new conf (caller owns) and *nerrors = 0. On any error returns
 * NULL, writes every error as "PATH:LINE: message\n" to `errs` (may be NULL) and sets *nerrors. */
conf *conf_load(const char *path, FILE *errs, int *nerrors) __attribute__((warn_unused_result));

/* Same as conf_load, but from a string (for tests); `name` stands in for the path in messages. */
conf *conf_load_string(const char *name, const char *text, FILE *errs, int *nerrors)
	__attribute__((warn_unused_result));

void conf_free(conf *c); /* conf_free(NULL) is a no-op */

/* The number of worker processes: `workers`, or for auto the online cores (sysconf), within 1..256. */
int conf_workers(const conf *c);

/* For reload: copies every non-reloadable key's value from `old` into `fresh`, calling `report` once for
 * each such key whose value differs (so the caller can log "KEY changed; restart to apply"). */
void conf_keep_static(conf *fresh, const conf *old, void (*report)(const char *key, void *arg), void *arg);

/* Write every key with its current value as "key = value" lines (for --print-config and tests); the
 * database password is redacted. */
void conf_dump(const conf *c, FILE *out);

/* The key table as a reference, one key a line, tab-separated: name, type, default, minimum, maximum
 * (empty when unbounded), "reload" or "restart", description. The source of pollgate.conf(5) (man/).
 * Returns -1 (after writing every line) when a key has no description, so a key added without one fails
 * the man page build and its test. */
int conf_reference(FILE *out);

#endif
