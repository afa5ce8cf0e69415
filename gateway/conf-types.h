/*
 * gateway/conf-types.h — the value types of the config file, one conf_type (parse, free, equal, copy,
 * dump, bound) each, for the key table in gateway/config.c. The policy room's types are conf-policy.h.
 *
 * Each row of a key table names its type and the field(s) it fills; what `aux` and `aux2` mean is said
 * here per type. Every parse refuses a bad value with the whole message ("invalid duration 'x' for
 * max_wait: ...", "KEY must be between LO and HI (got V)") and leaves the field as it was.
 */
#ifndef POLLGATE_GATEWAY_CONF_TYPES_H
#define POLLGATE_GATEWAY_CONF_TYPES_H

#include "gateway/conf-engine.h"

/* ADDRESS:PORT ("127.0.0.1:8080", "[::1]:8080", "localhost:80"): off = char * text as written (owned),
 * aux = char * address without brackets (owned), aux2 = int port. Equal compares address and port. */
extern const conf_type conf_t_listen;
/* char * (owned); key.check, when set, vets the value first. */
extern const conf_type conf_t_string;
/* A libpq connection string: a string whose dump redacts the password (conf_redact_conninfo). */
extern const conf_type conf_t_conninfo;
/* A whole number within [min, max]: aux = sizeof the field (int or int64_t). */
extern const conf_type conf_t_int;
/* The same, or "auto" (stored as 0, written back as auto). */
extern const conf_type conf_t_int_auto;
/* int64_t milliseconds ("250ms", "25s", "5m", "1h"); bounds in ms. */
extern const conf_type conf_t_duration;
/* A duration stored as int64_t whole seconds, rounded up; bounds in ms. */
extern const conf_type conf_t_seconds;
/* int64_t bytes ("8KiB", "1MiB", "512", "4k"); bounds in bytes. */
extern const conf_type conf_t_size;
/* gw_cidr_list (items owned): space- or comma-separated CIDRs. */
extern const conf_type conf_t_cidrs;
/* int cm_log_level: error, warn, info, debug. */
extern const conf_type conf_t_log_level;
/* int cm_log_format: logfmt or json. */
extern const conf_type conf_t_log_format;

#endif
