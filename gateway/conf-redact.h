/*
 * gateway/conf-redact.h — masking the password in a libpq connection string (gateway/conf-redact.c).
 */
#ifndef POLLGATE_GATEWAY_CONF_REDACT_H
#define POLLGATE_GATEWAY_CONF_REDACT_H

#include <stddef.h>

/* A libpq connection string with its password replaced by REDACTED, in both forms: the URI
 * (postgresql://user:secret@host/db, and ?password=secret) and key=value (password=secret, or
 * password = 'it\'s quoted'). Writes at most cap bytes, NUL-terminated (twice the input's length + 16
 * suffices). */
void conf_redact_conninfo(const char *in, char *out, size_t cap);

#endif
