/* cli.c - `rnnserve check` and `rnnserve forward`: config and codec on stdin/stdout.
 *
 * Owns nothing but the plumbing between files and the modules below; the answers come from the
 * same codec and engine the HTTP server uses. */
#include "rnnserve/cli.h"

#include <stdlib.h>
#include <string.h>

#include "rnnserve/api.h"
#include "rnnserve/config.h"
#include "rnnserve/model.h"

int cli_check(const char *config_path, FILE *out, FILE *err)
{
    char msg[1024];
    cfg_config *cfg = NULL;
    if (cfg_load_file(config_path, &cfg, msg, sizeof msg) < 0) {
        fprintf(err, "rnnserve: %s\n", msg);
        return 1;
    }
    int rc = 0;
    for (size_t i = 0; i < cfg->n_models && rc == 0; i++) {
        const cfg_model *cm = &cfg->models[i];
        rnn_model *m = NULL;
        if (rnn_model_load(cm, &m, msg, sizeof msg) < 0) {
            fprintf(err, "rnnserve: model \"%s\": %s\n", cm->name, msg);
            rc = 1;
            break;
        }
        char line[256];
        rnn_info_summary(rnn_model_info(m), line, sizeof line);
        fprintf(out, "%s: %s (%s)%s\n", cm->name, line,
                cm->weights_path ? cm->weights_path : "inline weights", i == 0 ? " [default]" : "");
        rnn_model_free(m);
    }
    cfg_free(cfg);
    return rc;
}

/* Reads all of IN into a new buffer; NULL when out of memory or on a read error. */
static char *read_all(FILE *in, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + n, 1, cap - n, in);
        n += got;
        if (got == 0)
            break;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
    }
    if (buf && ferror(in)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

/* Writes the contract's error JSON to OUT and the message to ERR. */
static int report(FILE *out, FILE *err, int status, const char *msg)
{
    size_t len;
    char *body = api_error_body(api_wire_v1(), status, msg, &len);
    if (body) {
        fwrite(body, 1, len, out);
        fputc('\n', out);
    }
    free(body);
    fprintf(err, "rnnserve: %s\n", msg);
    return 1;
}

int cli_forward(const char *config_path, const char *model, FILE *in, FILE *out, FILE *err)
{
    char msg[1024];
    cfg_config *cfg = NULL;
    rnn_model *m = NULL;
    char *body = NULL, *resp = NULL;
    size_t len = 0, rlen = 0;
    int rc = 1;

    if (cfg_load_file(config_path, &cfg, msg, sizeof msg) < 0) {
        report(out, err, 500, msg);
        goto fail;
    }
    const cfg_model *cm = model ? cfg_find_model(cfg, model) : &cfg->models[0];
    if (!cm) {
        snprintf(msg, sizeof msg, "model \"%s\" is not in %s", model, config_path);
        report(out, err, 404, msg);
        goto fail;
    }
    if (rnn_model_load(cm, &m, msg, sizeof msg) < 0) {
        report(out, err, 500, msg);
        goto fail;
    }
    if (!(body = read_all(in, &len))) {
        report(out, err, 400, "cannot read the request from standard input");
        goto fail;
    }
    api_limits lim = {(size_t)cfg->server.max_batch, (size_t)cfg->server.max_steps};
    int status = api_forward(api_wire_v1(), m, body, len, &lim, &resp, &rlen, NULL);
    if (!resp) {
        report(out, err, 500, "out of memory");
        goto fail;
    }
    fwrite(resp, 1, rlen, out);
    fputc('\n', out);
    if (status != 200) {
        /* the body already names the problem; repeat it for people reading stderr */
        fprintf(err, "rnnserve: request failed with status %d\n", status);
        goto fail;
    }
    rc = 0;
fail:
    free(body);
    free(resp);
    rnn_model_free(m);
    cfg_free(cfg);
    return rc;
}
