/* test_sessions.c - the session state table: create, hold, release and steps; 404/409/410 with
 * their reasons (expiry on an injected clock, LRU eviction, reloads, deletes); the bounded memory
 * of ends; keyed (v2) sessions; randomness failures; many threads; 10,000 idle sessions' RSS. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/sessions.h"
#include "testutil.h"

#define SEC 1000000000LL

static int64_t fake_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* A table on the fake clock *NOW. */
static sess_table *table(size_t max, int64_t ttl_ns, size_t remember, int64_t *now)
{
    char why[256] = "";
    sess_config c = {.max_sessions = max,
                     .ttl_ns = ttl_ns,
                     .remember_ends = remember,
                     .clock_ns = now ? fake_clock : NULL,
                     .clock_ctx = now};
    sess_table *t = sess_new(&c, why, sizeof why);
    ck_assert_msg(t != NULL, "sess_new: %s", why);
    return t;
}

static const sess_shape LSTM2 = {.rows = 2, .hidden = 3, .has_cell = true};
static const sess_shape GRU1 = {.rows = 1, .hidden = 4, .has_cell = false};

/* A new idle session of MODEL; its id in ID. */
static void create(sess_table *t, const char *model, const sess_shape *sh, char id[33])
{
    char why[256] = "";
    sess_status st = sess_create(t, model, sh, NULL, NULL, id, NULL, why, sizeof why);
    ck_assert_msg(st == SESS_OK, "sess_create: %d %s", st, why);
}

static sess_ref *acquire_ok(sess_table *t, const char *id)
{
    sess_ref *r = NULL;
    char why[256] = "";
    sess_status st = sess_acquire(t, id, &r, why, sizeof why);
    ck_assert_msg(st == SESS_OK, "sess_acquire %s: %d %s", id, st, why);
    ck_assert_ptr_nonnull(r);
    return r;
}

/* Expects sess_acquire(ID) to answer WANT with WHY holding HAS. */
static void expect_status(sess_table *t, const char *id, sess_status want, const char *has)
{
    sess_ref *r = (sess_ref *)&r;
    char why[256] = "";
    sess_status st = sess_acquire(t, id, &r, why, sizeof why);
    ck_assert_msg(st == want, "sess_acquire %s: %d, wanted %d (%s)", id, st, want, why);
    ck_assert_ptr_null(r);
    ck_assert_msg(strstr(why, has) != NULL, "wanted \"%s\" in: %s", has, why);
}

START_TEST(test_created_session_holds_its_state_and_steps_add_up)
{
    int64_t now = 100 * SEC;
    sess_table *t = table(8, 0, 8, &now);
    float h0[6] = {1, 2, 3, 4, 5, 6}, c0[6] = {-1, -2, -3, -4, -5, -6};
    char id[33], why[256];
    ck_assert_int_eq(sess_create(t, "lstm", &LSTM2, h0, c0, id, NULL, why, sizeof why), SESS_OK);
    now += 2 * SEC;
    sess_ref *r = acquire_ok(t, id);
    ck_assert_str_eq(sess_model(r), "lstm");
    ck_assert_str_eq(sess_id(r), id);
    ck_assert_int_eq(sess_shape_of(r)->rows, 2);
    ck_assert_int_eq(sess_shape_of(r)->hidden, 3);
    ck_assert(sess_shape_of(r)->has_cell);
    ck_assert_uint_eq(sess_steps(r), 0);
    ck_assert_double_eq_tol(sess_idle_s(r), 2.0, 1e-9);
    ck_assert_int_eq(memcmp(sess_state_h(r), h0, sizeof h0), 0);
    ck_assert_int_eq(memcmp(sess_state_c(r), c0, sizeof c0), 0);
    sess_state_h(r)[5] = 60;
    sess_state_c(r)[0] = -10;
    sess_release(t, r, 3, SESS_KEEP);
    now += 5 * SEC;
    r = acquire_ok(t, id);
    ck_assert_uint_eq(sess_steps(r), 3);
    ck_assert_double_eq_tol(sess_idle_s(r), 5.0, 1e-9);
    ck_assert_float_eq(sess_state_h(r)[5], 60);
    ck_assert_float_eq(sess_state_c(r)[0], -10);
    sess_release(t, r, 0, SESS_KEEP); /* a failed request: no steps */
    r = acquire_ok(t, id);
    ck_assert_uint_eq(sess_steps(r), 3);
    sess_release(t, r, 4, SESS_KEEP);

    char gid[33];
    create(t, "gru", &GRU1, gid);
    r = acquire_ok(t, gid);
    ck_assert_ptr_null(sess_state_c(r));
    for (int i = 0; i < 4; i++)
        ck_assert_float_eq(sess_state_h(r)[i], 0);
    sess_release(t, r, 1, SESS_KEEP);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 2);
    ck_assert_uint_eq(s.held, 0);
    ck_assert_uint_eq(s.created, 2);
    ck_assert_uint_eq(s.ended, 0);
    sess_free(t);
}
END_TEST

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

