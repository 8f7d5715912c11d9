/* fuzz_safetensors.c - libFuzzer target: a .safetensors file, through st_open (which mmaps it),
 * st_read_f32 of every tensor, and rnn_model_load of three model shapes that read their weights
 * from it (state_dict names, shapes, prefixes and dtype conversion on hostile files).
 *
 * The bytes live in a memfd, so each execution touches no disk and leaves nothing behind. */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "rnnserve/safetensors.h"

/* Tensors with more elements than this are not converted (a file's header can declare any
 * shape whose bytes it holds; this only bounds the harness's own buffer). */
#define FZ_ST_MAX_NUMEL ((size_t)1 << 22)

static void fz_st_read_all(const char *path)
{
    st_file *f = NULL;
    char err[1024];
    err[0] = '\0';
    if (st_open(path, &f, err, sizeof err) < 0) {
        FZ_CHECK(f == NULL && err[0], "a failed open returned a file or no message");
        return;
    }
    for (size_t i = 0; i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        FZ_CHECK(t && t->name && t->ndim >= 0 && t->ndim <= ST_MAX_DIMS, "tensor %zu", i);
        size_t n = 1;
        for (int d = 0; d < t->ndim; d++) {
            FZ_CHECK(t->shape[d] >= 0, "%s: negative dimension", t->name);
            n *= (size_t)t->shape[d];
        }
        FZ_CHECK(n == t->numel, "%s: numel %zu, shape says %zu", t->name, t->numel, n);
        FZ_CHECK(st_find(f, t->name) != NULL, "%s: not found by name", t->name);
        if (t->numel > FZ_ST_MAX_NUMEL)
            continue;
        float *dst = malloc((t->numel ? t->numel : 1) * sizeof *dst);
        FZ_CHECK(dst != NULL, "out of memory");
        err[0] = '\0';
        if (st_read_f32(f, t, dst, err, sizeof err) < 0)
            FZ_CHECK(err[0] != '\0', "%s: read failed without a message", t->name);
        free(dst);
    }
    st_close(f);
}

/* The file as the weights of a model: every rule of model.c (names, shapes, prefix, leftovers,
 * non-finite values) runs on hostile tensors. */
static void fz_st_load_model(const char *path, rnn_cell_type type, int I, int H, int L, bool bidir,
                             bool bias, const char *prefix)
{
    cfg_model m;
    memset(&m, 0, sizeof m);
    m.name = "fuzz";
    m.type = type;
    m.input_size = I;
    m.hidden_size = H;
    m.num_layers = L;
    m.nonlinearity = RNN_TANH;
    m.bias = bias;
    m.bidirectional = bidir;
    m.prefix = (char *)prefix;
    m.weights_path = (char *)path;
    rnn_model *model = NULL;
    char err[1024];
    err[0] = '\0';
    if (rnn_model_load(&m, &model, err, sizeof err) < 0)
        FZ_CHECK(model == NULL && err[0], "a failed load returned a model or no message");
    rnn_model_free(model);
}

int fz_safetensors_one(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
    FZ_CHECK(fd >= 0, "memfd_create failed");
    for (size_t off = 0; off < size;) {
        ssize_t w = write(fd, data + off, size - off);
        FZ_CHECK(w > 0, "write to memfd failed");
        off += (size_t)w;
    }
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    fz_st_read_all(path);
    /* The shapes of the seed files: the default model, a bidirectional GRU, a prefixed LSTM. */
    fz_st_load_model(path, RNN_CELL_RNN, 1, 4, 1, false, true, "");
    fz_st_load_model(path, RNN_CELL_GRU, 3, 4, 2, true, true, "");
    fz_st_load_model(path, RNN_CELL_LSTM, 3, 4, 1, false, true, "rnn.");
    close(fd);
    return 0;
}

#ifndef FUZZ_NO_MAIN
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_safetensors_one(data, size);
}
#endif
