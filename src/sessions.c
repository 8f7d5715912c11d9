/* sessions.c - the session state table: live sessions in a hash table keyed by id with an LRU
 * list of the idle ones, and a bounded ring of remembered ends (id -> reason) for SESS_ENDED.
 *
 * Memory: a session is one allocation, the struct then its state floats then its key and model
 * name, so that 10,000 idle sessions cost little more than their states. Both hash tables hash
 * with SipHash under a random seed: v2 keys are chosen by clients, and a flood of colliding keys
 * must not turn lookups into list walks. Frees happen after the lock is dropped. */
#include "rnnserve/sessions.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* A remembered reason is cut to this many bytes (a reload's text comes from the caller). */
#define REASON_MAX 200

struct sess_ref {
    sess_ref *hnext;       /* hash chain */
    sess_ref *prev, *next; /* LRU list of idle sessions (most recent first); off it while held */
    uint64_t hash;
    uint64_t steps;
    int64_t used_ns;     /* creation or last release: what idle time counts from */
    int64_t acquired_ns; /* when the current holder took it */
    char *doom;          /* a reload ended it while held: the reason (NULL: none given) */
    sess_shape shape;
    uint32_t keylen;
    bool held, doomed, keyed;
    /* rows * hidden floats of h, as many of c with a cell, then the key (keylen bytes and a NUL:
     * a random id is its 32 hex characters), then the model's name. */
    float state[];
};

/* An ended session, remembered: its key and why it ended. */
typedef struct ended {
    struct ended *next; /* hash chain */
    uint64_t hash;
    size_t slot; /* its place in the ring */
    uint32_t keylen;
    char data[]; /* key, NUL, reason, NUL */
} ended;

struct sess_table {
    pthread_mutex_t mu;
    sess_config cfg;
    uint64_t k0, k1; /* SipHash key */
    sess_ref **buckets;
    size_t nbuckets, count, held;
    sess_ref *mru, *lru; /* the idle list's ends */
    ended **ebuckets;
    size_t nebuckets;
    ended **ring; /* remember_ends slots, the oldest overwritten first */
    size_t ring_pos, remembered;
    uint64_t created, ended, expired, evicted, reloaded;
};

/* ---- hashing and randomness */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = ROTL(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = ROTL(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = ROTL(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = ROTL(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = ROTL(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = ROTL(v2, 32);                                                                         \
    } while (0)

/* SipHash-1-3 of KEY[len]: a keyed hash, so collisions cannot be chosen without the seed. */
static uint64_t hash_key(const sess_table *t, const char *key, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ULL ^ t->k0, v1 = 0x646f72616e646f6dULL ^ t->k1;
    uint64_t v2 = 0x6c7967656e657261ULL ^ t->k0, v3 = 0x7465646279746573ULL ^ t->k1;
    const unsigned char *p = (const unsigned char *)key;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t m = 0;
        for (int b = 0; b < 8; b++)
            m |= (uint64_t)p[i + b] << (8 * b);
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t m = (uint64_t)len << 56;
    for (int b = 0; i < len; i++, b++)
        m |= (uint64_t)p[i] << (8 * b);
    v3 ^= m;
    SIPROUND;
    v0 ^= m;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* LEN random bytes into BUF from the kernel (or the injected source), retrying interruptions
 * and short reads. Never a weaker source: an id must stay unguessable. */
static int fill_random(const sess_config *c, void *buf, size_t len, char *why, size_t whylen)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        ssize_t n = c->random ? c->random(p + got, len - got, 0) : getrandom(p + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            snprintf(why, whylen, "the kernel gave no randomness for a session id (getrandom: %s)",
                     n < 0 ? strerror(errno) : "no bytes");
            return -1;
        }
        got += (size_t)n;
    }
    return 0;
}

static int random_id(const sess_config *c, char out[SESS_ID_LEN + 1], char *why, size_t whylen)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[SESS_ID_LEN / 2];
    if (fill_random(c, raw, sizeof raw, why, whylen) < 0)
        return -1;
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 15];
    }
    out[SESS_ID_LEN] = '\0';
    return 0;
}