START_TEST(test_ids_are_32_lowercase_hex_characters_and_all_differ)
{
    enum { N = 2000 };
    sess_table *t = table(N, 0, 0, NULL);
    char(*ids)[33] = malloc(N * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (int i = 0; i < N; i++) {
        create(t, "m", &GRU1, ids[i]);
        ck_assert_uint_eq(strlen(ids[i]), 32);
        ck_assert_uint_eq(strspn(ids[i], "0123456789abcdef"), 32);
    }
    qsort(ids, N, sizeof *ids, cmp_id);
    for (int i = 1; i < N; i++)
        ck_assert_str_ne(ids[i - 1], ids[i]);
    free(ids);
    sess_free(t);
}
END_TEST

START_TEST(test_second_acquire_while_held_is_busy)
{
    sess_table *t = table(4, 0, 4, NULL);
    char id[33];
    create(t, "m", &GRU1, id);
    sess_ref *r = acquire_ok(t, id);
    expect_status(t, id, SESS_BUSY, "still running");
    sess_release(t, r, 1, SESS_KEEP);
    r = acquire_ok(t, id);
    sess_release(t, r, 1, SESS_KEEP);
    sess_free(t);
}
END_TEST

START_TEST(test_unknown_and_malformed_ids_are_unknown)
{
    sess_table *t = table(4, 0, 4, NULL);
    char id[33], upper[33];
    create(t, "m", &GRU1, id);
    expect_status(t, "0123456789abcdef0123456789abcdef", SESS_UNKNOWN, "no such session");
    for (int i = 0; i < 33; i++)
        upper[i] = (char)(id[i] >= 'a' && id[i] <= 'f' ? id[i] - 32 : id[i]);
    if (strcmp(upper, id) != 0)
        expect_status(t, upper, SESS_UNKNOWN, "no such session");
    char shorter[33];
    memcpy(shorter, id, 31);
    shorter[31] = '\0';
    expect_status(t, shorter, SESS_UNKNOWN, "no such session");
    expect_status(t, "", SESS_UNKNOWN, "no such session");
    expect_status(t, "v2:m", SESS_UNKNOWN, "no such session");
    sess_free(t);
}
END_TEST

START_TEST(test_idle_session_expires_after_the_ttl_on_the_injected_clock)
{
    int64_t now = 1000 * SEC;
    sess_table *t = table(4, 10 * SEC, 8, &now);
    ck_assert_double_eq(sess_ttl_s(t), 10.0);
    char a[33], b[33];
    create(t, "m", &GRU1, a);
    create(t, "m", &GRU1, b);
    now += 9 * SEC;
    sess_ref *r = acquire_ok(t, a);      /* used at 9 s: its idle clock restarts at release */
    now += 100 * SEC;                    /* a held session never expires */
    ck_assert_uint_eq(sess_sweep(t), 1); /* b, idle for 109 s */
    expect_status(t, b, SESS_ENDED, "expired after 109 s idle");
    sess_release(t, r, 1, SESS_KEEP);
    now += 10 * SEC - 1;
    r = acquire_ok(t, a);
    sess_release(t, r, 1, SESS_KEEP);
    now += 10 * SEC; /* lazily, on the next call */
    expect_status(t, a, SESS_ENDED, "expired after 10 s idle (the session TTL is 10 s)");
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 0);
    ck_assert_uint_eq(s.expired, 2);
    ck_assert_uint_eq(s.ended, 2);
    ck_assert_uint_eq(s.remembered, 2);
    ck_assert_uint_eq(sess_sweep(t), 0);
    sess_free(t);
}
END_TEST

START_TEST(test_ttl_zero_never_expires)
{
    int64_t now = 0;
    sess_table *t = table(4, 0, 4, &now);
    char a[33];
    create(t, "m", &GRU1, a);
    now += 1000000 * SEC;
    ck_assert_uint_eq(sess_sweep(t), 0);
    sess_release(t, acquire_ok(t, a), 1, SESS_KEEP);
    sess_free(t);
}
END_TEST

