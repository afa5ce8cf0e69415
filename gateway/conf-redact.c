/*
 * gateway/conf-redact.c — a libpq connection string with its password masked, for --print-config (the
 * database key's dump) and anything else that shows a conninfo to a person. Pure text work: no parsing of
 * libpq's full grammar, just the two places a password sits (the URI's user:password@ and ?password=, and
 * the key=value form's password, bare or single-quoted).
 */
#include "gateway/conf-redact.h"

#include <stdbool.h>
#include <string.h>

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
