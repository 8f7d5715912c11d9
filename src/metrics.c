/* metrics.c - request counters and latency histograms, rendered as Prometheus text 0.0.4.
 *
 * Every counter is a relaxed C11 atomic: metrics_observe takes no lock and allocates nothing, and
 * metrics_render reads each atomic once. A render racing with observes is a consistent-enough
 * snapshot: every counter is monotonic, and a histogram's _count is the sum of the same bucket
 * reads that make its le="+Inf" bucket, so the two always agree.
 *
 * Status codes: rnnserve_requests_total has a slot per status in STATUSES. Any other status in
 * 100..599 takes one of OTHER_SLOTS slots per route, claimed by compare-and-swap the first time
 * it is seen there, and is rendered with its real code. When a route's slots are all taken, or the
 * status is not a valid HTTP code at all, it is counted as code="other".
 *
 * Label values (route names and build labels) are escaped once, in metrics_new; model names once,
 * when metrics_model registers them.
 *
 * Models: a fixed table of METRICS_MAX_MODELS slots plus "other". A slot is written once, under
 * the registration lock, before the published count (a release store) covers it, so readers
 * scan it without a lock. Per model the status counts keep the fixed STATUSES only (any other
 * code is code="other"): 257 models times a few routes is already enough series. */
#include "rnnserve/metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rnnserve/buf.h"

/* Upper bounds of rnnserve_request_duration_seconds, in seconds, with their `le` label text;
 * the +Inf bucket follows them. */
static const struct {
    double le;
    const char *text;
} BOUNDS[] = {
    {0.0001, "0.0001"}, {0.00025, "0.00025"}, {0.0005, "0.0005"}, {0.001, "0.001"},
    {0.0025, "0.0025"}, {0.005, "0.005"},     {0.01, "0.01"},     {0.025, "0.025"},
    {0.05, "0.05"},     {0.1, "0.1"},         {0.25, "0.25"},     {0.5, "0.5"},
    {1, "1"},           {2.5, "2.5"},         {5, "5"},           {10, "10"},
};
#define N_BOUNDS (sizeof BOUNDS / sizeof BOUNDS[0])
#define N_BUCKETS (N_BOUNDS + 1)

/* Statuses with a fixed slot, in render order. */
static const int STATUSES[] = {200, 204, 400, 401, 404, 405, 413, 422, 500, 503};
#define N_STATUSES (sizeof STATUSES / sizeof STATUSES[0])
#define OTHER_SLOTS 8

/* Durations above this (about 31 years) are summed as this, so converting one to nanoseconds
 * cannot overflow. The uint64_t sum itself wraps after about 584 years of summed time. */
#define MAX_SUM_SECONDS 1e9