START_TEST(test_full_table_evicts_the_least_recently_used_idle_session)
{
    int64_t now = 0;
    sess_table *t = table(3, 0, 16, &now);
    char a[33], b[33], c[33], d[33], e[33], why[256];
    create(t, "m", &GRU1, a);
    now++;
    create(t, "m", &GRU1, b);
    now++;
    create(t, "m", &GRU1, c);
    now++;
    sess_release(t, acquire_ok(t, a), 1, SESS_KEEP); /* idle order, oldest first: b c a */
    create(t, "m", &GRU1, d);                        /* evicts b */
    expect_status(t, b, SESS_ENDED, "evicted as the least recently used idle session");
    create(t, "m", &GRU1, e); /* evicts c */
    expect_status(t, c, SESS_ENDED, "when the table was full (max_sessions 3)");
    sess_ref *ra = acquire_ok(t, a), *rd = acquire_ok(t, d), *re = acquire_ok(t, e);
    char f[33] = "unchanged";
    sess_status st = sess_create(t, "m", &GRU1, NULL, NULL, f, NULL, why, sizeof why);
    ck_assert_int_eq(st, SESS_FULL);
    ck_assert_str_eq(f, "unchanged");
    ck_assert_msg(strstr(why, "all 3 sessions have a request running"), "%s", why);
    sess_release(t, ra, 1, SESS_KEEP);
    sess_release(t, rd, 1, SESS_KEEP);
    sess_release(t, re, 1, SESS_KEEP);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 3);
    ck_assert_uint_eq(s.evicted, 2);
    ck_assert_uint_eq(s.created, 5);
    sess_free(t);
}
END_TEST

START_TEST(test_eviction_passes_over_a_held_session)
{
    int64_t now = 0;
    sess_table *t = table(2, 0, 8, &now);
    char a[33], b[33], c[33];
    create(t, "m", &GRU1, a);
    now++;
    create(t, "m", &GRU1, b);
    sess_ref *ra = acquire_ok(t, a); /* the oldest, but held */
    create(t, "m", &GRU1, c);
    expect_status(t, b, SESS_ENDED, "evicted");
    sess_release(t, ra, 1, SESS_KEEP);
    sess_release(t, acquire_ok(t, a), 1, SESS_KEEP);
    sess_release(t, acquire_ok(t, c), 1, SESS_KEEP);
    sess_free(t);
}
END_TEST

START_TEST(test_session_created_held_is_neither_taken_nor_evicted_before_its_release)
{
    int64_t now = 0;
    sess_table *t = table(1, 5 * SEC, 8, &now);
    char why[256];
    sess_ref *r = NULL;
    ck_assert_int_eq(sess_create(t, "m", &GRU1, NULL, NULL, NULL, &r, why, sizeof why), SESS_OK);
    ck_assert_ptr_nonnull(r);
    ck_assert_double_eq(sess_idle_s(r), 0.0);
    char id[33];
    snprintf(id, sizeof id, "%s", sess_id(r));
    expect_status(t, id, SESS_BUSY, "still running");
    sess_ref *other = (sess_ref *)&other;
    ck_assert_int_eq(sess_create(t, "m", &GRU1, NULL, NULL, NULL, &other, why, sizeof why),
                     SESS_FULL);
    ck_assert_ptr_null(other);
    now += 60 * SEC; /* held: no expiry */
    ck_assert_uint_eq(sess_sweep(t), 0);
    sess_release(t, r, 2, SESS_KEEP);
    r = acquire_ok(t, id);
    ck_assert_uint_eq(sess_steps(r), 2);
    sess_release(t, r, 0, SESS_KEEP);
    sess_free(t);
}
END_TEST

/* Keeps the sessions of model "same"; ends the others saying their shape changed. */
static bool keep_same(const char *model, const sess_shape *sh, char *why, size_t whylen, void *ctx)
{
    (*(int *)ctx)++;
    (void)sh;
    if (strcmp(model, "same") == 0)
        return true;
    snprintf(why, whylen, "ended by a reload that changed model \"%s\"'s shape", model);
    return false;
}

START_TEST(test_reload_keeps_unchanged_models_and_ends_the_others_with_the_reason)
{
    sess_table *t = table(8, 0, 8, NULL);
    char keep[33], gone[33];
    float h0[4] = {1, 2, 3, 4};
    char why[256];
    ck_assert_int_eq(sess_create(t, "same", &GRU1, h0, NULL, keep, NULL, why, sizeof why), SESS_OK);
    create(t, "changed", &GRU1, gone);
    int asked = 0;
    ck_assert_uint_eq(sess_reload(t, keep_same, &asked), 1);
    ck_assert_int_eq(asked, 2);
    expect_status(t, gone, SESS_ENDED, "ended by a reload that changed model \"changed\"'s shape");
    sess_ref *r = acquire_ok(t, keep);
    ck_assert_float_eq(sess_state_h(r)[3], 4);
    sess_release(t, r, 1, SESS_KEEP);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.reloaded, 1);
    ck_assert_uint_eq(s.active, 1);
    sess_free(t);
}
END_TEST

