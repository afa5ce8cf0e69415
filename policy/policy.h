/*
 * policy/policy.h — what a persisted row means to a browser.
 *
 * Pure functions over plain structs: status normalisation (persisted status/outcome -> state), active and
 * terminal, the poll interval, the JSON representation (exactly the keys of api.md, nothing else), and
 * its strong ETag (SHA-256 of the representation bytes). No I/O, no clock: the caller passes `now`.
 * Every state list and number comes from a pol_config, which the config file fills through the
 * pol_parse_* functions below (so the value syntax lives next to its meaning).
 */
#ifndef POLLGATE_POLICY_POLICY_H
#define POLLGATE_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A NULL in a nullable bigint or timestamp column. Timestamps are microseconds since the Unix epoch. */
#define POL_NULL INT64_MIN

#define POL_MAX_LIST 16  /* entries in a state list */
#define POL_NAME_MAX 48  /* bytes of a status/outcome/state name, NUL included */
#define POL_MAX_STEPS 8  /* steps of the run poll schedule */

typedef struct pol_outcome_map {
	char outcome[POL_NAME_MAX]; /* persisted outcome, e.g. "partially_succeeded" */
	char state[POL_NAME_MAX];   /* normalised state, e.g. "partial" */
} pol_outcome_map;

typedef struct pol_step {
	int64_t below_age_ms; /* applies while age < below_age_ms; -1 on the last step means "otherwise" */
	int64_t interval_ms;
} pol_step;

typedef struct pol_config {
	/* Runs: an active status is served as the state of the same name. */
	char run_active[POL_MAX_LIST][POL_NAME_MAX];
	size_t n_run_active;
	char run_completed_status[POL_NAME_MAX]; /* the status whose outcome decides the terminal state */
	pol_outcome_map run_outcomes[POL_MAX_LIST];
	size_t n_run_outcomes;
	pol_step run_schedule[POL_MAX_STEPS]; /* ascending below_age_ms, last one -1 */
	size_t n_run_schedule;
	/* Review packs: active and terminal statuses are served as states of the same name. */
	char pack_active[POL_MAX_LIST][POL_NAME_MAX];
	size_t n_pack_active;
	char pack_terminal[POL_MAX_LIST][POL_NAME_MAX];
	size_t n_pack_terminal;
	int64_t pack_interval_ms;
} pol_config;

/* The defaults of api.md: queued/running active; completed + succeeded|partially_succeeded|failed|
 * cancelled -> succeeded|partial|failed|cancelled; schedule 1 s under 10 s, 5 s under 60 s, else 10 s;
 * packs queued/generating active at 10 s, ready/failed/expired terminal. */
void pol_config_default(pol_config *c);

/* Value parsers for the config file. Each returns 0, or -1 with a one-sentence reason in err.
 *   pol_parse_list:      "queued running"   (names separated by spaces and/or commas; 1..POL_MAX_LIST names
 *                                            of [a-z0-9_.-], each < POL_NAME_MAX; duplicates refused)
 *   pol_parse_outcomes:  "succeeded=succeeded partially_succeeded=partial"   (outcome=state pairs)
 *   pol_parse_schedule:  "10s:1s 60s:5s *:10s"   (age:interval steps, ascending ages, last is "*";
 *                                                 durations take ms/s/m/h units; intervals > 0)
 */
int pol_parse_list(const char *value, char out[][POL_NAME_MAX], size_t *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int pol_parse_outcomes(const char *value, pol_outcome_map *out, size_t *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));
int pol_parse_schedule(const char *value, pol_step *out, size_t *n, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Shared duration syntax: "<digits><unit>" with unit ms, s, m or h; returns 0 and sets *ms, else -1. */
int pol_parse_duration(const char *s, int64_t *ms) __attribute__((warn_unused_result));

/* An operation run as read from the database. Strings are borrowed (NULL = SQL NULL) and must live
 * until pol_run_view() returns. JSON columns arrive as their text. */
typedef struct pol_run {
	int64_t id;
	int64_t workspace_id;
	int64_t tenant_id; /* POL_NULL when the run has no tenant */
	const char *type;
	const char *status;
	const char *outcome;
	const char *summary_counts; /* JSON text or NULL */
	const char *failure_summary;
	int64_t created_at; /* POL_NULL when missing */
	int64_t started_at;
	int64_t completed_at;
} pol_run;

/* A tenant's latest review pack, or none (present == false: the other fields are ignored). */
typedef struct pol_pack {
	bool present;
	int64_t id;
	int64_t workspace_id;
	int64_t tenant_id;
	int64_t operation_run_id; /* POL_NULL when none */
	const char *status;
	int64_t generated_at;
	int64_t expires_at;
	int64_t file_size; /* POL_NULL when none */
	int64_t created_at;
	int64_t updated_at;
} pol_pack;

#define POL_ETAG_LEN 34 /* a quoted 32-hex-digit strong ETag: "\"0123...\"" */

/* What a row means: state, whether it is held, how often it is re-read, and its representation. */
typedef struct pol_view {
	char state[POL_NAME_MAX]; /* normalised state; "unknown" or "none" when not recognised / absent */
	bool active;              /* held by long-polls and re-read by the safety net */
	bool terminal;            /* closes the watch for good */
	int64_t interval_ms;      /* the poll interval while active, 0 when not active */
	char *body;               /* owned: compact JSON of api.md's "Bodies", NUL-terminated */
	size_t body_len;
	char etag[POL_ETAG_LEN + 1]; /* quoted: "\"<32 hex>\"" */
	int bad_fields;              /* count of JSON columns that did not parse and were served as null */
} pol_view;

/* State of a run: returns the state name (a pointer into the config, or the literal "unknown") and
 * sets *active / *terminal. status or outcome may be NULL. */
const char *pol_run_state(const pol_config *c, const char *status, const char *outcome, bool *active,
                          bool *terminal);

/* The run poll interval for a run's persisted timestamps at `now` (microseconds): age from started_at,
 * or created_at while it has not started; a missing timestamp counts as age 0. */
int64_t pol_run_interval_ms(const pol_config *c, const pol_run *r, int64_t now);

/* Build the view. `out` is overwritten (call pol_view_clear on it first if it held a body).
 * Returns 0, or -1 on allocation/serialisation failure with `out` left empty. */
int pol_run_view(const pol_config *c, const pol_run *r, int64_t now, pol_view *out)
	__attribute__((warn_unused_result));
int pol_pack_view(const pol_config *c, const pol_pack *p, int64_t now, pol_view *out)
	__attribute__((warn_unused_result));

/* Free the body and zero the view. pol_view_clear(NULL) is a no-op. */
void pol_view_clear(pol_view *v);

/* RFC 3339 UTC: "2026-03-08T11:00:00Z", or with ".ffffff" when the microseconds are not zero.
 * Returns the length written, or -1 if buf is too small (needs 28 bytes) or the time is out of range. */
int pol_format_time(int64_t us, char *buf, size_t len);

/* Strong ETag of some bytes: writes the quoted 32-hex form (first 128 bits of SHA-256) into
 * out[POL_ETAG_LEN + 1]. */
void pol_etag(const char *bytes, size_t len, char out[POL_ETAG_LEN + 1]);

#endif