/* Upper bounds of the per-pass size histograms (sequences, requests); +Inf follows. */
static const unsigned SIZES[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
#define N_SIZES (sizeof SIZES / sizeof SIZES[0])

/* A histogram over BOUNDS, its sum in nanoseconds. */
typedef struct {
    _Atomic uint64_t bucket[N_BUCKETS]; /* per bucket, not cumulative; +Inf last */
    _Atomic uint64_t sum_ns;
} seconds_hist;

/* A histogram over SIZES. */
typedef struct {
    _Atomic uint64_t bucket[N_SIZES + 1];
    _Atomic uint64_t sum;
} size_hist;

/* The per-model phase histograms, in render order, with their family names and help. */
enum { PH_DURATION, PH_WAIT, PH_DECODE, PH_COMPUTE, PH_ENCODE, N_PHASES };
static const struct {
    const char *name, *help;
} PHASES[N_PHASES] = {
    {"rnnserve_model_request_duration_seconds",
     "Time to answer a forward request, by model (every forward route)."},
    {"rnnserve_queue_wait_seconds",
     "Time a forward request waited in the scheduler's queue, by model (queued requests only)."},
    {"rnnserve_decode_seconds", "Time to decode a forward request's body, by model."},
    {"rnnserve_compute_seconds",
     "Time of the engine pass a forward request ran in, by model (a merged pass counts for "
     "each of its requests)."},
    {"rnnserve_encode_seconds", "Time to encode a forward request's answer, by model."},
};

typedef struct {
    const char *name;  /* raw, as registered; NULL for a free slot */
    const char *label; /* escaped */
    _Atomic uint64_t status[N_STATUSES];
    _Atomic uint64_t other_status;
    seconds_hist phase[N_PHASES];
} model_metrics;

typedef struct {
    const char *label; /* escaped, points into metrics.strings */
    _Atomic uint64_t status[N_STATUSES];
    _Atomic int other_code[OTHER_SLOTS]; /* 0 = slot free */
    _Atomic uint64_t other_count[OTHER_SLOTS];
    _Atomic uint64_t other_overflow;
    _Atomic uint64_t bucket[N_BUCKETS]; /* per bucket, not cumulative; +Inf last */
    _Atomic uint64_t sum_ns;
} route_metrics;

struct metrics {
    char *strings;     /* one block: every escaped route label, then the build labels */
    const char *build; /* `name="value",...`, escaped; "" for none */
    uint64_t start_ns; /* CLOCK_REALTIME at metrics_new, ns since the epoch */
    _Atomic long in_flight;
    _Atomic uint64_t sequences;
    _Atomic uint64_t steps;
    size_hist pass_sequences, pass_requests;
    _Atomic uint64_t ended[METRICS_FAILED + 1]; /* by metrics_outcome */
    pthread_mutex_t reg;                        /* registers model names */
    _Atomic size_t n_models;                    /* published slots of models[] */
    model_metrics *models;                      /* METRICS_MAX_MODELS + 1; "other" last */
    size_t n_routes;
    route_metrics routes[];
};

static void seconds_hist_init(seconds_hist *h)
{
    for (size_t i = 0; i < N_BUCKETS; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum_ns, 0);
}

static void size_hist_init(size_hist *h)
{
    for (size_t i = 0; i <= N_SIZES; i++)
        atomic_init(&h->bucket[i], 0);
    atomic_init(&h->sum, 0);
}

/* ---------------------------------------------------------------------------------------------
 * label escaping and build-label parsing (metrics_new only) */

/* Writes S[0..n) escaped as a label value (\\, \", \n) to DST when non-NULL; returns the length. */
static size_t escape(char *dst, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i], e = c == '\\' ? '\\' : c == '"' ? '"' : c == '\n' ? 'n' : 0;
        if (!e) {
            if (dst)
                dst[k] = c;
            k++;
            continue;
        }
        if (dst) {
            dst[k] = '\\';
            dst[k + 1] = e;
        }
        k += 2;
    }
    return k;
}

static int is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

/* One `name="value"` pair of a build-label string: the name and the raw value. */
typedef struct {
    const char *name, *value;
    size_t name_len, value_len;
} label_pair;

/* Parses the next pair at *P, skipping surrounding spaces and one comma, and advances *P.
 * A value ends at the first `"` followed by optional spaces and then `,` or the end, so raw
 * quotes inside a value survive. Returns 1 with *OUT filled, 0 at the end, -1 on a malformed
 * pair (then *P moves past the next comma, or to the end). */
static int next_pair(const char **p, label_pair *out)
{
    const char *s = *p;
    while (*s == ' ' || *s == ',')
        s++;
    if (!*s) {
        *p = s;
        return 0;
    }
    const char *name = s;
    while (is_name_char(*s))
        s++;
    out->name = name;
    out->name_len = (size_t)(s - name);
    if (!is_name_start(*name) || *s != '=' || s[1] != '"')
        goto bad;
    const char *value = s + 2;
    for (s = value; *s; s++) {
        if (*s != '"')
            continue;
        const char *t = s + 1;
        while (*t == ' ')
            t++;
        if (*t == ',' || !*t) {
            out->value = value;
            out->value_len = (size_t)(s - value);
            *p = t;
            return 1;
        }
    }
bad:
    s = strchr(name, ',');
    *p = s ? s + 1 : name + strlen(name);
    return -1;
}

/* Writes the well-formed pairs of RAW to DST (when non-NULL) as `name="escaped",...`, dropping
 * malformed pairs, reserved names (`__` prefix) and repeated names, which would make a scrape
 * fail; returns the length. */