START_TEST(test_reload_ends_a_held_session_at_its_release)
{
    sess_table *t = table(8, 0, 8, NULL);
    char id[33];
    create(t, "changed", &GRU1, id);
    sess_ref *r = acquire_ok(t, id);
    int asked = 0;
    ck_assert_uint_eq(sess_reload(t, keep_same, &asked), 1);
    ck_assert_uint_eq(sess_reload(t, keep_same, &asked), 0); /* already ending: not asked again */
    ck_assert_int_eq(asked, 1);
    /* The holder still has it; anyone else hears it ended. */
    sess_state_h(r)[0] = 1;
    expect_status(t, id, SESS_ENDED, "changed model \"changed\"'s shape");
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 1);
    sess_release(t, r, 1, SESS_KEEP);
    expect_status(t, id, SESS_ENDED, "changed model \"changed\"'s shape");
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 0);
    ck_assert_uint_eq(s.held, 0);
    ck_assert_uint_eq(s.reloaded, 1);
    ck_assert_uint_eq(s.ended, 1);
    sess_free(t);
}
END_TEST

START_TEST(test_deleted_session_is_remembered_as_deleted)
{
    sess_table *t = table(8, 0, 8, NULL);
    char a[33], b[33];
    create(t, "m", &GRU1, a);
    create(t, "m", &GRU1, b);
    sess_ref *r = acquire_ok(t, a);
    sess_release(t, r, 2, SESS_DELETE);
    expect_status(t, a, SESS_ENDED, "deleted by its client");
    sess_release(t, acquire_ok(t, b), 1, SESS_END_SEQUENCE);
    expect_status(t, b, SESS_ENDED, "ended by its client");
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 0);
    ck_assert_uint_eq(s.ended, 2);
    ck_assert_uint_eq(s.expired + s.evicted + s.reloaded, 0);
    sess_free(t);
}
END_TEST

START_TEST(test_remembered_ends_are_bounded_and_old_ends_become_unknown)
{
    enum { N = 100, REMEMBER = 8 };
    sess_table *t = table(4, 0, REMEMBER, NULL);
    char ids[N][33];
    for (int i = 0; i < N; i++) {
        create(t, "m", &GRU1, ids[i]);
        sess_release(t, acquire_ok(t, ids[i]), 0, SESS_DELETE);
        sess_stats s;
        sess_get_stats(t, &s);
        ck_assert_uint_le(s.remembered, REMEMBER);
    }
    for (int i = 0; i < N - REMEMBER; i++)
        expect_status(t, ids[i], SESS_UNKNOWN, "no such session");
    for (int i = N - REMEMBER; i < N; i++)
        expect_status(t, ids[i], SESS_ENDED, "deleted");
    sess_free(t);

    /* Nothing remembered at all: ends are unknown at once. */
    t = table(4, 0, 0, NULL);
    create(t, "m", &GRU1, ids[0]);
    sess_release(t, acquire_ok(t, ids[0]), 0, SESS_DELETE);
    expect_status(t, ids[0], SESS_UNKNOWN, "no such session");
    sess_free(t);
}
END_TEST

static sess_ref *keyed_ok(sess_table *t, const char *model, const sess_key *k)
{
    sess_ref *r = NULL;
    char why[256] = "";
    sess_status st = sess_acquire_keyed(t, model, k, &r, why, sizeof why);
    ck_assert_msg(st == SESS_OK, "sess_acquire_keyed: %d %s", st, why);
    return r;
}

static sess_status keyed_status(sess_table *t, const char *model, const sess_key *k, char *why)
{
    sess_ref *r = NULL;
    sess_status st = sess_acquire_keyed(t, model, k, &r, why, 256);
    if (st == SESS_OK)
        sess_release(t, r, 0, SESS_KEEP);
    return st;
}

