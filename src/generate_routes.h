/* generate_routes.h - the generate route's run (generate_routes.c) open to the route that
 * generates from a session's state (session_generate.c): the same body, decoding, job and answer,
 * with the prompt's state and the end of the run handed to the caller.
 *
 * Private to the HTTP layer, like http_impl.h. */
#ifndef RNNSERVE_GENERATE_ROUTES_H
#define RNNSERVE_GENERATE_ROUTES_H

#include <stdint.h>

#include "http_impl.h"

/* Where a generation starts from when it is not the body's: one sequence's state, and who is told
 * how it ended. */
typedef struct {
    /* The state the one prompt continues from, (L*D, H) each (c0 NULL without a cell): borrowed,
     * read until the job has run. The body may then hold one prompt, and no h0 or c0. */
    const float *h0, *c0;
    /* Called exactly once per request, on whichever thread ends it, before anything is answered
     * or streamed: OK when the generation succeeded and its answer encodes, with the final states
     * HIDDEN and CELL (as h0, c0) and ADVANCED, the steps it took (the prompt's and the generated
     * ones); then ANSWER is the call whose answer is being encoded (NULL when not OK): members to
     * add go to it with api_gen_extra_fields. */
    void (*settle)(void *ctx, int ok, const float *hidden, const float *cell, uint64_t advanced,
                   api_gen_call *answer);
    void *ctx;
} gen_from;

/* Answers R (a generate body for r->model) as POST /v1/models/{name}/generate does, from FROM's
 * state when not NULL (FROM is copied; its settle is called on every path, also when this answers
 * an error at once). */
enum MHD_Result generate_from(req *r, const gen_from *from);

/* --- session_generate.c */

/* POST /v1/sessions/{id}/generate: a generation from the session's state, which advances by it. */
enum MHD_Result session_generate_handle(req *r);

#endif
