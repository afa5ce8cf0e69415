/*
 * tests/fuzz/fuzz_log.c — libFuzzer target: the logger's quoting and field parser (common/log.c), the
 * defence against log injection.
 *
 * Input: one selector byte (bit 0: logfmt or JSON), then a value as a client could send it (any bytes; an
 * embedded NUL ends it, as it would end a C string from evhttp). The target checks:
 *   - a value quoted with cm_log_quote() parses back with cm_log_parse() as exactly one field, with the
 *     same bytes when the value is UTF-8 and was not cut (invalid bytes come back as U+FFFD);
 *   - a whole line written in either format, with that value, holds no control byte but its final
 *     newline, and a JSON line is one JSON object whose "v" member is the value.
 * A violation abort()s, which libFuzzer reports as a crash.
 */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int readfd = -1;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char path[64];
	(void)argc;
	(void)argv;
	snprintf(path, sizeof path, "/tmp/pollgate-fuzz-log-%d", (int)getpid());
	readfd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (readfd < 0 || cm_log_open(path) != 0) abort();
	unlink(path);
	return 0;
}

typedef struct seen {
	int n;
	char key[16];
	char val[4096];
	size_t vlen;
} seen;

static void on_field(void *arg, const char *key, const char *val, size_t vlen, int quoted)
{
	seen *s = arg;
	(void)quoted;
	s->n++;
	snprintf(s->key, sizeof s->key, "%s", key);
	if (vlen < sizeof s->val) {
		memcpy(s->val, val, vlen);
		s->vlen = vlen;
	}
}

static bool utf8_valid(const char *s)
{
	json_t *j = json_string(s);
	bool ok = j != NULL;
	json_decref(j);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1) return 0;
	bool json = data[0] & 1;
	char *v = calloc(1, size);
	if (v == NULL) return 0;
	memcpy(v, data + 1, size - 1);
	size_t vlen = strlen(v);

	/* quote, parse back */
	char q[CM_LOG_QMAX], msg[CM_LOG_QMAX + 16];
	cm_log_quote(q, sizeof q, v);
	snprintf(msg, sizeof msg, "event v=%s", q);
	seen s = {0};
	size_t textlen = 0;
	if (cm_log_parse(msg, &textlen, on_field, &s) != 1 || s.n != 1 || strcmp(s.key, "v") != 0 || textlen != 5) abort();
	bool cut = strlen(q) >= 5 && memcmp(q + strlen(q) - 4, "...\"", 4) == 0 && vlen * 6 + 3 > sizeof q;
	if (!cut && utf8_valid(v) && (s.vlen != vlen || memcmp(s.val, v, vlen) != 0)) abort();

	/* a whole line, read back from the file */
	off_t at = lseek(readfd, 0, SEEK_END);
	cm_log_configure(CM_LOG_DEBUG, json ? CM_LOG_JSON : CM_LOG_LOGFMT);
	cm_log_write(CM_LOG_INFO, "rid-1", "event v=%s n=%zu", CM_Q(v), vlen);
	off_t end = lseek(readfd, 0, SEEK_END);
	size_t n = (size_t)(end - at);
	char *line = malloc(n + 1);
	if (line == NULL || pread(readfd, line, n, at) != (ssize_t)n || n == 0 || line[n - 1] != '\n') abort();
	line[n] = '\0';
	for (size_t i = 0; i + 1 < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f) abort();
	if (json) {
		json_error_t e;
		json_t *j = json_loads(line, 0, &e);
		if (!json_is_object(j) || !json_is_string(json_object_get(j, "v"))) abort();
		if (!cut && utf8_valid(v) && strcmp(json_string_value(json_object_get(j, "v")), v) != 0) abort();
		if (json_integer_value(json_object_get(j, "n")) != (json_int_t)vlen) abort();
		json_decref(j);
	}
	free(line);
	if (end > (1 << 20) && ftruncate(readfd, 0) != 0) abort();
	free(v);
	return 0;
}