START_TEST(test_keyed_sessions_are_created_or_reset)
{
    sess_table *t = table(8, 0, 8, NULL);
    sess_key five = {.num = 5};
    float h0[4] = {9, 9, 9, 9};
    char why[256];
    sess_ref *r = NULL;
    ck_assert_int_eq(sess_create_keyed(t, "m", &five, &GRU1, NULL, NULL, &r, why, sizeof why),
                     SESS_OK);
    ck_assert_ptr_nonnull(r); /* comes back held */
    ck_assert_ptr_null(sess_id(r));
    ck_assert_str_eq(sess_model(r), "m");
    /* Held: a reset or another request is refused. */
    ck_assert_int_eq(sess_create_keyed(t, "m", &five, &GRU1, NULL, NULL, NULL, why, sizeof why),
                     SESS_BUSY);
    ck_assert_int_eq(keyed_status(t, "m", &five, why), SESS_BUSY);
    sess_state_h(r)[0] = 7;
    sess_release(t, r, 3, SESS_KEEP);
    r = keyed_ok(t, "m", &five);
    ck_assert_uint_eq(sess_steps(r), 3);
    ck_assert_float_eq(sess_state_h(r)[0], 7);
    sess_release(t, r, 1, SESS_KEEP);
    /* sequence_start again: a fresh state, even of another shape, in the same place. */
    ck_assert_int_eq(sess_create_keyed(t, "m", &five, &LSTM2, NULL, NULL, NULL, why, sizeof why),
                     SESS_OK);
    r = keyed_ok(t, "m", &five);
    ck_assert_uint_eq(sess_steps(r), 0);
    ck_assert_int_eq(sess_shape_of(r)->rows, 2);
    ck_assert_float_eq(sess_state_h(r)[0], 0);
    ck_assert_ptr_nonnull(sess_state_c(r));
    sess_release(t, r, 1, SESS_END_SEQUENCE);
    ck_assert_int_eq(keyed_status(t, "m", &five, why), SESS_ENDED);
    ck_assert_msg(strstr(why, "ended by its client"), "%s", why);
    /* Started again after its end: alive, not "ended". */
    ck_assert_int_eq(sess_create_keyed(t, "m", &five, &GRU1, h0, NULL, NULL, why, sizeof why),
                     SESS_OK);
    r = keyed_ok(t, "m", &five);
    ck_assert_float_eq(sess_state_h(r)[2], 9);
    sess_release(t, r, 1, SESS_KEEP);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, 1);
    ck_assert_uint_eq(s.created, 3);
    ck_assert_uint_eq(s.ended, 2);
    sess_free(t);
}
END_TEST

START_TEST(test_keyed_sessions_never_meet_random_ids_or_each_other)
{
    sess_table *t = table(16, 0, 16, NULL);
    char id[33], why[256];
    create(t, "m", &GRU1, id);
    sess_key as_string = {.str = id, .len = 32};
    /* A string key spelled like a random id reaches nothing, and creating it leaves the random
     * session alone. */
    ck_assert_int_eq(keyed_status(t, "m", &as_string, why), SESS_UNKNOWN);
    ck_assert_int_eq(
        sess_create_keyed(t, "m", &as_string, &GRU1, NULL, NULL, NULL, why, sizeof why), SESS_OK);
    sess_ref *r = acquire_ok(t, id);
    ck_assert_str_eq(sess_id(r), id);
    sess_state_h(r)[0] = 1;
    sess_release(t, r, 1, SESS_KEEP);
    r = keyed_ok(t, "m", &as_string);
    ck_assert_float_eq(sess_state_h(r)[0], 0);
    sess_release(t, r, 0, SESS_KEEP);

    /* 5 and "5" differ, and so do the same key's sessions of two models. */
    sess_key five = {.num = 5}, five_str = {.str = "5", .len = 1};
    ck_assert_int_eq(sess_create_keyed(t, "m", &five, &GRU1, NULL, NULL, NULL, why, sizeof why),
                     SESS_OK);
    ck_assert_int_eq(keyed_status(t, "m", &five_str, why), SESS_UNKNOWN);
    ck_assert_int_eq(keyed_status(t, "other", &five, why), SESS_UNKNOWN);
    /* A key with a NUL and ':' inside is just bytes. */
    sess_key odd = {.str = "a\0b:c", .len = 5}, odd_short = {.str = "a", .len = 1};
    ck_assert_int_eq(sess_create_keyed(t, "m", &odd, &GRU1, NULL, NULL, NULL, why, sizeof why),
                     SESS_OK);
    ck_assert_int_eq(keyed_status(t, "m", &odd, why), SESS_OK);
    ck_assert_int_eq(keyed_status(t, "m", &odd_short, why), SESS_UNKNOWN);
    /* The internal spelling of a keyed session is no id on the v1 path. */
    expect_status(t, "v2:m", SESS_UNKNOWN, "no such session");

    char longest[SESS_KEY_MAX + 1];
    memset(longest, 'k', sizeof longest);
    sess_key ok = {.str = longest, .len = SESS_KEY_MAX},
             over = {.str = longest, .len = SESS_KEY_MAX + 1};
    ck_assert_int_eq(sess_create_keyed(t, "m", &ok, &GRU1, NULL, NULL, NULL, why, sizeof why),
                     SESS_OK);
    ck_assert_int_eq(sess_create_keyed(t, "m", &over, &GRU1, NULL, NULL, NULL, why, sizeof why),
                     SESS_INVALID);
    ck_assert_msg(strstr(why, "at most 256 bytes"), "%s", why);
    ck_assert_int_eq(keyed_status(t, "m", &over, why), SESS_INVALID);
    sess_free(t);
}
END_TEST

