/*
 * gateway/conf-engine.h — the config engine: the syntax of a config file and the machinery that walks a
 * key table, knowing nothing of which keys exist.
 *
 * A caller describes its settings as a table of conf_key rows (name, value type, offset of the field in
 * the caller's struct, default as text, bounds, flags, a one-line reason). Each value type is one
 * conf_type: a table of operations (parse, free, equal, copy, dump, bound) so that every generic job
 * below — defaults, freeing, reload's keep-static, --print-config, the man page reference — is one loop
 * over the keys calling the key's type, and a new type is one conf_type value (gateway/conf-types.c).
 * The parser reads `key = value` lines (`#` comments, "quoted" values with \" and \\), collects every
 * error as "NAME:LINE: message", then runs the table's cross checks. Value echoes in messages go through
 * conf_show(), escaped and cut short, so junk input yields readable, bounded messages. No mutable
 * file-scope state.
 */
#ifndef POLLGATE_GATEWAY_CONF_ENGINE_H
#define POLLGATE_GATEWAY_CONF_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_LINE_MAX 4096                /* bytes of one line, CR/LF not counted */
#define CONF_FILE_MAX (16L * 1024 * 1024) /* a config file larger than this is not a config file */
#define CONF_ERR_LEN 512                  /* one message, before the "NAME:LINE: " prefix */
#define CONF_SHOW_MAX 64                  /* bytes of a value echoed in a message */
#define CONF_SHOW_BUF (CONF_SHOW_MAX * 4 + 8)

/* Units of durations (milliseconds) and sizes (bytes), for tables and formatting. */
#define CONF_SEC(x) ((int64_t)(x) * 1000)
#define CONF_MIN(x) ((int64_t)(x) * 60000)
#define CONF_HOUR(x) ((int64_t)(x) * 3600000)
#define CONF_KIB(x) ((int64_t)(x) * 1024)
#define CONF_MIB(x) ((int64_t)(x) * 1024 * 1024)

#define CONF_K_RELOAD 1u   /* SIGHUP may change it */
#define CONF_K_EMPTY_OK 2u /* an empty value is meaningful (else "KEY needs a value") */

typedef struct conf_type conf_type;

/* One row of a key table. `obj` below is the caller's settings struct; fields are reached by offset. */
typedef struct conf_key {
	const char *name;
	const conf_type *type;
	size_t off;  /* the field in obj */
	size_t aux;  /* meaning set by the type (a field size, the offset of a count or of a second field) */
	size_t aux2; /* a third field, for types that fill three (listen: the port) */
	const char *def; /* the default, as a file would write it */
	int64_t min, max; /* for bounded types, in the type's unit (durations in ms) */
	unsigned flags;   /* CONF_K_* */
	int (*check)(const char *value, char *err, size_t errlen); /* extra check before a string is stored */
	const char *why; /* one line for the reference (and conf/pollgate.conf) */
} conf_key;

/* The operations of one value type. parse, equal, copy and dump are required; free and bound may be NULL
 * (nothing owned; an unbounded type). */
struct conf_type {
	const char *name; /* as the reference shows it: "duration", "CIDR list" */
	/* Parse the unquoted value v into k's field(s) of obj, replacing (and freeing) what was there. On a bad
	 * value fills err with the whole message and returns -1, leaving obj unchanged. */
	int (*parse)(void *obj, const conf_key *k, const char *v, char *err, size_t errlen);
	void (*free)(void *obj, const conf_key *k);
	bool (*equal)(const void *a, const void *b, const conf_key *k);
	/* dst takes a copy of src's value. 0, or -1 when out of memory (dst keeps its own value). */
	int (*copy)(void *dst, const void *src, const conf_key *k);
	/* The value as the parser reads it back. */
	void (*dump)(const void *obj, const conf_key *k, FILE *out);
	/* A bound (min or max) in the type's unit, written as a file would write it. */
	void (*bound)(int64_t v, char *buf, size_t len);
	/* true when equal values may still differ in how they are written (listen keeps the text as given),
	 * so keep-static copies them anyway */
	bool copy_when_equal;
};

/* Checks that involve two keys, run after the whole file when both were read without error. A failing
 * check is reported on the line of whichever of a and b the file set later; when the file set neither,
 * the defaults are consistent by construction and nothing runs. */
