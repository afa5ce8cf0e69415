/*
 * tests/unit/gateway/test_conf_policy.c — the config value types of the policy settings (gateway/conf-policy.c),
 * each through its table of operations: no key of the gateway, a struct of this file's own.
 *
 * Owns: each type's contract (parse then dump gives the canonical text, the dump reads back equal, a
 * different value is not equal, copy makes it equal again, a refused value leaves the field and its count
 * as they were), equality by content (only the first count entries, every field of an entry), schedule
 * durations written back in their largest whole unit with "*" for the last age, the policy parsers'
 * reasons wrapped as "invalid KEY: reason" and kept printable, and the list bounds (POL_MAX_LIST names).
 * The syntax itself is policy/'s (test_policy_parse.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/conf-engine.h"
#include "gateway/conf-policy.h"
#include "policy/policy.h"

struct toy {
	char names[POL_MAX_LIST][POL_NAME_MAX];
	size_t n_names;
	char name[POL_NAME_MAX];
	pol_outcome_map outcomes[POL_MAX_LIST];
	size_t n_outcomes;
	pol_step steps[POL_MAX_STEPS];
	size_t n_steps;
};

#define O(f) offsetof(struct toy, f)

static const conf_key toy_keys[] = {
	{.name = "names", .type = &conf_t_pol_list, .off = O(names), .aux = O(n_names)},
	{.name = "name", .type = &conf_t_pol_name, .off = O(name)},
	{.name = "outcomes", .type = &conf_t_pol_outcomes, .off = O(outcomes), .aux = O(n_outcomes)},
	{.name = "steps", .type = &conf_t_pol_schedule, .off = O(steps), .aux = O(n_steps)},
};
#define NTOY (sizeof toy_keys / sizeof toy_keys[0])

static const conf_key *toy_key(const char *name)
{
	const conf_key *k = conf_key_find(toy_keys, NTOY, name, NULL);
	if (k == NULL) fail_msg("no toy key %s", name);
	return k;
}

static char *dump_key(const struct toy *t, const conf_key *k)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	k->type->dump(t, k, f);
	fclose(f);
	return buf;
}

static void set_ok(struct toy *t, const conf_key *k, const char *v)
{
	char err[CONF_ERR_LEN] = "";
	if (conf_key_set(t, k, v, err, sizeof err) != 0) fail_msg("%s = '%s' refused: %s", k->name, v, err);
}

static void assert_dump(const struct toy *t, const conf_key *k, const char *want)
{
	char *got = dump_key(t, k);
	if (strcmp(got, want) != 0) fail_msg("%s: dumped '%s', want '%s'", k->name, got, want);
	free(got);
}

static struct toy *toy_new(void)
{
	struct toy *t = calloc(1, sizeof *t);
	assert_non_null(t);
	return t;
}

static void test_every_type_has_the_required_operations(void **state)
{
	(void)state;
	for (size_t i = 0; i < NTOY; i++) {
		const conf_type *t = toy_keys[i].type;
		if (t->name == NULL || t->name[0] == '\0' || t->parse == NULL || t->equal == NULL || t->copy == NULL ||
		    t->dump == NULL)
			fail_msg("type of %s lacks a name or a required operation", toy_keys[i].name);
		/* fixed-size arrays: nothing to free, no bound to write, no second spelling of one value */
		if (t->free != NULL || t->bound != NULL || t->copy_when_equal)
			fail_msg("type of %s owns memory, a bound or copy_when_equal", toy_keys[i].name);
	}
}

/* ---- the contract, one row a value ---- */

struct type_case {
	const char *key;
	const char *value, *dumped; /* a value and how it is written back */
	const char *other;          /* a different value */
	const char *bad, *message;  /* a refused value and the beginning of its message */
};

static const struct type_case cases[] = {
	{"names", "a,b c", "a b c", "a b", "a A", "invalid names: "},
	{"names", "queued, running ,\tpaused", "queued running paused", "queued running", "a a", "invalid names: "},
	{"name", "done", "done", "ready", "a b", "invalid name: give exactly one status name"},
	{"name", "  x.y-z_1 ", "x.y-z_1", "x.y-z_2", "Done", "invalid name: "},
	{"outcomes", "ok=succeeded bad=failed", "ok=succeeded bad=failed", "ok=succeeded", "ok", "invalid outcomes: "},
	{"outcomes", "ok=succeeded bad=failed", "ok=succeeded bad=failed", "ok=succeeded bad=partial", "=x",
	 "invalid outcomes: "},
	{"steps", "10s:1s *:1m", "10s:1s *:1m", "*:5s", "*:0s", "invalid steps: "},
	{"steps", "1500ms:250ms 2m:60s *:1h", "1500ms:250ms 2m:1m *:1h", "1500ms:250ms 2m:60s *:2h", "10s:1s",
	 "invalid steps: "},
	{"steps", "120000ms:7200s *:3600000ms", "2m:2h *:1h", "2m:2h *:59m", "20s:1s 10s:1s *:1s", "invalid steps: "},
};