START_TEST(test_bad_shapes_and_models_are_refused)
{
    sess_table *t = table(4, 0, 4, NULL);
    char id[33], why[256];
    sess_shape zero_rows = {.rows = 0, .hidden = 4}, zero_h = {.rows = 1, .hidden = 0};
    sess_shape huge = {.rows = 4097, .hidden = 4};
    ck_assert_int_eq(sess_create(t, "m", &zero_rows, NULL, NULL, id, NULL, why, sizeof why),
                     SESS_INVALID);
    ck_assert_int_eq(sess_create(t, "m", &zero_h, NULL, NULL, id, NULL, why, sizeof why),
                     SESS_INVALID);
    ck_assert_int_eq(sess_create(t, "m", &huge, NULL, NULL, id, NULL, why, sizeof why),
                     SESS_INVALID);
    ck_assert_msg(strstr(why, "rows"), "%s", why);
    ck_assert_int_eq(sess_create(t, "", &GRU1, NULL, NULL, id, NULL, why, sizeof why),
                     SESS_INVALID);
    ck_assert_int_eq(sess_create(t, NULL, &GRU1, NULL, NULL, id, NULL, why, sizeof why),
                     SESS_INVALID);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.created, 0);
    sess_config none = {.max_sessions = 0};
    ck_assert_ptr_null(sess_new(&none, why, sizeof why));
    ck_assert_msg(strstr(why, "max_sessions"), "%s", why);
    sess_free(t);
}
END_TEST

/* Randomness stubs: one that the kernel lacks, one that works N times then fails, and one that
 * is interrupted and gives a byte at a time. */
static ssize_t no_random(void *buf, size_t len, unsigned flags)
{
    (void)buf, (void)len, (void)flags;
    errno = ENOSYS;
    return -1;
}

static _Thread_local int random_left;
static ssize_t random_then_none(void *buf, size_t len, unsigned flags)
{
    if (random_left-- <= 0)
        return no_random(buf, len, flags);
    memset(buf, 0x5a, len);
    return (ssize_t)len;
}

static _Thread_local unsigned stutter;
static ssize_t stuttering_random(void *buf, size_t len, unsigned flags)
{
    (void)flags;
    if (stutter++ % 3 == 0) {
        errno = EINTR;
        return -1;
    }
    *(unsigned char *)buf = (unsigned char)(stutter * 37u);
    return len ? 1 : 0;
}

START_TEST(test_no_randomness_fails_creation_with_a_clear_error)
{
    char why[256] = "", id[33];
    sess_config c = {.max_sessions = 4, .random = no_random};
    ck_assert_ptr_null(sess_new(&c, why, sizeof why));
    ck_assert_msg(strstr(why, "no randomness") && strstr(why, strerror(ENOSYS)), "%s", why);

    random_left = 1; /* the hash seed, then nothing */
    c.random = random_then_none;
    sess_table *t = sess_new(&c, why, sizeof why);
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(sess_create(t, "m", &GRU1, NULL, NULL, id, NULL, why, sizeof why), SESS_NOMEM);
    ck_assert_msg(strstr(why, "the kernel gave no randomness for a session id"), "%s", why);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.created, 0);
    sess_free(t);

    c.random = stuttering_random;
    t = sess_new(&c, why, sizeof why);
    ck_assert_ptr_nonnull(t);
    char a[33], b[33];
    create(t, "m", &GRU1, a);
    create(t, "m", &GRU1, b);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), 32);
    ck_assert_str_ne(a, b);
    sess_release(t, acquire_ok(t, a), 1, SESS_KEEP);
    sess_free(t);
}
END_TEST

/* ---- many threads */

enum { THREADS = 8 };

typedef struct {
    sess_table *t;
    int n;
    int kept;
    char (*ids)[33];
} worker;

/* Creates N sessions, steps each twice, deletes every other one. */
static void *worker_main(void *arg)
{
    worker *w = arg;
    char why[256];
    for (int i = 0; i < w->n; i++) {
        sess_ref *r = NULL;
        if (sess_create(w->t, "m", &GRU1, NULL, NULL, w->ids[i], &r, why, sizeof why) != SESS_OK)
            return "create failed";
        sess_state_h(r)[0] = (float)i;
        sess_release(w->t, r, 1, SESS_KEEP);
        if (sess_acquire(w->t, w->ids[i], &r, why, sizeof why) != SESS_OK)
            return "acquire failed";
        if (sess_state_h(r)[0] != (float)i || sess_steps(r) != 1)
            return "another thread's state";
        sess_release(w->t, r, 1, i % 2 ? SESS_DELETE : SESS_KEEP);
        w->kept += i % 2 == 0;
    }
    return NULL;
}

