/* metrics_dump.c - prints a sample /metrics page made by metrics_render, for feeding to
 * `promtool check metrics` without a running server.
 *
 * Build: gcc -std=c11 -D_GNU_SOURCE -Iinclude -o /tmp/metrics_dump tests/tools/metrics_dump.c
 *        src/metrics.c
 * Usage: /tmp/metrics_dump | promtool check metrics */
#include <stdio.h>
#include <stdlib.h>

#include "rnnserve/metrics.h"

int main(void)
{
    const char *routes[] = {"forward", "models", "healthz"};
    metrics *m =
        metrics_new(routes, 3, "version=\"0.1.0\",libmicrohttpd=\"0.9.75\",cc=\"gcc \"12\"\\x\"");
    if (!m) {
        fprintf(stderr, "metrics_dump: out of memory\n");
        return EXIT_FAILURE;
    }
    metrics_inflight_add(m, 1);
    metrics_observe(m, 0, 200, 0.0012, 2, 17);
    metrics_observe(m, 0, 200, 0.004, 1, 3);
    metrics_observe(m, 0, 422, 0.0001, 0, 0);
    metrics_observe(m, 0, 418, 0.00003, 0, 0);
    metrics_observe(m, 1, 200, 0.0002, 0, 0);
    metrics_observe(m, 2, 200, 12.5, 0, 0);

    size_t len;
    char *text = metrics_render(m, &len);
    metrics_free(m);
    if (!text) {
        fprintf(stderr, "metrics_dump: out of memory\n");
        return EXIT_FAILURE;
    }
    fwrite(text, 1, len, stdout);
    free(text);
    return EXIT_SUCCESS;
}
