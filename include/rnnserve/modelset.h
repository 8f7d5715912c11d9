/* modelset.h - the models being served, their cached metadata bodies, and hot reload.
 *
 * A set is reference-counted: a request holds one from its first callback to its completion, so
 * a reload swaps a new set in at any moment and the old one is freed by its last request. */
#ifndef RNNSERVE_MODELSET_H
#define RNNSERVE_MODELSET_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "rnnserve/config.h"
#include "rnnserve/model.h"

typedef struct {
    atomic_long refs;
    cfg_config *own_cfg; /* the config a reload read (freed with the set); NULL at start */
    rnn_model **models;  /* models[0] is the default (POST /forward) */
    size_t n_models;
    char **meta; /* per model: GET /v1/models/{name} body */
    size_t *meta_len;
    char **v2meta; /* per model: GET /v2/models/{name} body */
    size_t *v2meta_len;
    char *list; /* GET /v1/models body */
    size_t list_len;
} modelset;

/* Loads every model of CFG (borrowed) with its metadata bodies. Returns a set holding one
 * reference, or NULL with the reason in err[errlen]. */
modelset *modelset_load(const cfg_config *cfg, char *err, size_t errlen);

/* Drops a reference; the last one frees the set. NULL is allowed. */
void modelset_release(modelset *m);

/* The model named by the LEN bytes at NAME, its index in *idx (IDX may be NULL); NULL if none. */
const rnn_model *modelset_find(const modelset *m, const char *name, size_t len, size_t *idx);

/* The set currently served, swapped whole by a reload. */
typedef struct {
    modelset *cur; /* guarded by mu */
    pthread_mutex_t mu;
    pthread_mutex_t reload; /* one reload at a time (SIGHUP and the admin route) */
    /* for the metrics: reloads by result, and when the last one succeeded */
    _Atomic uint64_t reloads_ok, reloads_failed;
    _Atomic uint64_t last_reload_ns; /* CLOCK_REALTIME, ns since the epoch; 0: none yet */
} modelset_slot;

/* Takes over FIRST's reference. */
void modelset_slot_init(modelset_slot *slot, modelset *first);
/* The current set, with a new reference for the caller (modelset_release it). */
modelset *modelset_slot_get(modelset_slot *slot);
/* Loads the models of the config at PATH and swaps them in; on any error (-1, reason in
 * err[errlen]) the current set keeps serving. */
int modelset_slot_reload(modelset_slot *slot, const char *path, char *err, size_t errlen);
/* Releases the current set. */
void modelset_slot_destroy(modelset_slot *slot);

#endif