static void test_each_type_parses_dumps_compares_and_copies(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const struct type_case *tc = &cases[i];
		const conf_key *k = toy_key(tc->key);
		struct toy *a = toy_new(), *b = toy_new(), *before = toy_new();
		char *text;

		set_ok(a, k, tc->value);
		assert_dump(a, k, tc->dumped);
		/* what dump writes parses back to the same value */
		set_ok(b, k, tc->dumped);
		if (!k->type->equal(a, b, k)) fail_msg("%s: '%s' does not read back equal", k->name, tc->dumped);
		set_ok(b, k, tc->other);
		if (k->type->equal(a, b, k) || k->type->equal(b, a, k))
			fail_msg("%s: '%s' and '%s' compare equal", k->name, tc->value, tc->other);
		assert_int_equal(k->type->copy(b, a, k), 0);
		if (!k->type->equal(a, b, k)) fail_msg("%s: a copy is not equal", k->name);
		text = dump_key(b, k);
		assert_string_equal(text, tc->dumped);
		free(text);

		/* a refused value: the message, and not one byte of the struct changed (count included) */
		char err[CONF_ERR_LEN] = "";
		memcpy(before, a, sizeof *a);
		if (conf_key_set(a, k, tc->bad, err, sizeof err) == 0) fail_msg("%s: '%s' accepted", k->name, tc->bad);
		if (strncmp(err, tc->message, strlen(tc->message)) != 0 || strlen(err) <= strlen("invalid : ") + strlen(k->name))
			fail_msg("%s = '%s': message '%s', want it to begin '%s' and give a reason", k->name, tc->bad, err, tc->message);
		if (memcmp(before, a, sizeof *a) != 0) fail_msg("%s: refused '%s' changed the struct", k->name, tc->bad);
		conf_keys_free(toy_keys, NTOY, a);
		conf_keys_free(toy_keys, NTOY, b);
		free(a);
		free(b);
		free(before);
	}
}

/* Equality looks at the first count entries, by content: not at stale bytes after a shorter value, and
 * not only at the first field of an entry. */
static void test_policy_values_compare_by_content(void **state)
{
	struct toy *a = toy_new(), *b = toy_new();
	(void)state;

	set_ok(a, toy_key("names"), "a_long_status_name b");
	set_ok(a, toy_key("names"), "x y"); /* shorter: what lies after the names is not part of the value */
	set_ok(b, toy_key("names"), "x y");
	assert_true(conf_t_pol_list.equal(a, b, toy_key("names")));
	assert_int_equal(a->n_names, 2);
	set_ok(b, toy_key("names"), "x y z");
	assert_false(conf_t_pol_list.equal(a, b, toy_key("names"))); /* a prefix is not equal */
	assert_false(conf_t_pol_list.equal(b, a, toy_key("names")));

	set_ok(a, toy_key("name"), "a_long_status_name");
	set_ok(a, toy_key("name"), "ab");
	set_ok(b, toy_key("name"), "ab");
	assert_true(conf_t_pol_name.equal(a, b, toy_key("name")));

	set_ok(a, toy_key("outcomes"), "ok=succeeded bad=failed");
	set_ok(b, toy_key("outcomes"), "ok=succeeded bad=partial"); /* same outcomes, one state differs */
	assert_false(conf_t_pol_outcomes.equal(a, b, toy_key("outcomes")));
	set_ok(b, toy_key("outcomes"), "ok=succeeded worse=failed"); /* same states, one outcome differs */
	assert_false(conf_t_pol_outcomes.equal(a, b, toy_key("outcomes")));

	set_ok(a, toy_key("steps"), "10s:1s *:5s");
	set_ok(b, toy_key("steps"), "11s:1s *:5s"); /* one age differs */
	assert_false(conf_t_pol_schedule.equal(a, b, toy_key("steps")));
	set_ok(b, toy_key("steps"), "10s:1s *:6s"); /* one interval differs */
	assert_false(conf_t_pol_schedule.equal(a, b, toy_key("steps")));
	set_ok(b, toy_key("steps"), "10000ms:1000ms *:5000ms"); /* the same durations, written otherwise */
	assert_true(conf_t_pol_schedule.equal(a, b, toy_key("steps")));
	free(a);
	free(b);
}

/* The policy parsers echo what they were given; the config's message keeps only printable ASCII. */
static void test_messages_stay_printable(void **state)
{
	static const char *bad[] = {"a\x01" "b", "caf\xc3\xa9", "x\x7f", "a\tb=\x1b[31m"};
	(void)state;

	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		for (size_t j = 0; j < NTOY; j++) {
			struct toy *t = toy_new();
			char err[CONF_ERR_LEN] = "";
			if (conf_key_set(t, &toy_keys[j], bad[i], err, sizeof err) == 0) fail_msg("%s: bad value %zu accepted", toy_keys[j].name, i);
			for (const char *p = err; *p; p++)
				if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
					fail_msg("%s: message for bad value %zu holds byte 0x%02x: %s", toy_keys[j].name, i, (unsigned char)*p, err);
			assert_true(strncmp(err, "invalid ", 8) == 0);
			free(t);
		}
	}
}

/* A list holds up to POL_MAX_LIST names: all of them come back, one more is refused and changes nothing. */
static void test_a_full_list_round_trips_and_one_more_is_refused(void **state)
{
	char value[POL_MAX_LIST * 8 + 16] = "", err[CONF_ERR_LEN] = "";
	struct toy *t = toy_new();
	const conf_key *k = toy_key("names");
	(void)state;

	for (int i = 0; i < POL_MAX_LIST; i++) snprintf(value + strlen(value), sizeof value - strlen(value), "%sn%d", i ? " " : "", i);
	set_ok(t, k, value);
	assert_int_equal(t->n_names, POL_MAX_LIST);
	assert_dump(t, k, value);
	snprintf(value + strlen(value), sizeof value - strlen(value), " extra");
	assert_int_equal(conf_key_set(t, k, value, err, sizeof err), -1);
	assert_int_equal(t->n_names, POL_MAX_LIST);
	assert_string_equal(t->names[POL_MAX_LIST - 1], "n15");
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_type_has_the_required_operations),
		cmocka_unit_test(test_each_type_parses_dumps_compares_and_copies),
		cmocka_unit_test(test_policy_values_compare_by_content),
		cmocka_unit_test(test_messages_stay_printable),
		cmocka_unit_test(test_a_full_list_round_trips_and_one_more_is_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