static size_t build_labels(char *dst, const char *raw)
{
    size_t k = 0;
    const char *start = raw ? raw : "", *p = start;
    label_pair lp;
    int r;
    while ((r = next_pair(&p, &lp)) != 0) {
        if (r < 0 || (lp.name_len >= 2 && lp.name[0] == '_' && lp.name[1] == '_'))
            continue;
        /* Rescan from the start up to this pair: an earlier well-formed one with the same name
         * wins. */
        int repeated = 0, rr;
        const char *q = start;
        label_pair prev;
        while ((rr = next_pair(&q, &prev)) != 0 && prev.name != lp.name)
            if (rr > 0 && prev.name_len == lp.name_len && !memcmp(prev.name, lp.name, lp.name_len))
                repeated = 1;
        if (repeated)
            continue;
        if (k) {
            if (dst)
                dst[k] = ',';
            k++;
        }
        if (dst)
            memcpy(dst + k, lp.name, lp.name_len);
        k += lp.name_len;
        if (dst)
            memcpy(dst + k, "=\"", 2);
        k += 2;
        k += escape(dst ? dst + k : NULL, lp.value, lp.value_len);
        if (dst)
            dst[k] = '"';
        k++;
    }
    return k;
}

/* ---------------------------------------------------------------------------------------------
 * the registry */

/* Creates the registry (see metrics.h). Build labels are `name="value"` pairs separated by
 * commas, with raw (unescaped) values: backslashes, quotes and newlines in them are escaped here.
 * Malformed, reserved (`__...`) and repeated pairs are dropped. */
metrics *metrics_new(const char *const *routes, size_t n_routes, const char *build)
{
    size_t n_strings = build_labels(NULL, build) + 1;
    for (size_t r = 0; r < n_routes; r++)
        n_strings += escape(NULL, routes[r], strlen(routes[r])) + 1;

    metrics *m = malloc(sizeof *m + n_routes * sizeof m->routes[0]);
    char *strings = malloc(n_strings);
    model_metrics *models = calloc(METRICS_MAX_MODELS + 1, sizeof *models);
    if (!m || !strings || !models) {
        free(m);
        free(strings);
        free(models);
        return NULL;
    }
    m->models = models;
    for (size_t i = 0; i <= METRICS_MAX_MODELS; i++) {
        model_metrics *mm = &models[i];
        for (size_t k = 0; k < N_STATUSES; k++)
            atomic_init(&mm->status[k], 0);
        atomic_init(&mm->other_status, 0);
        for (size_t p = 0; p < N_PHASES; p++)
            seconds_hist_init(&mm->phase[p]);
    }
    models[METRICS_MAX_MODELS].name = "other";
    models[METRICS_MAX_MODELS].label = "other";
    size_hist_init(&m->pass_sequences);
    size_hist_init(&m->pass_requests);
    for (size_t i = 0; i <= METRICS_FAILED; i++)
        atomic_init(&m->ended[i], 0);
    atomic_init(&m->n_models, 0);
    pthread_mutex_init(&m->reg, NULL);
    m->strings = strings;
    m->n_routes = n_routes;
    for (size_t r = 0; r < n_routes; r++) {
        route_metrics *rm = &m->routes[r];
        size_t n = escape(strings, routes[r], strlen(routes[r]));
        strings[n] = '\0';
        rm->label = strings;
        strings += n + 1;
        for (size_t i = 0; i < N_STATUSES; i++)
            atomic_init(&rm->status[i], 0);
        for (size_t i = 0; i < OTHER_SLOTS; i++) {
            atomic_init(&rm->other_code[i], 0);
            atomic_init(&rm->other_count[i], 0);
        }
        atomic_init(&rm->other_overflow, 0);
        for (size_t i = 0; i < N_BUCKETS; i++)
            atomic_init(&rm->bucket[i], 0);
        atomic_init(&rm->sum_ns, 0);
    }

    size_t n = build_labels(strings, build);
    strings[n] = '\0';
    m->build = strings;

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    atomic_init(&m->in_flight, 0);
    atomic_init(&m->sequences, 0);
    atomic_init(&m->steps, 0);
    return m;
}

void metrics_free(metrics *m)
{
    if (!m)
        return;
    size_t n = atomic_load(&m->n_models);
    for (size_t i = 0; i < n; i++) {
        free((char *)m->models[i].name);
        free((char *)m->models[i].label);
    }
    free(m->models);
    pthread_mutex_destroy(&m->reg);
    free(m->strings);
    free(m);
}