typedef struct conf_cross {
	const char *a, *b;
	/* Fills err and returns -1 on conflict. */
	int (*check)(const void *obj, char *err, size_t errlen);
	/* When not NULL and the file did not set a: called instead of check, to bring a's default in line
	 * with the b the file chose (b's value wins over a default). */
	void (*fit_default_a)(void *obj);
} conf_cross;

/* One parse: the key table, where errors go, and which keys the file set on which line. */
typedef struct conf_parser {
	const char *name; /* borrowed: the file name in messages */
	FILE *errs;       /* borrowed; NULL = count only */
	int nerrors;
	const conf_key *keys; /* borrowed */
	size_t nkeys;
	void *obj;     /* borrowed: where values land */
	int *set_line; /* owned, nkeys: 0 = not set by the file */
	bool *bad;     /* owned, nkeys: the file's value was refused */
} conf_parser;

/* ---- the parser ---- */

/* Prepare p for one parse of a file called `name` into obj. -1 when out of memory (the caller reports).
 * conf_parser_fini is safe on a zeroed or failed p. */
int conf_parser_init(conf_parser *p, const conf_key *keys, size_t nkeys, void *obj, const char *name,
                     FILE *errs) __attribute__((warn_unused_result));
void conf_parser_fini(conf_parser *p);

/* Parse every line of buf (len bytes; a NUL byte in a line is an error), then run the cross checks. */
void conf_parse_buffer(conf_parser *p, const char *buf, size_t len, const conf_cross *crosses, size_t ncrosses);

/* Count one error and write "NAME:LINE: message\n" to the error stream. */
void conf_report(conf_parser *p, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The line the file set key `name` on (0: not set, or no such key), and whether its value was refused. */
int conf_parser_line(const conf_parser *p, const char *name);
bool conf_parser_bad(const conf_parser *p, const char *name);

/* Read the whole file at path into *buf (caller frees; *len bytes, not NUL-terminated). On failure writes
 * "PATH: cannot open: REASON" (or cannot read, or too large) to errs (may be NULL) and returns -1. */
int conf_read_file(const char *path, FILE *errs, char **buf, size_t *len) __attribute__((warn_unused_result));

/* ---- drivers over a key table ---- */

const conf_key *conf_key_find(const conf_key *keys, size_t nkeys, const char *name, size_t *idx);

/* Parse v into k's field of obj: the empty-value rule, then the type's parse. */
int conf_key_set(void *obj, const conf_key *k, const char *v, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Every key's default through conf_key_set. -1 (logged with the key) when one fails: out of memory, or
 * a broken default, which the unit tests catch. */
int conf_keys_set_defaults(const conf_key *keys, size_t nkeys, void *obj) __attribute__((warn_unused_result));

/* Free what every key owns in obj (not obj itself). */
void conf_keys_free(const conf_key *keys, size_t nkeys, void *obj);

/* For reload: every key without CONF_K_RELOAD takes old's value in fresh; `report` is called for each
 * whose value differs. */
void conf_keys_keep_static(const conf_key *keys, size_t nkeys, void *fresh, const void *old,
                           void (*report)(const char *key, void *arg), void *arg);

/* "key = value" lines, in table order. */
void conf_keys_dump(const conf_key *keys, size_t nkeys, const void *obj, FILE *out);

/* One line a key, tab-separated: name, type, default, minimum, maximum, reload|restart, reason. -1 when a
 * key has no reason (after writing every line). */
int conf_keys_reference(const conf_key *keys, size_t nkeys, FILE *out);

/* ---- text helpers for types and checks ---- */

/* A printable, bounded copy of n bytes of s for a message (non-printable bytes as \xNN, long text cut).
 * buf holds len bytes; CONF_SHOW_BUF suffices. Returns buf. */
const char *conf_show_n(const char *s, size_t n, char *buf, size_t len);
/* The same for a whole string; buf holds CONF_SHOW_BUF bytes. */
const char *conf_show(const char *s, char *buf);

/* "250ms", "25s", "5m", "1h": the largest unit that states ms exactly. */
void conf_fmt_duration(int64_t ms, char *buf, size_t len);
/* "8KiB", "1MiB", "100B". */
void conf_fmt_size(int64_t n, char *buf, size_t len);

/* Digits, with an optional leading '-' when `sign`; beyond int64 saturates. *end = the byte after the
 * digits. -1 when there are no digits. */
int conf_scan_int(const char *s, bool sign, int64_t *out, const char **end);

/* A string value as the parser reads it back (quoted and escaped when it must be), and its length. */
void conf_dump_string(const char *s, FILE *out);
size_t conf_dumped_len(const char *s);

#endif
