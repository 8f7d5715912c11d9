/* modelset.c - the models being served, their cached metadata bodies, and hot reload.
 *
 * Metadata bodies are built once per load, so the metadata routes answer with PERSISTENT
 * buffers that point into the set: the reference a request holds keeps them alive. */
#include "rnnserve/modelset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/api.h"

static void set_free(modelset *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->n_models; i++) {
        rnn_model_free(m->models[i]);
        free(m->meta[i]);
        free(m->v2meta[i]);
    }
    free(m->models);
    free(m->meta);
    free(m->meta_len);
    free(m->v2meta);
    free(m->v2meta_len);
    free(m->list);
    cfg_free(m->own_cfg);
    free(m);
}

modelset *modelset_load(const cfg_config *cfg, char *err, size_t errlen)
{
    char msg[1024];
    const rnn_info **infos = NULL;
    modelset *m = calloc(1, sizeof *m);
    size_t n = cfg->n_models;
    if (!m || !(m->models = calloc(n, sizeof *m->models)) ||
        !(m->meta = calloc(n, sizeof *m->meta)) ||
        !(m->meta_len = calloc(n, sizeof *m->meta_len)) ||
        !(m->v2meta = calloc(n, sizeof *m->v2meta)) ||
        !(m->v2meta_len = calloc(n, sizeof *m->v2meta_len)) || !(infos = calloc(n, sizeof *infos)))
        goto oom;
    atomic_init(&m->refs, 1);
    m->n_models = n;
    for (size_t i = 0; i < n; i++) {
        if (rnn_model_load(&cfg->models[i], &m->models[i], msg, sizeof msg) < 0) {
            snprintf(err, errlen, "model \"%s\": %s", cfg->models[i].name, msg);
            goto fail;
        }
        infos[i] = rnn_model_info(m->models[i]);
        if (!(m->meta[i] = api_model_metadata(api_wire_v1(), infos[i], i == 0, &m->meta_len[i])) ||
            !(m->v2meta[i] = api_model_metadata(api_wire_v2(), infos[i], 0, &m->v2meta_len[i])))
            goto oom;
    }
    if (!(m->list = api_models_list(infos, n, &m->list_len)))
        goto oom;
    free(infos);
    return m;
oom:
    snprintf(err, errlen, "out of memory loading the models");
fail:
    free(infos);
    set_free(m);
    return NULL;
}

void modelset_release(modelset *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1)
        set_free(m);
}

const rnn_model *modelset_find(const modelset *m, const char *name, size_t len, size_t *idx)
{
    for (size_t i = 0; i < m->n_models; i++) {
        const char *n = rnn_model_info(m->models[i])->name;
        if (strlen(n) == len && memcmp(n, name, len) == 0) {
            if (idx)
                *idx = i;
            return m->models[i];
        }
    }
    return NULL;
}

void modelset_slot_init(modelset_slot *slot, modelset *first)
{
    slot->cur = first;
    pthread_mutex_init(&slot->mu, NULL);
    pthread_mutex_init(&slot->reload, NULL);
    atomic_init(&slot->reloads_ok, 0);
    atomic_init(&slot->reloads_failed, 0);
    atomic_init(&slot->last_reload_ns, 0);
}

modelset *modelset_slot_get(modelset_slot *slot)
{
    pthread_mutex_lock(&slot->mu);
    modelset *m = slot->cur;
    atomic_fetch_add(&m->refs, 1);
    pthread_mutex_unlock(&slot->mu);
    return m;
}

int modelset_slot_reload(modelset_slot *slot, const char *path, char *err, size_t errlen)
{
    cfg_config *cfg = NULL;
    char msg[1024];
    int rc = -1;
    pthread_mutex_lock(&slot->reload);
    if (cfg_load_file(path, &cfg, msg, sizeof msg) < 0) {
        snprintf(err, errlen, "%s", msg);
        goto done;
    }
    /* Everything is loaded and checked before anything is swapped: on any error the old models
     * keep serving. */
    modelset *m = modelset_load(cfg, err, errlen);
    if (!m) {
        cfg_free(cfg);
        goto done;
    }
    m->own_cfg = cfg;
    pthread_mutex_lock(&slot->mu);
    modelset *old = slot->cur;
    slot->cur = m;
    pthread_mutex_unlock(&slot->mu);
    modelset_release(old); /* freed when its last in-flight request completes */
    rc = 0;
done:
    if (rc == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        atomic_store(&slot->last_reload_ns,
                     (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
    }
    atomic_fetch_add(rc == 0 ? &slot->reloads_ok : &slot->reloads_failed, 1);
    pthread_mutex_unlock(&slot->reload);
    return rc;
}

void modelset_slot_destroy(modelset_slot *slot)
{
    modelset_release(slot->cur);
    slot->cur = NULL;
    pthread_mutex_destroy(&slot->mu);
    pthread_mutex_destroy(&slot->reload);
}
