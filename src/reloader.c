/* reloader.c - hot reload of the served models: the swap with what it means for sessions, and
 * the thread that runs POST /v1/admin/reload off the I/O threads, one reload at a time.
 *
 * Loading a model can take seconds, so the admin route's connection waits suspended while this
 * thread loads; SIGHUP (serve.c, through srv_reload) runs the same swap on the main thread. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_impl.h"
#include "session_routes.h"

int reloader_reload(srv *s, const char *config_path, char *err, size_t errlen)
{
    if (modelset_slot_reload(&s->models, config_path, err, errlen) < 0)
        return -1;
    /* Sessions whose model kept its name and state shape go on with the new weights. Two
     * reloads at once may ask in either order; each asks about the set current after its swap. */
    modelset *m = modelset_slot_get(&s->models);
    sr_reload(s, m);
    modelset_release(m);
    return 0;
}

static void *reloader_main(void *arg);

int reloader_start(srv *s, char *err, size_t errlen)
{
    int e = pthread_create(&s->reloader, NULL, reloader_main, s);
    if (e != 0) {
        snprintf(err, errlen, "cannot start the reloader thread: %s", strerror(e));
        return -1;
    }
    s->reloader_running = 1;
    return 0;
}

/* The reloader thread: one admin reload at a time, each resumed when done. At a stop, the
 * reloads still waiting are refused (rc -1) rather than run. */
static void *reloader_main(void *arg)
{
    srv *s = arg;
    pthread_mutex_lock(&s->rl_mu);
    for (;;) {
        while (!s->rl_head && !s->rl_stop)
            pthread_cond_wait(&s->rl_cv, &s->rl_mu);
        req *r = s->rl_head;
        if (!r)
            break; /* stopping, and nothing waits */
        s->rl_head = r->rl_next;
        if (!s->rl_head)
            s->rl_tail = NULL;
        int stopping = s->rl_stop;
        pthread_mutex_unlock(&s->rl_mu);
        char err[1024] = "the server is shutting down";
        r->reload_rc = stopping ? -1 : reloader_reload(s, s->cfg->path, err, sizeof err);
        if (r->reload_rc < 0)
            r->reload_err = strdup(err);
        /* MHD's resume lock orders these writes before the I/O thread reads them. */
        MHD_resume_connection(r->conn);
        pthread_mutex_lock(&s->rl_mu);
    }
    pthread_mutex_unlock(&s->rl_mu);
    return NULL;
}

int reloader_submit(srv *s, req *r)
{
    pthread_mutex_lock(&s->rl_mu);
    if (s->rl_stop || !s->reloader_running) {
        pthread_mutex_unlock(&s->rl_mu);
        return -1;
    }
    r->reloading = 1;
    r->rl_next = NULL;
    MHD_suspend_connection(r->conn);
    if (s->rl_tail)
        s->rl_tail->rl_next = r;
    else
        s->rl_head = r;
    s->rl_tail = r;
    pthread_cond_signal(&s->rl_cv);
    pthread_mutex_unlock(&s->rl_mu);
    return 0;
}

/* Stops the reloader once the reloads waiting are answered (MHD must not stop with one of
 * their connections suspended). */
void reloader_stop(srv *s)
{
    pthread_mutex_lock(&s->rl_mu);
    s->rl_stop = 1;
    pthread_cond_signal(&s->rl_cv);
    pthread_mutex_unlock(&s->rl_mu);
    if (s->reloader_running)
        pthread_join(s->reloader, NULL);
    s->reloader_running = 0;
}
