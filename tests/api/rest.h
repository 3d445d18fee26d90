/*
 * Helpers of the REST integration tests (statuses, relations, lists, timelines): calls that
 * assert their status and hand back parsed JSON, and the checks every Status entity must pass.
 */
#ifndef TUSK_TESTS_API_REST_H
#define TUSK_TESTS_API_REST_H

#include "tests/api/client.h"

#include <jansson.h>
#include <stdint.h>

/* a call that must answer want (the test fails with the body otherwise); the parsed body
 * (caller decrefs); r, when given, keeps the response (caller frees) */
json_t *rt_call(tc_env *env, const char *method, const char *path, const char *token,
                const char *json_body, int want, tc_resp *r);
/* the error answer of a call: status and a message containing msg */
void rt_error(tc_env *env, const char *method, const char *path, const char *token,
              const char *json_body, int want, const char *msg);
/* POST /api/v1/statuses; the new status' id */
int64_t rt_post(tc_env *env, const char *token, const char *json_body);
/* "id" of an entity as a number */
int64_t rt_id(json_t *entity);
/* ids of an array of entities into out; the count */
int rt_ids(json_t *arr, int64_t *out, int max);
/* every field of Mastodon's Status entity is there, with its type */
void rt_check_status(json_t *s);
/* printf into a static buffer (paths) */
const char *rt_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
