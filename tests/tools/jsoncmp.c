/* jsoncmp.c - compares two JSON documents for the shell tests: structure exact, numbers within a
 * tolerance.
 *
 *   jsoncmp [--tol X] EXPECTED ACTUAL     ("-" reads standard input; X defaults to 0)
 *
 * Objects must have the same keys, arrays the same sizes, strings and literals must be equal,
 * and numbers (integer or real alike) may differ by at most X. Exit status: 0 when the documents
 * match, 1 when they differ (the first difference's JSON path on stderr), 2 on a usage error or
 * when a file cannot be read or is not JSON. `jsoncmp F F` therefore checks that F is JSON. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_LEN 4096

/* Reports the first difference at PATH and returns 0. */
static int differ(const char *path, const char *what)
{
    fprintf(stderr, "jsoncmp: %s: %s\n", *path ? path : "(root)", what);
    return 0;
}

/* 1 when WANT and GOT match; PATH[PATH_LEN] is the JSON path so far, extended in place. */
static int same(const json_t *want, const json_t *got, double tol, char *path)
{
    char what[512];
    size_t n = strlen(path);
    if (json_is_number(want) && json_is_number(got)) {
        double a = json_number_value(want), b = json_number_value(got);
        if (fabs(a - b) <= tol)
            return 1;
        snprintf(what, sizeof what, "expected %.9g, got %.9g (off by %.3g, tolerance %g)", a, b,
                 fabs(a - b), tol);
        return differ(path, what);
    }
    if (json_typeof(want) != json_typeof(got))
        return differ(path, "different JSON types");
    switch (json_typeof(want)) {
    case JSON_ARRAY:
        if (json_array_size(want) != json_array_size(got)) {
            snprintf(what, sizeof what, "expected %zu elements, got %zu", json_array_size(want),
                     json_array_size(got));
            return differ(path, what);
        }
        for (size_t i = 0; i < json_array_size(want); i++) {
            snprintf(path + n, PATH_LEN - n, "[%zu]", i);
            if (!same(json_array_get(want, i), json_array_get(got, i), tol, path))
                return 0;
        }
        break;
    case JSON_OBJECT: {
        const char *key;
        json_t *v;
        json_object_foreach((json_t *)got, key, v)
        {
            if (!json_object_get(want, key)) {
                snprintf(what, sizeof what, "unexpected key \"%s\"", key);
                return differ(path, what);
            }
        }
        json_object_foreach((json_t *)want, key, v)
        {
            json_t *g = json_object_get(got, key);
            if (!g) {
                snprintf(what, sizeof what, "missing key \"%s\"", key);
                return differ(path, what);
            }
            snprintf(path + n, PATH_LEN - n, ".%s", key);
            if (!same(v, g, tol, path))
                return 0;
        }
        break;
    }
    case JSON_STRING:
        if (strcmp(json_string_value(want), json_string_value(got)) != 0) {
            snprintf(what, sizeof what, "expected \"%.200s\", got \"%.200s\"",
                     json_string_value(want), json_string_value(got));
            return differ(path, what);
        }
        break;
    default: /* true, false, null: equal types are equal values */
        break;
    }
    path[n] = '\0';
    return 1;
}

static json_t *load(const char *name)
{
    json_error_t err;
    json_t *v = strcmp(name, "-") == 0 ? json_loadf(stdin, 0, &err) : json_load_file(name, 0, &err);
    if (!v)
        fprintf(stderr, "jsoncmp: %s: line %d, column %d: %s\n", name, err.line, err.column,
                err.text);
    return v;
}

int main(int argc, char **argv)
{
    double tol = 0;
    int i = 1;
    if (argc > 2 && strcmp(argv[1], "--tol") == 0) {
        char *end;
        tol = strtod(argv[2], &end);
        if (*argv[2] == '\0' || *end != '\0' || !(tol >= 0)) {
            fprintf(stderr, "jsoncmp: --tol '%s': expected a non-negative number\n", argv[2]);
            return 2;
        }
        i = 3;
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: jsoncmp [--tol X] EXPECTED ACTUAL   (\"-\" reads stdin)\n");
        return 2;
    }
    json_t *want = load(argv[i]), *got = want ? load(argv[i + 1]) : NULL;
    if (!want || !got) {
        json_decref(want);
        return 2;
    }
    char path[PATH_LEN] = "";
    int rc = same(want, got, tol, path) ? 0 : 1;
    json_decref(want);
    json_decref(got);
    return rc;
}