START_TEST(test_many_threads_creating_and_deleting_lose_and_double_nothing)
{
    int n = tu_under_valgrind() ? 200 : 2000;
    sess_table *t = table((size_t)THREADS * n, 0, (size_t)THREADS * n, NULL);
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.t = t, .n = n, .ids = malloc((size_t)n * 33)};
        ck_assert_ptr_nonnull(w[i].ids);
        ck_assert_int_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    size_t kept = 0;
    for (int i = 0; i < THREADS; i++) {
        void *err;
        pthread_join(th[i], &err);
        ck_assert_msg(err == NULL, "thread %d: %s", i, (const char *)err);
        kept += (size_t)w[i].kept;
    }
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.created, (uint64_t)THREADS * n);
    ck_assert_uint_eq(s.active, kept);
    ck_assert_uint_eq(s.ended, (uint64_t)THREADS * n - kept);
    ck_assert_uint_eq(s.held, 0);
    ck_assert_uint_eq(s.evicted + s.expired, 0);
    for (int i = 0; i < THREADS; i++) {
        for (int j = 0; j < n; j++) {
            if (j % 2) {
                expect_status(t, w[i].ids[j], SESS_ENDED, "deleted");
                continue;
            }
            sess_ref *r = acquire_ok(t, w[i].ids[j]);
            ck_assert_uint_eq(sess_steps(r), 2);
            ck_assert_float_eq(sess_state_h(r)[0], (float)j);
            sess_release(t, r, 0, SESS_KEEP);
        }
        free(w[i].ids);
    }
    sess_free(t);
}
END_TEST

typedef struct {
    sess_table *t;
    const char *id;
    int tries, ok, busy;
} contender;

/* Steps one shared session: each hold adds 1 to h[0] without atomics (the hold is exclusive). */
static void *contender_main(void *arg)
{
    contender *c = arg;
    char why[256];
    for (int i = 0; i < c->tries; i++) {
        sess_ref *r = NULL;
        sess_status st = sess_acquire(c->t, c->id, &r, why, sizeof why);
        if (st == SESS_BUSY) {
            c->busy++;
            continue;
        }
        if (st != SESS_OK)
            return "neither held nor busy";
        float v = sess_state_h(r)[0];
        sess_state_h(r)[0] = v + 1;
        c->ok++;
        sess_release(c->t, r, 1, SESS_KEEP);
    }
    return NULL;
}

START_TEST(test_many_threads_on_one_session_hold_it_one_at_a_time)
{
    sess_table *t = table(4, 0, 4, NULL);
    char id[33];
    create(t, "m", &GRU1, id);
    contender c[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        c[i] = (contender){.t = t, .id = id, .tries = tu_under_valgrind() ? 500 : 20000};
        ck_assert_int_eq(pthread_create(&th[i], NULL, contender_main, &c[i]), 0);
    }
    long ok = 0, busy = 0;
    for (int i = 0; i < THREADS; i++) {
        void *err;
        pthread_join(th[i], &err);
        ck_assert_msg(err == NULL, "thread %d: %s", i, (const char *)err);
        ok += c[i].ok;
        busy += c[i].busy;
    }
    ck_assert_int_eq(ok + busy, (long)THREADS * c[0].tries);
    sess_ref *r = acquire_ok(t, id);
    ck_assert_uint_eq(sess_steps(r), (uint64_t)ok);
    ck_assert_float_eq(sess_state_h(r)[0], (float)ok);
    sess_release(t, r, 0, SESS_KEEP);
    sess_free(t);
}
END_TEST

/* Creates, steps and drops sessions into a small table, so that eviction runs under contention. */
static void *churn_main(void *arg)
{
    worker *w = arg;
    char why[256], id[33];
    for (int i = 0; i < w->n; i++) {
        sess_ref *r = NULL;
        sess_status st = sess_create(w->t, "m", &LSTM2, NULL, NULL, id, &r, why, sizeof why);
        if (st == SESS_FULL)
            continue;
        if (st != SESS_OK)
            return "create failed";
        sess_release(w->t, r, 1, i % 5 == 0 ? SESS_DELETE : SESS_KEEP);
        st = sess_acquire(w->t, id, &r, why, sizeof why);
        if (st == SESS_OK)
            sess_release(w->t, r, 1, SESS_KEEP);
        else if (st != SESS_ENDED) /* evicted by another thread, or deleted above */
            return "a created session vanished unremembered";
    }
    return NULL;
}

