/* routes.h - the HTTP surface as data: every route rnnserve serves, read-only.
 *
 * One row per route (src/routes.c) decides dispatch, 404/405/Allow, preflights, which requests
 * keep a body, the API-key check and the metrics label; tests read the same rows. */
#ifndef RNNSERVE_ROUTES_H
#define RNNSERVE_ROUTES_H

#include <stddef.h>

/* A route's methods; GET implies HEAD. */
enum { ROUTE_GET = 1u, ROUTE_POST = 2u, ROUTE_DELETE = 4u };

typedef struct {
    const char *pattern; /* literal segments and at most one {name} (a model) or {id} (a
                            session): "/v1/models/{name}/forward" */
    unsigned methods;    /* ROUTE_GET | ROUTE_POST | ROUTE_DELETE */
    const char *label;   /* the metrics' route label, e.g. "forward" */
} routes_entry;

size_t routes_count(void);
/* Row I (< routes_count()); the table is static. */
const routes_entry *routes_at(size_t i);

#endif
