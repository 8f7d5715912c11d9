/* sessions.h - the session state table: each session holds one sequence's recurrent state (h, and c
 * for an LSTM) for a model between requests, so that a client can feed a sequence a few steps at a
 * time. It knows nothing of HTTP, JSON or the engine: a model is a name and a state shape.
 *
 * Identity. A session made by sess_create has a random id: 128 bits from getrandom(2), written as
 * 32 lowercase hex characters (never a weaker source: creation fails when the kernel gives none).
 * A keyed session (the Open Inference Protocol's sequence_id, a uint64 or a string of at most
 * SESS_KEY_MAX bytes) lives in its own namespace: internally its key is "v2:" + the model's name
 * + NUL + 'u' (8 big-endian bytes) or 's' (the string's bytes). No random id holds ':' and
 * sess_acquire takes only 32 hex characters, so a key can never collide with, nor look up, a
 * random id; and keys are per model, as Triton's sequence batcher keeps them.
 *
 * Lifetime. A session lives until it is ended: by its client (sess_release with an end), by
 * expiry (idle longer than the TTL; idle time restarts at each release), by eviction (the table
 * is full and it is the least recently used idle session), or by a reload that does not keep its
 * model's shape. The last sess_config.remember_ends ends are remembered with their reason, so
 * that "it ended, and why" (HTTP 410) is told from "never heard of it" (404) while memory stays
 * bounded: older ends are forgotten, and then they are unknown.
 *
 * Threads. Every function is safe from any thread. A session is held by at most one request at a
 * time (sess_acquire .. sess_release); its holder reads and writes the state outside the table's
 * lock. */
#ifndef RNNSERVE_SESSIONS_H
#define RNNSERVE_SESSIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The longest string sequence_id a keyed session takes, in bytes. */
#define SESS_KEY_MAX 256
/* Characters of a random id, without its NUL. */
#define SESS_ID_LEN 32

typedef struct sess_table sess_table;
/* A held session: valid from a successful sess_acquire (or a create that returns one) until the
 * sess_release that hands it back. */
typedef struct sess_ref sess_ref;

typedef struct {
    size_t max_sessions;  /* live sessions at most (>= 1); then the LRU idle one is evicted */
    int64_t ttl_ns;       /* idle time before expiry; <= 0: sessions never expire */
    size_t remember_ends; /* ended sessions remembered for SESS_ENDED (0: none; e.g. 4 x max) */
    /* The clock for idle times; NULL: CLOCK_MONOTONIC. Tests inject their own. */
    int64_t (*clock_ns)(void *ctx);
    void *clock_ctx;
    /* The randomness for ids and the hash seed; NULL: getrandom(2). Same contract as getrandom
     * (flags 0): may return fewer bytes or fail with errno EINTR, and both are retried. Tests
     * inject a failing or stuttering one. */
    ssize_t (*random)(void *buf, size_t len, unsigned flags);
} sess_config;

/* A session's state shape: ROWS (num_layers * num_directions) rows of HIDDEN floats, for h, and
 * as many again for c when HAS_CELL (LSTM). */
typedef struct {
    int rows, hidden;
    bool has_cell;
} sess_shape;

typedef enum {
    SESS_OK,
    SESS_UNKNOWN, /* no such session, or it ended too long ago to remember (HTTP 404) */
    SESS_ENDED,   /* expired, evicted, ended by a reload or by its client: WHY says which (410) */
    SESS_BUSY,    /* a request holds it (409) */
    SESS_FULL,    /* the table is full and every session is busy (503) */
    SESS_INVALID, /* a bad argument: a shape, a key too long (400) */
    SESS_NOMEM    /* out of memory, or no randomness for an id (500) */
} sess_status;

/* How sess_release hands a session back. */
typedef enum {
    SESS_KEEP,        /* it stays, idle, for the next request */
    SESS_DELETE,      /* it ends, remembered as "deleted by its client" (DELETE) */
    SESS_END_SEQUENCE /* it ends, remembered as "ended by its client" (v2 sequence_end) */
} sess_end;

/* A keyed session's sequence_id: the string STR[LEN] (any bytes), or the uint64 NUM when STR is
 * NULL. A string and a number never name the same session ("5" is not 5). */
typedef struct {
    const char *str;
    size_t len;
    uint64_t num;
} sess_key;

/* A new empty table, or NULL with the reason in why[whylen] (bad config, out of memory, no
 * randomness for the hash seed). CFG is copied. Free with sess_free. */
sess_table *sess_new(const sess_config *cfg, char *why, size_t whylen);

/* Frees T and every session in it. No session may be held. NULL is allowed. */
void sess_free(sess_table *t);

