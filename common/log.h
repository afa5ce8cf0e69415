/*
 * common/log.h — the process logger, shared by every room.
 *
 * One line per event, in logfmt (`ts=... level=info msg="..." key=value`) or JSON (every field its own
 * member, built with jansson), to stderr or a file; optionally an access log, one line per answered
 * request, to the same destination or a file of its own.
 *
 * Call sites stay printf-like: the message is free text followed by ` key=value` fields. A value that
 * comes from outside (a client, the database, a file) is always passed through CM_Q(), which writes it as
 * one double-quoted, escaped token: no space, quote, CR, LF or ESC of the value can end it or forge another
 * field. The writer then parses the fields back and emits them canonically — as logfmt (a value quoted
 * when it needs it, control bytes as \uXXXX) or as JSON members (a bare value that reads as a JSON
 * number becomes a number, everything else a string).
 *
 * Levels map to syslog priorities: error = 3 (LOG_ERR), warn = 4 (LOG_WARNING), info = 6 (LOG_INFO),
 * debug = 7 (LOG_DEBUG); JSON lines carry the number as "priority".
 *
 * The level is checked before anything is formatted: a disabled debug line costs one comparison.
 * Secrets never reach this module: callers log token hash prefixes, never tokens, cookies or passwords.
 * State is process-wide on purpose: a worker process has exactly one log destination.
 */
#ifndef POLLGATE_COMMON_LOG_H
#define POLLGATE_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { CM_LOG_ERROR = 0, CM_LOG_WARN = 1, CM_LOG_INFO = 2, CM_LOG_DEBUG = 3 } cm_log_level;
typedef enum { CM_LOG_LOGFMT = 0, CM_LOG_JSON = 1 } cm_log_format;

extern int cm_log_current_level;

/* Parse "error|warn|info|debug"; returns the level or -1. */
int cm_log_level_parse(const char *s);
const char *cm_log_level_name(int level);
/* The syslog priority of a level (3, 4, 6, 7). */
int cm_log_level_priority(int level);

/* Set level and format. */
void cm_log_configure(int level, cm_log_format fmt);

/* Open (or reopen, for SIGHUP) the destination: NULL or "" means stderr. Returns 0, or -1 with the
 * previous destination kept. */
int cm_log_open(const char *path) __attribute__((warn_unused_result));
void cm_log_close(void);

/* The access log: NULL, "" or "off" = none; "on" = lines go to the main log; anything else is a path,
 * opened (or reopened, for SIGHUP) for appending. Returns 0, or -1 with the previous setting kept. */
int cm_log_access_open(const char *setting) __attribute__((warn_unused_result));
/* Is an access log configured? Callers check before building a line. */
int cm_log_access_enabled(void);
/* Write one access line (level info, whatever log_level says): `rid` as for cm_log_write, `fmt` builds the
 * message "access key=value ...", written in the configured format. */
void cm_log_access(const char *rid, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A field every line of this process carries from now on, e.g. "worker=2" (NULL or "" = none). */
void cm_log_set_process(const char *field);

/* Write one line. `rid` is a request id or NULL; `fmt` builds the message "text key=value ...". */
void cm_log_write(int level, const char *rid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cm_log_vwrite(int level, const char *rid, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

/* Write `s` (NULL = "") into buf as one double-quoted logfmt value: `"`, `\` escaped with a backslash,
 * LF/CR/TAB as \n \r \t, other control bytes and DEL as \u00XX, bytes that are not UTF-8 as \ufffd (so
 * the quoted form is also a valid JSON string). A value too long for buf is cut and ends in `...`.
 * Returns buf (always quoted and NUL-terminated; cap must be at least 8). */
char *cm_log_quote(char *buf, size_t cap, const char *s);
#define CM_LOG_QMAX 512
/* A quoted value for one log call: the buffer lives until the end of the enclosing statement's block. */
#define CM_Q(s) cm_log_quote((char[CM_LOG_QMAX]){0}, CM_LOG_QMAX, (s))

/* Split a formatted message into text and fields and call `field` for each (key, value, quoted). The
 * text is everything before the first ` key=` (key = [A-Za-z_][A-Za-z0-9_.-]*). Quoted values are
 * unescaped. Returns the number of fields. Exposed for the unit tests. */
typedef void (*cm_log_field_fn)(void *arg, const char *key, const char *val, size_t vlen, int quoted);
int cm_log_parse(const char *msg, size_t *textlen, cm_log_field_fn field, void *arg);

/* Route libevent's internal messages through this logger. */
void cm_log_hook_libevent(void);

#define CM_LOG_ENABLED(lvl) ((lvl) <= cm_log_current_level)
#define LOG_AT(lvl, rid, ...)                                                                                \
	do {                                                                                                     \
		if (CM_LOG_ENABLED(lvl)) cm_log_write((lvl), (rid), __VA_ARGS__);                                    \
	} while (0)
#define log_error(...) LOG_AT(CM_LOG_ERROR, NULL, __VA_ARGS__)
#define log_warn(...) LOG_AT(CM_LOG_WARN, NULL, __VA_ARGS__)
#define log_info(...) LOG_AT(CM_LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) LOG_AT(CM_LOG_DEBUG, NULL, __VA_ARGS__)
/* Per-request variants: the request id goes on the line as rid=... */
#define rlog_warn(rid, ...) LOG_AT(CM_LOG_WARN, (rid), __VA_ARGS__)
#define rlog_info(rid, ...) LOG_AT(CM_LOG_INFO, (rid), __VA_ARGS__)
#define rlog_debug(rid, ...) LOG_AT(CM_LOG_DEBUG, (rid), __VA_ARGS__)

#endif