/* Copies NAME and its escaped label into slot MM; -1 when out of memory. */
static int fill_slot(model_metrics *mm, const char *name)
{
    size_t n = strlen(name), k = escape(NULL, name, n);
    char *raw = malloc(n + 1), *label = malloc(k + 1);
    if (!raw || !label) {
        free(raw);
        free(label);
        return -1;
    }
    memcpy(raw, name, n + 1);
    escape(label, name, n);
    label[k] = '\0';
    mm->name = raw;
    mm->label = label;
    return 0;
}

static size_t find_model(const metrics *m, const char *name, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(m->models[i].name, name) == 0)
            return i;
    return SIZE_MAX;
}

/* The slot of NAME (see metrics.h): a lock-free scan of the published slots, then, for a new
 * name, a second scan and the registration under the lock. */
size_t metrics_model(metrics *m, const char *name)
{
    size_t n = atomic_load_explicit(&m->n_models, memory_order_acquire);
    size_t i = find_model(m, name, n);
    if (i != SIZE_MAX)
        return i;
    pthread_mutex_lock(&m->reg);
    n = atomic_load_explicit(&m->n_models, memory_order_relaxed);
    i = find_model(m, name, n);
    if (i == SIZE_MAX) {
        i = METRICS_MAX_MODELS;
        if (n < METRICS_MAX_MODELS && fill_slot(&m->models[n], name) == 0) {
            i = n;
            atomic_store_explicit(&m->n_models, n + 1, memory_order_release);
        }
    }
    pthread_mutex_unlock(&m->reg);
    return i;
}

/* ---------------------------------------------------------------------------------------------
 * the observe path: relaxed atomic adds, no locks, no allocation */

static void count_status(route_metrics *rm, int status)
{
    for (size_t i = 0; i < N_STATUSES; i++) {
        if (STATUSES[i] == status) {
            atomic_fetch_add_explicit(&rm->status[i], 1, memory_order_relaxed);
            return;
        }
    }
    if (status >= 100 && status <= 599) {
        for (size_t i = 0; i < OTHER_SLOTS; i++) {
            int code = atomic_load_explicit(&rm->other_code[i], memory_order_relaxed);
            /* Claim a free slot; when another thread wins it, CODE becomes that thread's status. */
            if (code == 0 &&
                atomic_compare_exchange_strong_explicit(&rm->other_code[i], &code, status,
                                                        memory_order_relaxed, memory_order_relaxed))
                code = status;
            if (code == status) {
                atomic_fetch_add_explicit(&rm->other_count[i], 1, memory_order_relaxed);
                return;
            }
        }
    }
    atomic_fetch_add_explicit(&rm->other_overflow, 1, memory_order_relaxed);
}

/* Adds SECONDS (negative or NaN: 0) to the histogram with buckets BUCKET and sum SUM_NS. */
static void observe_seconds(_Atomic uint64_t *bucket, _Atomic uint64_t *sum_ns, double seconds)
{
    if (!(seconds >= 0)) /* also catches NaN */
        seconds = 0;
    size_t b = 0;
    while (b < N_BOUNDS && !(seconds <= BOUNDS[b].le)) /* le is inclusive */
        b++;
    atomic_fetch_add_explicit(&bucket[b], 1, memory_order_relaxed);
    double capped = seconds < MAX_SUM_SECONDS ? seconds : MAX_SUM_SECONDS;
    atomic_fetch_add_explicit(sum_ns, (uint64_t)(capped * 1e9 + 0.5), memory_order_relaxed);
}

static void observe_size(size_hist *h, size_t n)
{
    size_t b = 0;
    while (b < N_SIZES && n > SIZES[b])
        b++;
    atomic_fetch_add_explicit(&h->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum, (uint64_t)n, memory_order_relaxed);
}

/* Records one request (see metrics.h). A ROUTE outside [0, n_routes) is ignored. Negative or NaN
 * durations count as 0 s. */
void metrics_observe(metrics *m, size_t route, int status, double seconds, size_t sequences,
                     size_t steps)
{
    if (route >= m->n_routes)
        return;
    route_metrics *rm = &m->routes[route];
    count_status(rm, status);
    observe_seconds(rm->bucket, &rm->sum_ns, seconds);
    if (sequences)
        atomic_fetch_add_explicit(&m->sequences, (uint64_t)sequences, memory_order_relaxed);
    if (steps)
        atomic_fetch_add_explicit(&m->steps, (uint64_t)steps, memory_order_relaxed);
}