static int is_random_id(const char *id)
{
    size_t i = 0;
    for (; i < SESS_ID_LEN; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
            return 0;
    return id[i] == '\0';
}

/* A keyed session's internal key, "v2:" model NUL 'u'|'s' payload, into OUT (NULL: only its
 * length). See sessions.h for why it cannot meet a random id. */
static size_t keyed_key(char *out, const char *model, const sess_key *k)
{
    size_t ml = strlen(model), n = 3 + ml + 2 + (k->str ? k->len : 8);
    if (!out)
        return n;
    memcpy(out, "v2:", 3);
    memcpy(out + 3, model, ml + 1);
    char *p = out + 3 + ml + 1;
    if (k->str) {
        *p++ = 's';
        memcpy(p, k->str, k->len);
    } else {
        *p++ = 'u';
        for (int b = 7; b >= 0; b--)
            *p++ = (char)(k->num >> (8 * b));
    }
    return n;
}

static int64_t now_ns(const sess_table *t)
{
    if (t->cfg.clock_ns)
        return t->cfg.clock_ns(t->cfg.clock_ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- one session's allocation */

static size_t state_floats(const sess_shape *sh)
{
    return (size_t)sh->rows * (size_t)sh->hidden * (sh->has_cell ? 2 : 1);
}

static char *key_of(sess_ref *s)
{
    return (char *)(s->state + state_floats(&s->shape));
}

static const char *ckey_of(const sess_ref *s)
{
    return (const char *)(s->state + state_floats(&s->shape));
}

/* Checks SH and MODEL, and returns a new session with its state set from H0/C0 and room for a
 * key of KEYLEN bytes (the caller writes it), or NULL with the reason. The caller owns it. */
static sess_ref *session_alloc(const char *model, const sess_shape *sh, const float *h0,
                               const float *c0, size_t keylen, sess_status *st, char *why,
                               size_t whylen)
{
    *st = SESS_INVALID;
    if (!model || !*model) {
        snprintf(why, whylen, "a session needs a model name");
        return NULL;
    }
    /* Bounds far past any real RNN keep the size arithmetic below from overflowing. */
    if (!sh || sh->rows < 1 || sh->hidden < 1 || sh->rows > 4096 || sh->hidden > (1 << 20)) {
        snprintf(why, whylen, "a session's state needs 1..4096 rows of 1..1048576 floats");
        return NULL;
    }
    if (keylen > UINT32_MAX / 2) {
        snprintf(why, whylen, "the session's key is too long");
        return NULL;
    }
    size_t nf = state_floats(sh), ml = strlen(model);
    sess_ref *s = malloc(sizeof *s + nf * sizeof(float) + keylen + 1 + ml + 1);
    if (!s) {
        *st = SESS_NOMEM;
        snprintf(why, whylen, "out of memory for a session's state");
        return NULL;
    }
    memset(s, 0, sizeof *s);
    s->shape = *sh;
    s->keylen = (uint32_t)keylen;
    /* Written, not calloc'ed: the pages are touched now, so RSS counts what sessions cost. */
    size_t half = (size_t)sh->rows * (size_t)sh->hidden;
    if (h0)
        memcpy(s->state, h0, half * sizeof(float));
    else
        memset(s->state, 0, half * sizeof(float));
    if (sh->has_cell) {
        if (c0)
            memcpy(s->state + half, c0, half * sizeof(float));
        else
            memset(s->state + half, 0, half * sizeof(float));
    }
    char *k = key_of(s);
    k[keylen] = '\0';
    memcpy(k + keylen + 1, model, ml + 1);
    return s;
}

static void session_free(sess_ref *s)
{
    free(s->doom);
    free(s);
}

/* Frees a list chained through hnext (ended sessions collected under the lock). */
static void free_list(sess_ref *s)
{
    while (s) {
        sess_ref *n = s->hnext;
        session_free(s);
        s = n;
    }
}

/* ---- the live table and the LRU list (lock held) */

static sess_ref **live_slot(sess_table *t, const char *key, size_t len, uint64_t h)
{
    sess_ref **p = &t->buckets[h & (t->nbuckets - 1)];
    for (; *p; p = &(*p)->hnext)
        if ((*p)->hash == h && (*p)->keylen == len && memcmp(key_of(*p), key, len) == 0)
            break;
    return p;
}

/* Doubles the bucket array when it is full. Out of memory it stays, and chains grow instead. */
static void live_grow(sess_table *t)
{
    if (t->count < t->nbuckets)
        return;
    size_t n = t->nbuckets * 2;
    sess_ref **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        for (sess_ref *s = t->buckets[i], *next; s; s = next) {
            next = s->hnext;
            s->hnext = b[s->hash & (n - 1)];
            b[s->hash & (n - 1)] = s;
        }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = n;
}

static void lru_push(sess_table *t, sess_ref *s)
{
    s->prev = NULL;
    s->next = t->mru;
    if (t->mru)
        t->mru->prev = s;
    else
        t->lru = s;
    t->mru = s;
}

static void lru_remove(sess_table *t, sess_ref *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        t->mru = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        t->lru = s->prev;
    s->prev = s->next = NULL;
}

/* ---- remembered ends (lock held) */

static ended **ended_slot(sess_table *t, const char *key, size_t len, uint64_t h)
{
    ended **p = &t->ebuckets[h & (t->nebuckets - 1)];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->keylen == len && memcmp((*p)->data, key, len) == 0)
            break;
    return p;
}

static void forget(sess_table *t, const char *key, size_t len, uint64_t h)
{
    if (!t->ring)
        return;
    ended **p = ended_slot(t, key, len, h), *e = *p;
    if (!e)
        return;
    *p = e->next;
    t->ring[e->slot] = NULL;
    t->remembered--;
    free(e);
}

/* Remembers KEY's end with REASON, forgetting the oldest end when the ring is full. Out of memory
 * the end is not remembered: its id becomes unknown, which is the worst that happens. */
static void remember(sess_table *t, const char *key, size_t len, uint64_t h, const char *reason)
{
    if (!t->ring)
        return;
    forget(t, key, len, h);
    size_t rl = strlen(reason);
    if (rl > REASON_MAX)
        rl = REASON_MAX;
    ended *e = malloc(sizeof *e + len + 1 + rl + 1);
    if (!e)
        return;
    e->hash = h;
    e->keylen = (uint32_t)len;
    memcpy(e->data, key, len);
    e->data[len] = '\0';
    memcpy(e->data + len + 1, reason, rl);
    e->data[len + 1 + rl] = '\0';
    ended *old = t->ring[t->ring_pos];
    if (old) {
        ended **p = ended_slot(t, old->data, old->keylen, old->hash);
        *p = old->next;
        t->remembered--;
        free(old);
    }
    e->slot = t->ring_pos;
    t->ring[t->ring_pos] = e;
    t->ring_pos = (t->ring_pos + 1) % t->cfg.remember_ends;
    ended **b = &t->ebuckets[h & (t->nebuckets - 1)];
    e->next = *b;
    *b = e;
    t->remembered++;
}

/* Ends S (held or idle): out of the table, remembered with REASON, onto *GARBAGE for freeing
 * after the lock. */
static void end_session(sess_table *t, sess_ref *s, const char *reason, sess_ref **garbage)
{
    sess_ref **p = live_slot(t, key_of(s), s->keylen, s->hash);
    *p = s->hnext;
    if (s->held)
        t->held--;
    else
        lru_remove(t, s);
    t->count--;
    t->ended++;
    remember(t, key_of(s), s->keylen, s->hash, reason);
    s->hnext = *garbage;
    *garbage = s;
}

/* Expires idle sessions past the TTL, oldest first (the LRU end is the longest idle). */
static size_t sweep_locked(sess_table *t, int64_t now, sess_ref **garbage)
{
    size_t n = 0;
    if (t->cfg.ttl_ns <= 0)
        return 0;
    while (t->lru && now - t->lru->used_ns >= t->cfg.ttl_ns) {
        char reason[128];
        snprintf(reason, sizeof reason, "expired after %.0f s idle (the session TTL is %g s)",
                 (double)(now - t->lru->used_ns) / 1e9, (double)t->cfg.ttl_ns / 1e9);
        t->expired++;
        end_session(t, t->lru, reason, garbage);
        n++;
    }
    return n;
}

/* ---- the table */

sess_table *sess_new(const sess_config *cfg, char *why, size_t whylen)
{
    if (!cfg || cfg->max_sessions < 1) {
        snprintf(why, whylen, "the session table needs max_sessions >= 1");
        return NULL;
    }
    sess_table *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(why, whylen, "out of memory for the session table");
        return NULL;
    }
    t->cfg = *cfg;
    if (pthread_mutex_init(&t->mu, NULL) != 0) {
        snprintf(why, whylen, "cannot create the session table's lock");
        free(t);
        return NULL;
    }
    uint64_t seed[2];
    if (fill_random(cfg, seed, sizeof seed, why, whylen) < 0)
        goto fail;
    t->k0 = seed[0];
    t->k1 = seed[1];
    t->nbuckets = 64;
    t->buckets = calloc(t->nbuckets, sizeof *t->buckets);
    if (!t->buckets)
        goto nomem;
    if (cfg->remember_ends > 0) {
        if (cfg->remember_ends > SIZE_MAX / 4 / sizeof(ended *))
            goto nomem;
        for (t->nebuckets = 16; t->nebuckets < cfg->remember_ends; t->nebuckets *= 2)
            ;
        t->ebuckets = calloc(t->nebuckets, sizeof *t->ebuckets);
        t->ring = calloc(cfg->remember_ends, sizeof *t->ring);
        if (!t->ebuckets || !t->ring)
            goto nomem;
    }
    return t;
nomem:
    snprintf(why, whylen, "out of memory for the session table");
fail:
    free(t->buckets);
    free(t->ebuckets);
    free(t->ring);
    pthread_mutex_destroy(&t->mu);
    free(t);
    return NULL;
}

void sess_free(sess_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nbuckets; i++)
        free_list(t->buckets[i]);
    for (size_t i = 0; t->ring && i < t->cfg.remember_ends; i++)
        free(t->ring[i]);
    free(t->buckets);
    free(t->ebuckets);
    free(t->ring);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

/* Puts the new session S into the table, in the place of OLD when a keyed session is reset, else
 * evicting the LRU idle session when full; held in *REF or idle. Lock held. */
static sess_status insert_locked(sess_table *t, sess_ref *s, sess_ref *old, int64_t now,
                                 sess_ref **ref, sess_ref **garbage, char *why, size_t whylen)
{
    if (old) {
        *live_slot(t, key_of(old), old->keylen, old->hash) = old->hnext;
        lru_remove(t, old);
        t->count--;
        t->ended++;
        old->hnext = *garbage;
        *garbage = old;
    } else if (t->count >= t->cfg.max_sessions) {
        if (!t->lru) {
            snprintf(why, whylen,
                     "the session table is full: all %zu sessions have a request running",
                     t->count);
            return SESS_FULL;
        }
        char reason[160];
        snprintf(reason, sizeof reason,
                 "evicted as the least recently used idle session when the table was full "
                 "(max_sessions %zu)",
                 t->cfg.max_sessions);
        t->evicted++;
        end_session(t, t->lru, reason, garbage);
    }
    sess_ref **b = &t->buckets[s->hash & (t->nbuckets - 1)];
    s->hnext = *b;
    *b = s;
    t->count++;
    t->created++;
    s->used_ns = s->acquired_ns = now;
    if (ref) {
        s->held = true;
        t->held++;
        *ref = s;
    } else {
        lru_push(t, s);
    }
    live_grow(t);
    return SESS_OK;
}

sess_status sess_create(sess_table *t, const char *model, const sess_shape *sh, const float *h0,
                        const float *c0, char id_out[SESS_ID_LEN + 1], sess_ref **ref, char *why,
                        size_t whylen)
{
    sess_status st;
    if (ref)
        *ref = NULL;
    sess_ref *s = session_alloc(model, sh, h0, c0, SESS_ID_LEN, &st, why, whylen), *garbage = NULL;
    if (!s)
        return st;
    char *key = key_of(s);
    if (random_id(&t->cfg, key, why, whylen) < 0) {
        session_free(s);
        return SESS_NOMEM;
    }
    pthread_mutex_lock(&t->mu);
    int64_t now = now_ns(t);
    sweep_locked(t, now, &garbage);
    /* 2^-128 per pair, but a duplicate would hand one client another's state: draw again. */
    for (;;) {
        s->hash = hash_key(t, key, SESS_ID_LEN);
        if (!*live_slot(t, key, SESS_ID_LEN, s->hash))
            break;
        if (random_id(&t->cfg, key, why, whylen) < 0) {
            st = SESS_NOMEM;
            goto fail;
        }
    }
    /* A remembered end under the same id is someone else's (as unlikely): it is over. */
    forget(t, key, SESS_ID_LEN, s->hash);
    st = insert_locked(t, s, NULL, now, ref, &garbage, why, whylen);
    if (st != SESS_OK)
        goto fail;
    if (id_out)
        memcpy(id_out, key, SESS_ID_LEN + 1);
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    return SESS_OK;
fail:
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    session_free(s);
    return st;
}

static sess_status check_key(const sess_key *key, char *why, size_t whylen)
{
    if (!key || (key->str && key->len > SESS_KEY_MAX)) {
        snprintf(why, whylen, "a sequence_id string may hold at most %d bytes", SESS_KEY_MAX);
        return SESS_INVALID;
    }
    return SESS_OK;
}

sess_status sess_create_keyed(sess_table *t, const char *model, const sess_key *key,
                              const sess_shape *sh, const float *h0, const float *c0,
                              sess_ref **ref, char *why, size_t whylen)
{
    if (ref)
        *ref = NULL;
    sess_status st = check_key(key, why, whylen);
    if (st != SESS_OK)
        return st;
    if (!model || !*model) {
        snprintf(why, whylen, "a session needs a model name");
        return SESS_INVALID;
    }
    size_t kl = keyed_key(NULL, model, key);
    sess_ref *s = session_alloc(model, sh, h0, c0, kl, &st, why, whylen), *garbage = NULL;
    if (!s)
        return st;
    char *k = key_of(s);
    keyed_key(k, model, key);
    s->keyed = true;
    pthread_mutex_lock(&t->mu);
    int64_t now = now_ns(t);
    sweep_locked(t, now, &garbage);
    s->hash = hash_key(t, k, kl);
    sess_ref *old = *live_slot(t, k, kl, s->hash);
    if (old && old->held) {
        snprintf(why, whylen, "a request on this sequence is still running");
        st = SESS_BUSY;
        goto fail;
    }
    forget(t, k, kl, s->hash);
    st = insert_locked(t, s, old, now, ref, &garbage, why, whylen);
    if (st != SESS_OK)
        goto fail;
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    return SESS_OK;
fail:
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    session_free(s);
    return st;
}

static sess_status acquire_locked(sess_table *t, const char *key, size_t len, sess_ref **ref,
                                  char *why, size_t whylen)
{
    uint64_t h = hash_key(t, key, len);
    sess_ref *s = *live_slot(t, key, len, h);
    if (s && s->doomed) {
        snprintf(why, whylen, "%s", s->doom ? s->doom : "ended by a reload");
        return SESS_ENDED;
    }
    if (s && s->held) {
        snprintf(why, whylen, "a request on this session is still running");
        return SESS_BUSY;
    }
    if (s) {
        lru_remove(t, s);
        s->held = true;
        s->acquired_ns = now_ns(t);
        t->held++;
        *ref = s;
        return SESS_OK;
    }
    ended *e = t->ring ? *ended_slot(t, key, len, h) : NULL;
    if (e) {
        snprintf(why, whylen, "%s", e->data + e->keylen + 1);
        return SESS_ENDED;
    }
    snprintf(why, whylen, "no such session");
    return SESS_UNKNOWN;
}

sess_status sess_acquire(sess_table *t, const char *id, sess_ref **ref, char *why, size_t whylen)
{
    *ref = NULL;
    if (!id || !is_random_id(id)) {
        snprintf(why, whylen, "no such session");
        return SESS_UNKNOWN;
    }
    sess_ref *garbage = NULL;
    pthread_mutex_lock(&t->mu);
    sweep_locked(t, now_ns(t), &garbage);
    sess_status st = acquire_locked(t, id, SESS_ID_LEN, ref, why, whylen);
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    return st;
}

sess_status sess_acquire_keyed(sess_table *t, const char *model, const sess_key *key,
                               sess_ref **ref, char *why, size_t whylen)
{
    *ref = NULL;
    sess_status st = check_key(key, why, whylen);
    if (st != SESS_OK)
        return st;
    if (!model || !*model) {
        snprintf(why, whylen, "no such session");
        return SESS_UNKNOWN;
    }
    size_t kl = keyed_key(NULL, model, key);
    char *k = malloc(kl);
    if (!k) {
        snprintf(why, whylen, "out of memory");
        return SESS_NOMEM;
    }
    keyed_key(k, model, key);
    sess_ref *garbage = NULL;
    pthread_mutex_lock(&t->mu);
    sweep_locked(t, now_ns(t), &garbage);
    st = acquire_locked(t, k, kl, ref, why, whylen);
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    free(k);
    return st;
}

float *sess_state_h(sess_ref *r)
{
    return r->state;
}

float *sess_state_c(sess_ref *r)
{
    return r->shape.has_cell ? r->state + (size_t)r->shape.rows * (size_t)r->shape.hidden : NULL;
}

const char *sess_model(const sess_ref *r)
{
    return ckey_of(r) + r->keylen + 1;
}

const sess_shape *sess_shape_of(const sess_ref *r)
{
    return &r->shape;
}

const char *sess_id(const sess_ref *r)
{
    return r->keyed ? NULL : ckey_of(r);
}

uint64_t sess_steps(const sess_ref *r)
{
    return r->steps;
}

double sess_idle_s(const sess_ref *r)
{
    return (double)(r->acquired_ns - r->used_ns) / 1e9;
}

double sess_ttl_s(const sess_table *t)
{
    return t->cfg.ttl_ns > 0 ? (double)t->cfg.ttl_ns / 1e9 : 0.0;
}

void sess_release(sess_table *t, sess_ref *r, uint64_t advanced, sess_end how)
{
    sess_ref *garbage = NULL;
    pthread_mutex_lock(&t->mu);
    int64_t now = now_ns(t);
    r->steps += advanced;
    r->used_ns = now;
    if (r->doomed) {
        t->reloaded++;
        end_session(t, r, r->doom ? r->doom : "ended by a reload", &garbage);
    } else if (how != SESS_KEEP) {
        end_session(t, r,
                    how == SESS_DELETE ? "deleted by its client"
                                       : "ended by its client (sequence_end)",
                    &garbage);
    } else {
        r->held = false;
        t->held--;
        lru_push(t, r);
    }
    sweep_locked(t, now, &garbage);
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
}

size_t sess_reload(sess_table *t,
                   bool (*keep)(const char *model, const sess_shape *sh, char *why, size_t whylen,
                                void *ctx),
                   void *ctx)
{
    sess_ref *garbage = NULL;
    size_t n = 0;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < t->nbuckets; i++)
        for (sess_ref *s = t->buckets[i], *next; s; s = next) {
            next = s->hnext;
            if (s->doomed)
                continue;
            char why[REASON_MAX + 1];
            snprintf(why, sizeof why, "ended by a reload of model \"%s\"", sess_model(s));
            if (keep(sess_model(s), &s->shape, why, sizeof why, ctx))
                continue;
            n++;
            if (s->held) {
                s->doomed = true;
                s->doom = strdup(why); /* NULL: the generic reason is said instead */
            } else {
                t->reloaded++;
                end_session(t, s, why, &garbage);
            }
        }
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    return n;
}

size_t sess_sweep(sess_table *t)
{
    sess_ref *garbage = NULL;
    pthread_mutex_lock(&t->mu);
    size_t n = sweep_locked(t, now_ns(t), &garbage);
    pthread_mutex_unlock(&t->mu);
    free_list(garbage);
    return n;
}

void sess_get_stats(sess_table *t, sess_stats *s)
{
    pthread_mutex_lock(&t->mu);
    s->active = t->count;
    s->held = t->held;
    s->remembered = t->remembered;
    s->created = t->created;
    s->ended = t->ended;
    s->expired = t->expired;
    s->evicted = t->evicted;
    s->reloaded = t->reloaded;
    pthread_mutex_unlock(&t->mu);
}
