/* main.c - the rnnserve command line: argv, subcommands, exit codes.
 *
 *   rnnserve [serve] --config PATH [--host H] [--port N] [--threads N]
 *   rnnserve check   --config PATH
 *   rnnserve forward --config PATH [--model NAME] < request.json */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rnnserve/cli.h"
#include "rnnserve/serve.h"
#include "rnnserve/version.h"

static const char *const USAGE_MAIN =
    "usage: rnnserve [serve] --config PATH [--host H] [--port N] [--threads N]\n"
    "       rnnserve check --config PATH\n"
    "       rnnserve forward --config PATH [--model NAME] < request.json\n"
    "       rnnserve --version | --help\n"
    "\n"
    "Serves PyTorch nn.RNN / nn.LSTM / nn.GRU models over HTTP (see README.md).\n"
    "  serve     run the HTTP server (the default command)\n"
    "  check     validate the config and every model's weights, print a summary\n"
    "  forward   run one request body from stdin, print the response JSON\n"
    "Run 'rnnserve COMMAND --help' for a command's options.\n";

static const char *const USAGE_SERVE =
    "usage: rnnserve [serve] --config PATH [--host H] [--port N] [--threads N]\n"
    "Serves every model in the config over HTTP (spec: docs/API.md).\n"
    "  --config PATH   the config file (JSON; see README.md)\n"
    "  --host H        address to listen on (overrides server.host; default 0.0.0.0)\n"
    "  --port N        TCP port (overrides server.port; default 8080; 0 picks a free one)\n"
    "  --threads N     forward passes run at once (overrides server.threads; 0 = one per core)\n"
    "SIGTERM or SIGINT drains: /readyz turns 503, in-flight requests finish, exit 0.\n";

static const char *const USAGE_CHECK =
    "usage: rnnserve check --config PATH\n"
    "Validates the config and every model's weights and prints one line per model.\n"
    "Exit status 0 when everything loads, 1 with the error on stderr otherwise.\n";

static const char *const USAGE_FORWARD =
    "usage: rnnserve forward --config PATH [--model NAME] < request.json > response.json\n"
    "Runs one POST /forward request body from stdin on MODEL (default: the config's first\n"
    "model) and writes the response JSON to stdout, exactly as the server would answer.\n"
    "On a bad request, prints the error JSON to stdout and exits 1.\n";

/* Parses "--name value" pairs. Returns 0, 1 for --help (usage printed), 2 on a usage error. */
typedef struct {
    const char *config, *model, *host, *port, *threads;
} args;

static int parse_args(int argc, char **argv, int first, args *a, const char *usage, int serve)
{
    for (int i = first; i < argc; i++) {
        const char *k = argv[i];
        if (strcmp(k, "--help") == 0 || strcmp(k, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        const char **slot = NULL;
        if (strcmp(k, "--config") == 0 || strcmp(k, "-c") == 0)
            slot = &a->config;
        else if (!serve && strcmp(k, "--model") == 0 && usage == USAGE_FORWARD)
            slot = &a->model;
        else if (serve && strcmp(k, "--host") == 0)
            slot = &a->host;
        else if (serve && strcmp(k, "--port") == 0)
            slot = &a->port;
        else if (serve && strcmp(k, "--threads") == 0)
            slot = &a->threads;
        if (!slot) {
            fprintf(stderr, "rnnserve: unknown argument '%s'\n%s", k, usage);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "rnnserve: %s needs a value\n", k);
            return 2;
        }
        *slot = argv[++i];
    }
    if (!a->config) {
        fprintf(stderr, "rnnserve: --config PATH is required\n%s", usage);
        return 2;
    }
    return 0;
}

/* A non-negative integer flag within [lo, hi]; -1 when it is not one. */
static long int_flag(const char *name, const char *s, long lo, long hi)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < lo || v > hi) {
        fprintf(stderr, "rnnserve: %s '%s': expected an integer from %ld to %ld\n", name, s, lo,
                hi);
        return -1;
    }
    return v;
}

int main(int argc, char **argv)
{
    args a = {0};
    int rc;
    const char *cmd = argc > 1 ? argv[1] : "";

    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0) {
        rnnserve_print_version(stdout);
        return 0;
    }
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0 ||
        argc == 1) {
        fputs(USAGE_MAIN, argc == 1 ? stderr : stdout);
        return argc == 1 ? 2 : 0;
    }
    if (strcmp(cmd, "check") == 0) {
        if ((rc = parse_args(argc, argv, 2, &a, USAGE_CHECK, 0)) != 0)
            return rc == 1 ? 0 : 2;
        return cli_check(a.config, stdout, stderr);
    }
    if (strcmp(cmd, "forward") == 0) {
        if ((rc = parse_args(argc, argv, 2, &a, USAGE_FORWARD, 0)) != 0)
            return rc == 1 ? 0 : 2;
        return cli_forward(a.config, a.model, stdin, stdout, stderr);
    }
    int first = strcmp(cmd, "serve") == 0 ? 2 : 1;
    if ((rc = parse_args(argc, argv, first, &a, USAGE_SERVE, 1)) != 0)
        return rc == 1 ? 0 : 2;
    serve_overrides o = {a.host, -1, -1};
    if (a.port && (o.port = (int)int_flag("--port", a.port, 0, 65535)) < 0)
        return 2;
    if (a.threads && (o.threads = (int)int_flag("--threads", a.threads, 0, 1024)) < 0)
        return 2;
    return serve_main(a.config, &o);
}