START_TEST(test_many_threads_churning_a_small_table_keep_the_counts_consistent)
{
    int n = tu_under_valgrind() ? 300 : 5000;
    sess_table *t = table(16, 0, (size_t)THREADS * n, NULL);
    worker w[THREADS];
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (worker){.t = t, .n = n};
        ck_assert_int_eq(pthread_create(&th[i], NULL, churn_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *err;
        pthread_join(th[i], &err);
        ck_assert_msg(err == NULL, "thread %d: %s", i, (const char *)err);
    }
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_le(s.active, 16);
    ck_assert_uint_eq(s.held, 0);
    ck_assert_uint_eq(s.active, s.created - s.ended);
    ck_assert_uint_gt(s.evicted, 0);
    ck_assert_uint_le(s.remembered, (size_t)THREADS * n);
    ck_assert_uint_eq(s.remembered, s.ended);
    sess_free(t);
}
END_TEST

/* ---- memory */

/* ThreadSanitizer (an ad-hoc build for the thread tests above) shadows memory as ASan does. */
#if defined(__SANITIZE_THREAD__)
#define UNDER_TSAN 1
#else
#define UNDER_TSAN 0
#endif

static long rss_kb(void)
{
    size_t len = 0;
    char *s = tu_read_file("/proc/self/status", &len);
    ck_assert_ptr_nonnull(s);
    const char *p = strstr(s, "VmRSS:");
    ck_assert_ptr_nonnull(p);
    long kb = strtol(p + 6, NULL, 10);
    free(s);
    return kb;
}

/* Creates 10,000 idle sessions of shape SH and checks the RSS they add against the target:
 * 1.5 x the states' own bytes plus 1 KB per session. */
static void check_memory(const char *what, const sess_shape *sh)
{
    enum { N = 10000 };
    size_t state = (size_t)sh->rows * sh->hidden * (sh->has_cell ? 2 : 1) * sizeof(float);
    sess_table *t = table(N, 0, 4 * N, NULL);
    float *h0 = malloc(state);
    ck_assert_ptr_nonnull(h0);
    for (size_t i = 0; i < state / sizeof(float); i++)
        h0[i] = (float)i;
    long before = rss_kb();
    char id[33], why[256];
    for (int i = 0; i < N; i++)
        ck_assert_int_eq(sess_create(t, "lstm", sh, h0, h0, id, NULL, why, sizeof why), SESS_OK);
    long grown = (rss_kb() - before) * 1024;
    double limit = (1.5 * (double)state + 1024) * N;
    fprintf(stderr,
            "sessions memory: 10000 idle %s sessions (%zu state bytes each): RSS +%ld bytes, "
            "%.0f per session (target %.0f)\n",
            what, state, grown, (double)grown / N, limit / N);
    /* ASan's redzones and valgrind's own allocator measure themselves, not this table. */
    if (!TU_UNDER_ASAN && !UNDER_TSAN && !tu_under_valgrind())
        ck_assert_msg((double)grown <= limit, "%s: RSS grew %ld bytes, over %.0f", what, grown,
                      limit);
    sess_stats s;
    sess_get_stats(t, &s);
    ck_assert_uint_eq(s.active, N);
    free(h0);
    sess_free(t);
}

START_TEST(test_10000_idle_sessions_cost_little_more_than_their_states)
{
    sess_shape lstm = {.rows = 2, .hidden = 512, .has_cell = true}; /* nn.LSTM(64, 512, 2) */
    sess_shape tiny = {.rows = 1, .hidden = 4, .has_cell = true};   /* nn.LSTM(1, 4) */
    check_memory("LSTM(64, 512, num_layers=2)", &lstm);
    check_memory("LSTM(1, 4)", &tiny);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sessions");
    TCase *tc = tcase_create("sessions");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_created_session_holds_its_state_and_steps_add_up);
    tcase_add_test(tc, test_ids_are_32_lowercase_hex_characters_and_all_differ);
    tcase_add_test(tc, test_second_acquire_while_held_is_busy);
    tcase_add_test(tc, test_unknown_and_malformed_ids_are_unknown);
    tcase_add_test(tc, test_idle_session_expires_after_the_ttl_on_the_injected_clock);
    tcase_add_test(tc, test_ttl_zero_never_expires);
    tcase_add_test(tc, test_full_table_evicts_the_least_recently_used_idle_session);
    tcase_add_test(tc, test_eviction_passes_over_a_held_session);
    tcase_add_test(tc, test_session_created_held_is_neither_taken_nor_evicted_before_its_release);
    tcase_add_test(tc, test_reload_keeps_unchanged_models_and_ends_the_others_with_the_reason);
    tcase_add_test(tc, test_reload_ends_a_held_session_at_its_release);
    tcase_add_test(tc, test_deleted_session_is_remembered_as_deleted);
    tcase_add_test(tc, test_remembered_ends_are_bounded_and_old_ends_become_unknown);
    tcase_add_test(tc, test_keyed_sessions_are_created_or_reset);
    tcase_add_test(tc, test_keyed_sessions_never_meet_random_ids_or_each_other);
    tcase_add_test(tc, test_bad_shapes_and_models_are_refused);
    tcase_add_test(tc, test_no_randomness_fails_creation_with_a_clear_error);
    tcase_add_test(tc, test_many_threads_creating_and_deleting_lose_and_double_nothing);
    tcase_add_test(tc, test_many_threads_on_one_session_hold_it_one_at_a_time);
    tcase_add_test(tc, test_many_threads_churning_a_small_table_keep_the_counts_consistent);
    tcase_add_test(tc, test_10000_idle_sessions_cost_little_more_than_their_states);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
