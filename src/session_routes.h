/* session_routes.h - the HTTP face of the session table (sessions.h): the /v1/sessions routes,
 * the Open Inference Protocol's sequence extension on /v2/models/{name}/infer, the sessions'
 * metrics families, and what a reload keeps.
 *
 * Private to the HTTP layer (routes.c, server.c), like http_impl.h. */
#ifndef RNNSERVE_SESSION_ROUTES_H
#define RNNSERVE_SESSION_ROUTES_H

#include "http_impl.h"

/* POST /v1/models/{name}/sessions: 201 with the new session (optional body {"h0", "c0"}). */
enum MHD_Result sr_create(req *r);
/* POST /v1/sessions/{id}/forward: one step of the session through the compute hand-off. */
enum MHD_Result sr_forward(req *r);
/* GET /v1/sessions/{id} (the state) and DELETE /v1/sessions/{id} (the final state; it ends). */
enum MHD_Result sr_state(req *r);
/* POST /v2/models/{name}/infer: a plain inference, or a step of the keyed session its
 * parameters.sequence_id names. */
enum MHD_Result sr_v2_infer(req *r);

/* TEXT (malloc'ed, LEN bytes, a Prometheus exposition) with the sessions' families appended
 * (rnnserve_sessions_active, _created_total, _ended_total, _expired_total, _evicted_total):
 * a new malloc'ed text, TEXT freed either way; NULL when out of memory. */
char *sr_metrics_append(srv *s, char *text, size_t *len);

/* After a reload swapped SET in: the sessions whose model keeps its name and state shape stay
 * (their next step runs the new weights), the others end, remembered with the reason. Returns
 * how many ended. */
size_t sr_reload(srv *s, const modelset *set);

#endif
