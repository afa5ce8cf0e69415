/*
 * common/log.c — see log.h. Formats into a stack buffer and writes the whole line with one write(2),
 * so lines from a drain or a crash never interleave mid-line.
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

int cm_log_current_level = CM_LOG_INFO;
static cm_log_format log_fmt = CM_LOG_LOGFMT;
static int log_fd = STDERR_FILENO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

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

/* Append `s` to buf as a JSON string body (no quotes), escaping what JSON requires. */
static size_t json_escape(char *buf, size_t cap, size_t len, const char *s)
{
	for (; *s && len + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	return len;
}

void cm_log_vwrite(int level, const char *rid, const char *fmt, va_list ap)
{
	char msg[2048];
	char line[4096];
	struct timeval tv;
	struct tm tm;
	char ts[40];
	int n;
	size_t len;

	vsnprintf(msg, sizeof msg, fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = (int)strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(ts + n, sizeof ts - (size_t)n, ".%03dZ", (int)(tv.tv_usec / 1000));

	if (log_fmt == CM_LOG_JSON) {
		len = (size_t)snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",", ts, cm_log_level_name(level));
		if (rid) len += (size_t)snprintf(line + len, sizeof line - len, "\"rid\":\"%s\",", rid);
		len += (size_t)snprintf(line + len, sizeof line - len, "\"msg\":\"");
		len = json_escape(line, sizeof line, len, msg);
		if (len + 3 > sizeof line) len = sizeof line - 3;
		line[len++] = '"';
		line[len++] = '}';
	} else {
		len = (size_t)snprintf(line, sizeof line, "ts=%s level=%s ", ts, cm_log_level_name(level));
		if (rid) len += (size_t)snprintf(line + len, sizeof line - len, "rid=%s ", rid);
		/* The message is "text key=value ...": the leading free text is quoted as msg=. */
		const char *split = NULL;
		for (const char *p = msg; (p = strchr(p, ' ')) != NULL; p++) {
			const char *eq = strchr(p + 1, '=');
			const char *sp = strchr(p + 1, ' ');
			if (eq && (!sp || eq < sp)) {
				split = p;
				break;
			}
		}
		size_t textlen = split ? (size_t)(split - msg) : strlen(msg);
		len += (size_t)snprintf(line + len, sizeof line - len, "msg=\"");
		for (size_t i = 0; i < textlen && len + 8 < sizeof line; i++) {
			char c = msg[i];
			if (c == '"' || c == '\\') line[len++] = '\\';
			line[len++] = (c == '\n') ? ' ' : c;
		}
		line[len++] = '"';
		if (split) len += (size_t)snprintf(line + len, sizeof line - len, "%s", split);
		if (len >= sizeof line - 1) len = sizeof line - 2;
	}
	line[len++] = '\n';
	ssize_t w = write(log_fd, line, len);
	(void)w;
}

void cm_log_write(int level, const char *rid, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cm_log_vwrite(level, rid, fmt, ap);
	va_end(ap);
}

static void libevent_log(int severity, const char *msg)
{
	int level = CM_LOG_DEBUG;
	if (severity == EVENT_LOG_ERR) level = CM_LOG_ERROR;
	else if (severity == EVENT_LOG_WARN) level = CM_LOG_WARN;
	else if (severity == EVENT_LOG_MSG) level = CM_LOG_INFO;
	if (CM_LOG_ENABLED(level)) cm_log_write(level, NULL, "libevent component=libevent detail=\"%s\"", msg);
}

void cm_log_hook_libevent(void)
{
	event_set_log_callback(libevent_log);
}