/* Creates a session of MODEL (copied) with state shape SH, its h set from H0 and c from C0
 * (rows * hidden floats each, copied; NULL: zeros; C0 is ignored without a cell), and writes its
 * id to id_out (32 hex characters and a NUL; NULL: not wanted). When the table is full it evicts
 * the least recently used idle session, never a busy one: SESS_FULL when all are busy. When REF is
 * not NULL the new session comes back held in *REF (the caller releases it), so no other request
 * can take or evict it first (*REF is NULL on failure). Other than SESS_OK: nothing is created, WHY
 * says why. */
sess_status sess_create(sess_table *t, const char *model, const sess_shape *sh, const float *h0,
                        const float *c0, char id_out[SESS_ID_LEN + 1], sess_ref **ref, char *why,
                        size_t whylen);

/* Creates, or resets when it exists, the keyed session KEY of MODEL (v2 sequence_start): as
 * sess_create, but a reset replaces the old session's state, shape and step count in place of
 * taking a new place in the table (SESS_BUSY when a request holds the old one). A remembered end
 * of the key is forgotten: the key is alive again. */
sess_status sess_create_keyed(sess_table *t, const char *model, const sess_key *key,
                              const sess_shape *sh, const float *h0, const float *c0,
                              sess_ref **ref, char *why, size_t whylen);

/* Takes the session ID (32 lowercase hex characters; anything else is unknown) for one request:
 * *REF is the caller's until sess_release. SESS_BUSY while another request holds it,
 * SESS_UNKNOWN when there is no such session, SESS_ENDED with the reason in WHY when it ended
 * and is still remembered (or a reload ended it while it was held). */
sess_status sess_acquire(sess_table *t, const char *id, sess_ref **ref, char *why, size_t whylen);

/* sess_acquire for the keyed session KEY of MODEL (a v2 request without sequence_start). */
sess_status sess_acquire_keyed(sess_table *t, const char *model, const sess_key *key,
                               sess_ref **ref, char *why, size_t whylen);

/* The held session's state: rows * hidden floats each, the caller's to read and write until
 * sess_release; sess_state_c is NULL without a cell. Write them only when the request succeeds:
 * nothing restores them. */
float *sess_state_h(sess_ref *r);
float *sess_state_c(sess_ref *r);
/* The session's model name and shape (the session's, valid while held). */
const char *sess_model(const sess_ref *r);
const sess_shape *sess_shape_of(const sess_ref *r);
/* Its 32-character id; NULL for a keyed session (its client knows its sequence_id). */
const char *sess_id(const sess_ref *r);
/* Steps taken so far (the sum of sess_release's ADVANCED). */
uint64_t sess_steps(const sess_ref *r);
/* Seconds it had been idle when this request took it (since its creation or last release). */
double sess_idle_s(const sess_ref *r);
/* The TTL in seconds (0: never expires). Every release restarts the idle clock, so a session
 * just released expires in this many seconds unless it is used again. */
double sess_ttl_s(const sess_table *t);

/* Hands R back: ADVANCED steps are added to its count (0 when the request failed). HOW says
 * whether it stays or ends. A session a reload ended while R was held ends now, whatever HOW.
 * R is invalid afterwards. */
void sess_release(sess_table *t, sess_ref *r, uint64_t advanced, sess_end how);

/* Hot reload: asks KEEP(model, shape, why, whylen, ctx) about each session whether it survives
 * (the model still exists with the same name and shapes). The others end, remembered with the
 * reason KEEP wrote in WHY (e.g. "ended by a reload that changed model \"x\"'s shape"); a held
 * one is marked, answers SESS_ENDED from now on, and ends at its release. KEEP runs under the
 * table's lock: it must not call back into T. Returns how many ended or were marked. */
size_t sess_reload(sess_table *t,
                   bool (*keep)(const char *model, const sess_shape *sh, char *why, size_t whylen,
                                void *ctx),
                   void *ctx);

/* Expires the idle sessions past the TTL, and returns how many. Every other call does the same
 * on its way (so a table nobody calls keeps its sessions until the next call: call this from a
 * timer to free their memory on time). */
size_t sess_sweep(sess_table *t);

typedef struct {
    size_t active;     /* live sessions (held or idle) */
    size_t held;       /* of which a request holds */
    size_t remembered; /* ended sessions remembered for SESS_ENDED */
    /* Counters since sess_new. ENDED counts every end, whatever its cause (so active = created -
     * ended); EXPIRED, EVICTED and RELOADED count the ends of those causes. A keyed session's
     * reset counts as an end and a creation. */
    uint64_t created, ended, expired, evicted, reloaded;
} sess_stats;
void sess_get_stats(sess_table *t, sess_stats *s);

#endif
