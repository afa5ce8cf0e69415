/*
 * common/log.h — the process logger, shared by every room.
 *
 * One line per event, in logfmt (`ts=... level=info msg="..." key=value`) or JSON, to stderr or a file.
 * The level is checked before anything is formatted: a disabled debug line costs one comparison.
 * Callers add context as pre-formatted `key=value` pairs in the message tail; cm_log_kv() quotes values.
 * Secrets never reach this module: callers log token hash prefixes, never tokens or cookies.
 *
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

/* Set level and format. */
void cm_log_configure(int level, cm_log_format fmt);

/* Open (or reopen, for SIGHUP) the destination: NULL or "" means stderr. Returns 0, or -1 with the
 * previous destination kept. */
int cm_log_open(const char *path) __attribute__((warn_unused_result));
void cm_log_close(void);

/* Write one line. `rid` is a request id or NULL; `fmt` builds the message; the message may end in
 * extra ` key=value` fields (logfmt) which JSON output keeps inside "msg". */
void cm_log_write(int level, const char *rid, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void cm_log_vwrite(int level, const char *rid, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

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
