/*
 * gateway/conf-policy.h — the config value types of the policy settings (gateway/conf-policy.c), for the
 * key table in gateway/config.c. `aux` of a list type is the offset of its size_t count.
 */
#ifndef POLLGATE_GATEWAY_CONF_POLICY_H
#define POLLGATE_GATEWAY_CONF_POLICY_H

#include "gateway/conf-engine.h"

/* char [POL_MAX_LIST][POL_NAME_MAX] of names; aux = offset of the size_t count. */
extern const conf_type conf_t_pol_list;
/* char [POL_NAME_MAX]: exactly one name. */
extern const conf_type conf_t_pol_name;
/* pol_outcome_map [POL_MAX_LIST] of outcome=state; aux = offset of the count. */
extern const conf_type conf_t_pol_outcomes;
/* pol_step [POL_MAX_STEPS] of age:interval; aux = offset of the count. */
extern const conf_type conf_t_pol_schedule;

#endif
