/* cli.h - the offline commands: `rnnserve check` and `rnnserve forward`.
 *
 * Both take parsed arguments and streams so that tests can drive them without a process; they
 * share the codec with the HTTP server, so an answer here is the answer the server gives. */
#ifndef RNNSERVE_CLI_H
#define RNNSERVE_CLI_H

#include <stdio.h>

/* Validates the config at CONFIG_PATH and every model's weights; prints one summary line per
 * model to OUT. Returns the process exit code: 0, or 1 with the error on ERR. */
int cli_check(const char *config_path, FILE *out, FILE *err);

/* Reads one request body from IN, runs it on MODEL (NULL: the config's first model) and writes
 * the response JSON to OUT. Returns 0, or 1 with the contract's error JSON on OUT (and the
 * message on ERR) for a bad request, a bad config or an unknown model. */
int cli_forward(const char *config_path, const char *model, FILE *in, FILE *out, FILE *err);

#endif