/* Records a forward request (see metrics.h). A MODEL past the table counts as "other". */
void metrics_observe_forward(metrics *m, size_t model, const metrics_forward *f)
{
    if ((unsigned)f->outcome <= METRICS_FAILED && f->outcome != METRICS_DONE)
        atomic_fetch_add_explicit(&m->ended[f->outcome], 1, memory_order_relaxed);
    if (f->pass_jobs) {
        observe_size(&m->pass_sequences, f->pass_sequences);
        observe_size(&m->pass_requests, f->pass_jobs);
    }
    if (model == METRICS_NO_MODEL)
        return;
    model_metrics *mm = &m->models[model < METRICS_MAX_MODELS ? model : METRICS_MAX_MODELS];
    if (f->status) {
        size_t i = 0;
        while (i < N_STATUSES && STATUSES[i] != f->status)
            i++;
        atomic_fetch_add_explicit(i < N_STATUSES ? &mm->status[i] : &mm->other_status, 1,
                                  memory_order_relaxed);
        observe_seconds(mm->phase[PH_DURATION].bucket, &mm->phase[PH_DURATION].sum_ns, f->seconds);
    }
    const int64_t ns[N_PHASES] = {-1, f->wait_ns, f->decode_ns, f->compute_ns, f->encode_ns};
    for (size_t p = PH_WAIT; p < N_PHASES; p++)
        if (ns[p] >= 0)
            observe_seconds(mm->phase[p].bucket, &mm->phase[p].sum_ns, (double)ns[p] / 1e9);
}

void metrics_inflight_add(metrics *m, int delta)
{
    atomic_fetch_add_explicit(&m->in_flight, (long)delta, memory_order_relaxed);
}

long metrics_inflight(const metrics *m)
{
    /* C11 atomic_load takes a non-const pointer; reading never modifies the object. */
    return atomic_load_explicit((_Atomic long *)&m->in_flight, memory_order_relaxed);
}

/* ---------------------------------------------------------------------------------------------
 * rendering */

static void family(buf *o, const char *name, const char *type, const char *help)
{
    buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Formats NS nanoseconds as decimal seconds, exactly and without trailing zeros ("0.0015"). */
static const char *seconds_text(char buf[32], uint64_t ns)
{
    uint64_t frac = ns % 1000000000u;
    int n = snprintf(buf, 32, "%" PRIu64, ns / 1000000000u);
    if (frac) {
        int digits = 9;
        while (frac % 10 == 0)
            frac /= 10, digits--;
        snprintf(buf + n, (size_t)(32 - n), ".%0*" PRIu64, digits, frac);
    }
    return buf;
}

static uint64_t load(const _Atomic uint64_t *a)
{
    return atomic_load_explicit((_Atomic uint64_t *)a, memory_order_relaxed);
}

static void render_requests(buf *o, const metrics *m)
{
    family(o, "rnnserve_requests_total", "counter",
           "Requests answered, by route and HTTP status code.");
    for (size_t r = 0; r < m->n_routes; r++) {
        const route_metrics *rm = &m->routes[r];
        for (size_t i = 0; i < N_STATUSES; i++) {
            uint64_t n = load(&rm->status[i]);
            if (n)
                buf_printf(o, "rnnserve_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                           rm->label, STATUSES[i], n);
        }
        for (size_t i = 0; i < OTHER_SLOTS; i++) {
            int code =
                atomic_load_explicit((_Atomic int *)&rm->other_code[i], memory_order_relaxed);
            uint64_t n = load(&rm->other_count[i]);
            if (code && n)
                buf_printf(o, "rnnserve_requests_total{route=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                           rm->label, code, n);
        }
        uint64_t n = load(&rm->other_overflow);
        if (n)
            buf_printf(o, "rnnserve_requests_total{route=\"%s\",code=\"other\"} %" PRIu64 "\n",
                       rm->label, n);
    }
}

static void render_durations(buf *o, const metrics *m)
{
    const char *name = "rnnserve_request_duration_seconds";
    family(o, name, "histogram", "Time to answer a request, by route.");
    for (size_t r = 0; r < m->n_routes; r++) {
        const route_metrics *rm = &m->routes[r];
        uint64_t cumulative = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            cumulative += load(&rm->bucket[b]);
            buf_printf(o, "%s_bucket{route=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, rm->label,
                       b < N_BOUNDS ? BOUNDS[b].text : "+Inf", cumulative);
        }
        char sum[32];
        buf_printf(o, "%s_sum{route=\"%s\"} %s\n", name, rm->label,
                   seconds_text(sum, load(&rm->sum_ns)));
        buf_printf(o, "%s_count{route=\"%s\"} %" PRIu64 "\n", name, rm->label, cumulative);
    }
}

/* The cumulative buckets, _sum and _count of a seconds histogram of model LABEL (escaped). */
static void seconds_series(buf *o, const char *name, const char *label,
                           const _Atomic uint64_t *bucket, const _Atomic uint64_t *sum_ns)
{
    uint64_t cumulative = 0;
    for (size_t b = 0; b < N_BUCKETS; b++) {
        cumulative += load(&bucket[b]);
        buf_printf(o, "%s_bucket{model=\"%s\",le=\"%s\"} %" PRIu64 "\n", name, label,
                   b < N_BOUNDS ? BOUNDS[b].text : "+Inf", cumulative);
    }
    char sum[32];
    buf_printf(o, "%s_sum{model=\"%s\"} %s\n", name, label, seconds_text(sum, load(sum_ns)));
    buf_printf(o, "%s_count{model=\"%s\"} %" PRIu64 "\n", name, label, cumulative);
}

static void size_series(buf *o, const char *name, const char *help, const size_hist *h)
{
    family(o, name, "histogram", help);
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= N_SIZES; b++) {
        cumulative += load(&h->bucket[b]);
        if (b < N_SIZES)
            buf_printf(o, "%s_bucket{le=\"%u\"} %" PRIu64 "\n", name, SIZES[b], cumulative);
        else
            buf_printf(o, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cumulative);
    }
    buf_printf(o, "%s_sum %" PRIu64 "\n%s_count %" PRIu64 "\n", name, load(&h->sum), name,
               cumulative);
}

/* Whether model slot I (of N published) has anything to render: every registered model does,
 * "other" only once it was used. */
static int model_shown(const metrics *m, size_t i, size_t n)
{
    if (i < n)
        return 1;
    const model_metrics *mm = &m->models[METRICS_MAX_MODELS];
    uint64_t any = load(&mm->other_status);
    for (size_t p = 0; p < N_PHASES; p++)
        for (size_t b = 0; b < N_BUCKETS; b++)
            any += load(&mm->phase[p].bucket[b]);
    return any != 0;
}

static void render_models(buf *o, const metrics *m)
{
    size_t n = atomic_load_explicit((_Atomic size_t *)&m->n_models, memory_order_acquire);
    int other = model_shown(m, METRICS_MAX_MODELS, n);
    if (!n && !other)
        return;
    family(o, "rnnserve_model_requests_total", "counter",
           "Forward requests answered, by model and HTTP status code.");
    for (size_t i = 0; i <= METRICS_MAX_MODELS; i++) {
        if (i >= n && (i < METRICS_MAX_MODELS || !other))
            continue;
        const model_metrics *mm = &m->models[i];
        for (size_t k = 0; k < N_STATUSES; k++)
            if (load(&mm->status[k]))
                buf_printf(o,
                           "rnnserve_model_requests_total{model=\"%s\",code=\"%d\"} %" PRIu64 "\n",
                           mm->label, STATUSES[k], load(&mm->status[k]));
        if (load(&mm->other_status))
            buf_printf(o,
                       "rnnserve_model_requests_total{model=\"%s\",code=\"other\"} %" PRIu64 "\n",
                       mm->label, load(&mm->other_status));
    }
    for (size_t p = 0; p < N_PHASES; p++) {
        family(o, PHASES[p].name, "histogram", PHASES[p].help);
        for (size_t i = 0; i <= METRICS_MAX_MODELS; i++) {
            if (i >= n && (i < METRICS_MAX_MODELS || !other))
                continue;
            const model_metrics *mm = &m->models[i];
            seconds_series(o, PHASES[p].name, mm->label, mm->phase[p].bucket, &mm->phase[p].sum_ns);
        }
    }
}

static void counter(buf *o, const char *name, const char *help, uint64_t v)
{
    family(o, name, "counter", help);
    buf_printf(o, "%s %" PRIu64 "\n", name, v);
}

static void render_scheduler(buf *o, const metrics *m)
{
    size_series(o, "rnnserve_pass_sequences",
                "Sequences in the engine pass a forward request ran in: one observation per "
                "computed request (a pass merging N requests is observed N times).",
                &m->pass_sequences);
    size_series(o, "rnnserve_pass_requests",
                "Requests merged into the engine pass a forward request ran in: one observation "
                "per computed request (a pass merging N requests is observed N times).",
                &m->pass_requests);
    counter(o, "rnnserve_rejected_requests_total",
            "Forward requests refused at admission (503 with Retry-After): queue full, or a "
            "deadline shorter than the queue's wait.",
            load(&m->ended[METRICS_REJECTED]));
    counter(o, "rnnserve_expired_requests_total",
            "Forward requests whose deadline passed while queued (503, not computed).",
            load(&m->ended[METRICS_EXPIRED]));
    counter(o, "rnnserve_cancelled_requests_total",
            "Forward requests dropped because their client left before they were computed.",
            load(&m->ended[METRICS_CANCELLED]));
    counter(o, "rnnserve_stopped_requests_total",
            "Forward requests the shutdown ended before they were computed (503).",
            load(&m->ended[METRICS_STOPPED]));
    counter(o, "rnnserve_failed_requests_total", "Forward requests the engine refused (500).",
            load(&m->ended[METRICS_FAILED]));
}

static void render_state(buf *o, const metrics_state *st)
{
    family(o, "rnnserve_queue_requests", "gauge",
           "Forward requests queued for the scheduler, not yet in a pass.");
    buf_printf(o, "rnnserve_queue_requests %ld\n", st->queued_requests);
    family(o, "rnnserve_queue_flops", "gauge",
           "Estimated work of the queued forward requests, in floating-point operations.");
    buf_printf(o, "rnnserve_queue_flops %.17g\n", st->queued_flops);
    family(o, "rnnserve_running_passes", "gauge", "Engine passes computing now.");
    buf_printf(o, "rnnserve_running_passes %ld\n", st->running_passes);
    family(o, "rnnserve_reloads_total", "counter",
           "Model reloads (SIGHUP and POST /v1/admin/reload), by result.");
    buf_printf(o, "rnnserve_reloads_total{result=\"success\"} %" PRIu64 "\n", st->reloads_ok);
    buf_printf(o, "rnnserve_reloads_total{result=\"failure\"} %" PRIu64 "\n", st->reloads_failed);
    family(o, "rnnserve_last_reload_success_timestamp_seconds", "gauge",
           "Time of the last successful model reload, in seconds since the Unix epoch; 0 until "
           "the first.");
    buf_printf(o, "rnnserve_last_reload_success_timestamp_seconds %.3f\n", st->last_reload_s);
}

/* Renders every family (see metrics.h). */
char *metrics_render(const metrics *m, const metrics_state *st, size_t *len)
{
    buf o = BUF_INIT;
    render_requests(&o, m);
    render_durations(&o, m);
    render_models(&o, m);
    render_scheduler(&o, m);
    if (st)
        render_state(&o, st);

    family(&o, "rnnserve_sequences_total", "counter", "Sequences run through a model.");
    buf_printf(&o, "rnnserve_sequences_total %" PRIu64 "\n", load(&m->sequences));
    family(&o, "rnnserve_steps_total", "counter",
           "RNN time steps computed, summed over sequences.");
    buf_printf(&o, "rnnserve_steps_total %" PRIu64 "\n", load(&m->steps));
    family(&o, "rnnserve_in_flight_requests", "gauge", "Requests being processed now.");
    buf_printf(&o, "rnnserve_in_flight_requests %ld\n", metrics_inflight(m));
    family(&o, "rnnserve_build_info", "gauge", "Version of rnnserve and its libraries; always 1.");
    buf_printf(&o, m->build[0] ? "rnnserve_build_info{%s} 1\n" : "rnnserve_build_info%s 1\n",
               m->build);
    family(&o, "rnnserve_start_time_seconds", "gauge",
           "Time the server started, in seconds since the Unix epoch.");
    char start[32];
    buf_printf(&o, "rnnserve_start_time_seconds %s\n", seconds_text(start, m->start_ns));

    return buf_take(&o, len); /* NULL when any append failed */
}
