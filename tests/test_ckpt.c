/* Tests of lb_ckpt (safetensors): round trips, exact header bytes, files from an independent
 * Python writer (tests/ckpt_pywrite.py) both ways, every malformed-header case, and failed
 * atomic writes. Not a fuzzer: fuzz/fuzz_safetensors.c covers random inputs. */
#include "lb_ckpt.h"
#include "lb_test.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[64];

static void pj(char *dst, size_t cap, const char *name) {
    snprintf(dst, cap, "%s/%s", g_dir, name);
}

static int write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0 && w == n) ? 0 : -1;
}

/* Whole file into a malloc'd buffer (NULL if unreadable). */
static unsigned char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    unsigned char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            unsigned char *nb = realloc(buf, cap);
            if (!nb) break;
            buf = nb;
        }
        size_t r = fread(buf + len, 1, cap - len, f);
        len += r;
        if (r == 0) break;
    }
    fclose(f);
    *n = len;
    return buf;
}

static int same_file(const char *path, const unsigned char *want, size_t n) {
    size_t got_n = 0;
    unsigned char *got = slurp(path, &got_n);
    int ok = got && got_n == n && memcmp(got, want, n) == 0;
    free(got);
    return ok;
}

static int count_tmp(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static size_t nbytes_of(const lb_st_tensor *t) {
    size_t n = lb_dtype_size(t->dtype);
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

/* ---- the reference table shared with tests/ckpt_pywrite.py ------------------------------------
 */
typedef struct refdata {
    float w[12];
    int32_t counts[5];
    uint8_t bytes[7];
    int8_t sgn[6];
    uint64_t big[3];
    float scalar;
    uint8_t uni[1];
} refdata;

#define UNI_NAME "\xc3\xbcn\xc3\xaf \"q\""
#define NOTE_VALUE "h\xc3\xa9llo \"world\"\n"

static int ref_tensors(refdata *d, lb_st_tensor *t) {
    for (int i = 0; i < 12; i++) d->w[i] = (float)i * 0.25f - 1.25f;
    const int32_t c[5] = {INT32_MIN, -1, 0, 1, INT32_MAX};
    memcpy(d->counts, c, sizeof c);
    for (int i = 0; i < 7; i++) d->bytes[i] = (uint8_t)((i * 37) % 256);
    const int8_t s[6] = {-128, -1, 0, 1, 127, 5};
    memcpy(d->sgn, s, sizeof s);
    d->big[0] = 0;
    d->big[1] = UINT64_MAX;
    d->big[2] = (UINT64_C(1) << 53) + 1;
    d->scalar = 3.5f;
    d->uni[0] = 42;
    memset(t, 0, 8 * sizeof *t);
    t[0] = (lb_st_tensor){"layer.0/weight", LB_F32, 2, {3, 4}, d->w};
    t[1] = (lb_st_tensor){"counts", LB_I32, 1, {5}, d->counts};
    t[2] = (lb_st_tensor){"bytes", LB_U8, 1, {7}, d->bytes};
    t[3] = (lb_st_tensor){"signed", LB_I8, 2, {2, 3}, d->sgn};
    t[4] = (lb_st_tensor){"big", LB_U64, 1, {3}, d->big};
    t[5] = (lb_st_tensor){"scalar", LB_F32, 0, {0}, &d->scalar};
    t[6] = (lb_st_tensor){"empty", LB_F32, 2, {2, 0}, NULL};
    t[7] = (lb_st_tensor){UNI_NAME, LB_U8, 1, {1}, d->uni};
    return 8;
}

static const lb_st_meta g_meta[2] = {{"epoch", "7"}, {"note", NOTE_VALUE}};

/* Checks that `got` holds tensor `want` (found by name), byte for byte. */
static void check_tensor(const lb_st_file *f, const lb_st_tensor *want, const char *ctx) {
    const lb_st_tensor *g = lb_st_find(f, want->name);
    CHECK(g != NULL, "%s: tensor '%s' found", ctx, want->name);
    if (!g) return;
    int same_shape = g->ndim == want->ndim;
    for (int d = 0; same_shape && d < g->ndim; d++) same_shape = g->shape[d] == want->shape[d];
    CHECK(g->dtype == want->dtype && same_shape, "%s: '%s' dtype %d/%d ndim %d/%d", ctx, want->name,
          g->dtype, want->dtype, g->ndim, want->ndim);
    size_t n = nbytes_of(want);
    CHECK(!strcmp(g->name, want->name), "%s: name", ctx);
    CHECK(n == 0 || (g->data && memcmp(g->data, want->data, n) == 0), "%s: '%s' data", ctx,
          want->name);
}

static void check_ref_file(const lb_st_file *f, const char *ctx) {
    refdata d;
    lb_st_tensor t[8];
    int nt = ref_tensors(&d, t);
    CHECK(lb_st_count(f) == nt, "%s: count %d", ctx, lb_st_count(f));
    for (int i = 0; i < nt; i++) check_tensor(f, &t[i], ctx);
    CHECK(lb_st_meta_count(f) == 2, "%s: meta count %d", ctx, lb_st_meta_count(f));
    const char *e = lb_st_meta_get(f, "epoch"), *n = lb_st_meta_get(f, "note");
    CHECK(e && !strcmp(e, "7"), "%s: epoch", ctx);
    CHECK(n && !strcmp(n, NOTE_VALUE), "%s: note '%s'", ctx, n ? n : "(null)");
    CHECK(lb_st_meta_get(f, "nope") == NULL, "%s: absent key", ctx);
    CHECK(lb_st_find(f, "nope") == NULL && lb_st_find(f, "__metadata__") == NULL,
          "%s: absent tensor", ctx);
    /* Values read the way real readers must: memcpy, since data may be unaligned. */
    const lb_st_tensor *big = lb_st_find(f, "big");
    uint64_t b1 = 0;
    if (big) memcpy(&b1, (const char *)big->data + 8, 8);
    CHECK(b1 == UINT64_MAX, "%s: big[1] = %llu", ctx, (unsigned long long)b1);
    const lb_st_tensor *s = lb_st_find(f, "scalar");
    float sv = 0;
    if (s) memcpy(&sv, s->data, 4);
    CHECK(s && s->ndim == 0 && sv == 3.5f, "%s: scalar", ctx);
}

static void test_round_trip(void) {
    char path[128];
    pj(path, sizeof path, "rt.safetensors");
    refdata d;
    lb_st_tensor t[10];
    int nt = ref_tensors(&d, t);
    float eight[2] = {1.5f, -2.5f};
    t[nt++] = (lb_st_tensor){"eight.dims", LB_F32, 8, {1, 1, 2, 1, 1, 1, 1, 1}, eight};
    t[nt++] = (lb_st_tensor){"", LB_U8, 3, {0, 4, 0}, NULL}; /* empty name, zero-size */
    lb_status st = lb_st_write(path, t, nt, g_meta, 2);
    CHECK(st == LB_OK, "write: %s", lb_error_msg());
    CHECK(count_tmp(g_dir) == 0, "no temp file left");
    lb_st_file *f = NULL;
    st = lb_st_read(path, &f);
    CHECK(st == LB_OK && f, "read: %s", lb_error_msg());
    if (!f) return;
    CHECK(lb_st_count(f) == nt, "count %d", lb_st_count(f));
    int order = 1;
    for (int i = 0; i < nt && i < lb_st_count(f); i++)
        order &= !strcmp(lb_st_get(f, i)->name, t[i].name);
    CHECK(order, "tensors come back in written order");
    for (int i = 0; i < nt; i++) check_tensor(f, &t[i], "round trip");
    CHECK(lb_st_get(f, -1) == NULL && lb_st_get(f, nt) == NULL, "get out of range");
    const lb_st_meta *m0 = lb_st_meta_at(f, 0), *m1 = lb_st_meta_at(f, 1);
    CHECK(m0 && m1 && !strcmp(m0->key, "epoch") && !strcmp(m1->key, "note") &&
              !strcmp(m1->value, NOTE_VALUE) && lb_st_meta_at(f, 2) == NULL,
          "metadata order and values");
    /* The data section (offset 0 = first tensor) starts 8-aligned in the file and the buffer. */
    CHECK(((uintptr_t)lb_st_get(f, 0)->data % 8) == 0, "first tensor 8-aligned");
    lb_st_free(f);

    /* Nothing at all: "{}" padded to 8, no data. */
    pj(path, sizeof path, "empty.safetensors");
    CHECK(lb_st_write(path, NULL, 0, NULL, 0) == LB_OK, "write empty: %s", lb_error_msg());
    const unsigned char want[16] = {8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '};
    CHECK(same_file(path, want, sizeof want), "empty file bytes");
    f = NULL;
    CHECK(lb_st_read(path, &f) == LB_OK && lb_st_count(f) == 0 && lb_st_meta_count(f) == 0,
          "read empty: %s", lb_error_msg());
    lb_st_free(f);

    CHECK(lb_dtype_size(LB_F32) == 4 && lb_dtype_size(LB_I32) == 4 && lb_dtype_size(LB_U8) == 1 &&
              lb_dtype_size(LB_I8) == 1 && lb_dtype_size(LB_U64) == 8 &&
              lb_dtype_size((lb_dtype)99) == 0,
          "dtype sizes");
    CHECK(!strcmp(lb_dtype_name(LB_U64), "U64") && lb_dtype_name((lb_dtype)-1) == NULL,
          "dtype names");
}

static void test_header_bytes(void) {
    char path[128];
    pj(path, sizeof path, "tiny.safetensors");
    const uint8_t w[2] = {1, 2};
    const lb_st_tensor t = {"w", LB_U8, 1, {2}, w};
    const lb_st_meta m = {"k", "v"};
    CHECK(lb_st_write(path, &t, 1, &m, 1) == LB_OK, "write tiny: %s", lb_error_msg());
    const char json[] =
        "{\"__metadata__\":{\"k\":\"v\"},\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,"
        "2]}}  ";
    unsigned char want[8 + sizeof json - 1 + 2] = {80, 0, 0, 0, 0, 0, 0, 0};
    CHECK(sizeof json - 1 == 80, "expected header length");
    memcpy(want + 8, json, sizeof json - 1);
    want[88] = 1;
    want[89] = 2;
    CHECK(same_file(path, want, sizeof want), "tiny file bytes");

    /* Escapes in names and metadata. */
    pj(path, sizeof path, "esc.safetensors");
    const lb_st_tensor e = {"a\"b\\c\n\x01", LB_U8, 0, {0}, w};
    const lb_st_meta em = {"t\tab", "x"};
    CHECK(lb_st_write(path, &e, 1, &em, 1) == LB_OK, "write escapes: %s", lb_error_msg());
    const char ejson[] = "{\"__metadata__\":{\"t\\u0009ab\":\"x\"},\"a\\\"b\\\\c\\u000a\\u0001\":{"
                         "\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}";
    size_t n = 0;
    unsigned char *got = slurp(path, &n);
    CHECK(got && n > 8 + sizeof ejson - 1 && !memcmp(got + 8, ejson, sizeof ejson - 1),
          "escaped header");
    free(got);
    lb_st_file *f = NULL;
    CHECK(lb_st_read(path, &f) == LB_OK && lb_st_find(f, "a\"b\\c\n\x01") &&
              lb_st_meta_get(f, "t\tab"),
          "escaped names read back: %s", lb_error_msg());
    lb_st_free(f);
}

static const char *script_path(void) {
    static char p[512];
    const char *here = __FILE__, *slash = strrchr(here, '/');
    int dn = slash ? (int)(slash - here) : 1;
    snprintf(p, sizeof p, "%.*s/ckpt_pywrite.py", dn, slash ? here : ".");
    return p;
}

static void test_python(void) {
    const char *script = script_path();
    CHECK(access(script, R_OK) == 0, "%s readable (run from the repository root)", script);
    char path[128], cmd[1024];
    pj(path, sizeof path, "py.safetensors");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' write '%s'", script, path);
    int rc = system(cmd);
    CHECK(rc == 0, "python writer exited %d", rc);
    lb_st_file *f = NULL;
    lb_status st = lb_st_read(path, &f);
    CHECK(st == LB_OK, "read python file: %s", lb_error_msg());
    if (f) check_ref_file(f, "python-written");
    /* The Python writer stores data in reverse order; lb_st_get follows the data. */
    CHECK(f && lb_st_count(f) == 8 && !strcmp(lb_st_get(f, 0)->name, UNI_NAME) &&
              !strcmp(lb_st_get(f, 7)->name, "layer.0/weight"),
          "data order");
    lb_st_free(f);

    /* And the other way: lowbit writes, the independent reader checks every byte. */
    pj(path, sizeof path, "c.safetensors");
    refdata d;
    lb_st_tensor t[8];
    int nt = ref_tensors(&d, t);
    CHECK(lb_st_write(path, t, nt, g_meta, 2) == LB_OK, "write: %s", lb_error_msg());
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' check '%s'", script, path);
    rc = system(cmd);
    CHECK(rc == 0, "python check of the C-written file exited %d", rc);
}

/* ---- malformed files --------------------------------------------------------------------- */
static int g_bad_id;

/* A file of raw bytes must be rejected with LB_EFORMAT and a message naming it and `what`;
 * the memory reader must agree. */
static void expect_bad_raw(const void *bytes, size_t n, const char *what, int line) {
    char path[128], name[32];
    snprintf(name, sizeof name, "bad%02d.safetensors", g_bad_id++);
    pj(path, sizeof path, name);
    CHECK(write_raw(path, bytes, n) == 0, "line %d: cannot write %s", line, path);
    lb_st_file *f = (lb_st_file *)1;
    lb_status st = lb_st_read(path, &f);
    const char *msg = lb_error_msg();
    CHECK(st == LB_EFORMAT && f == NULL, "line %d: status %s, msg %s", line, lb_status_name(st),
          msg);
    CHECK(strstr(msg, path) && strstr(msg, what), "line %d: message '%s' lacks '%s'", line, msg,
          what);
    f = (lb_st_file *)1;
    st = lb_st_read_mem(bytes, n, "memname", &f);
    msg = lb_error_msg();
    CHECK(st == LB_EFORMAT && f == NULL && strstr(msg, "memname") && strstr(msg, what),
          "line %d: mem: %s %s", line, lb_status_name(st), msg);
}

/* Builds <8-byte length of json><json><data>. */
static void expect_bad(const char *json, const void *data, size_t ndata, const char *what,
                       int line) {
    size_t nj = strlen(json);
    unsigned char *buf = malloc(8 + nj + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)nj >> (8 * i));
    memcpy(buf + 8, json, nj);
    if (ndata) memcpy(buf + 8 + nj, data, ndata);
    expect_bad_raw(buf, 8 + nj + ndata, what, line);
    free(buf);
}

static lb_status read_json(const char *json, const void *data, size_t ndata, lb_st_file **f) {
    size_t nj = strlen(json);
    unsigned char *buf = malloc(8 + nj + ndata + 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)nj >> (8 * i));
    memcpy(buf + 8, json, nj);
    if (ndata) memcpy(buf + 8 + nj, data, ndata);
    lb_status st = lb_st_read_mem(buf, 8 + nj + ndata, "ok.st", f);
    free(buf);
    return st;
}

#define BAD(json, data, ndata, what) expect_bad(json, data, ndata, what, __LINE__)
#define E1(body) "{\"a\":{" body "}}"

static void test_malformed(void) {
    static const unsigned char zeros[256];
    expect_bad_raw("", 0, "too short", __LINE__);
    expect_bad_raw("\x02\0\0\0\0", 5, "too short", __LINE__);
    const unsigned char huge[16] = {0x00, 0xc2, 0xeb, 0x0b, 0, 0, 0, 0, '{', '}'}; /* 200e6 */
    expect_bad_raw(huge, sizeof huge, "exceeds the limit", __LINE__);
    const unsigned char maxn[10] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, '{', '}'};
    expect_bad_raw(maxn, sizeof maxn, "exceeds the limit", __LINE__);
    const unsigned char cut[14] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '"', 'a', '"', ':', '{'};
    expect_bad_raw(cut, sizeof cut, "truncated", __LINE__);
    const unsigned char zero_n[10] = {0, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    expect_bad_raw(zero_n, sizeof zero_n, "start with", __LINE__);

    /* A good file cut short loses data. */
    {
        char path[128];
        pj(path, sizeof path, "good.safetensors");
        const float v[4] = {1, 2, 3, 4};
        const lb_st_tensor t[2] = {{"x", LB_F32, 1, {2}, v}, {"y", LB_F32, 1, {2}, v + 2}};
        CHECK(lb_st_write(path, t, 2, NULL, 0) == LB_OK, "write good: %s", lb_error_msg());
        size_t n = 0;
        unsigned char *b = slurp(path, &n);
        CHECK(b && n > 16, "slurp good");
        if (b && n > 16) {
            expect_bad_raw(b, n - 3, "extend past", __LINE__);
            expect_bad_raw(b, n - 16, "extend past", __LINE__);
            expect_bad_raw(b, 12, "truncated", __LINE__);
        }
        free(b);
    }

    BAD("{\"a\":", NULL, 0, "not valid JSON");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]"), NULL, 0, "extend past");
    BAD("{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}", "x", 1, "not valid JSON");
    BAD("[1,2]", NULL, 0, "start with");
    BAD("\xef\xbb\xbf{}", NULL, 0, "start with");
    BAD("{} x", NULL, 0, "trailing");
    BAD("{}{}", NULL, 0, "trailing");
    BAD("{\"\xff\":1}", NULL, 0, "UTF-8");
    BAD("{\"\xc0\xaf\":1}", NULL, 0, "UTF-8");
    BAD("{\"\xed\xa0\x80\":1}", NULL, 0, "UTF-8");
    BAD("{\"a\x01\":1}", NULL, 0, "UTF-8");
    BAD("{\"a\":5}", NULL, 0, "not a JSON object");
    BAD("{\"a\\u0000b\":5}", NULL, 0, "u0000");
    BAD("{\"__metadata__\":{\"k\":\"x\\\\\\u0000\"}}", NULL, 0, "u0000");
    BAD(E1("\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]"), zeros, 2,
        "unsupported dtype 'F16'");
    BAD(E1("\"dtype\":3,\"shape\":[1],\"data_offsets\":[0,1]"), zeros, 1, "dtype is not");
    BAD(E1("\"dtype\":\"U8\",\"data_offsets\":[0,1]"), zeros, 1, "missing \"shape\"");
    BAD(E1("\"shape\":[1],\"data_offsets\":[0,1]"), zeros, 1, "missing \"dtype\"");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1]"), zeros, 1, "missing \"data_offsets\"");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":1"), zeros, 1,
        "unknown field 'x'");
    BAD(E1("\"dtype\":\"U8\",\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]"), zeros, 1,
        "twice");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]"), zeros, 1, "shape[0] is -1");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1.5],\"data_offsets\":[0,1]"), zeros, 1, "shape[0] is 1.5");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]"), zeros, 1, "shape[0]");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]"), zeros, 1, "shape[0]");
    BAD(E1("\"dtype\":\"U8\",\"shape\":1,\"data_offsets\":[0,1]"), zeros, 1, "not an array");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), zeros, 1,
        "9 dimensions");
    BAD(E1("\"dtype\":\"U64\",\"shape\":[9007199254740992,9007199254740992,0],"
           "\"data_offsets\":[0,0]"),
        NULL, 0, "overflows");
    BAD(E1("\"dtype\":\"U64\",\"shape\":[4194304,4194304,4194304],\"data_offsets\":[0,0]"), NULL, 0,
        "overflows");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]"), zeros, 4, "extend past");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,0]"), zeros, 4, "begin after end");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1,2]"), zeros, 1, "two integers");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]"), zeros, 1, "two integers");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":{}"), zeros, 1, "two integers");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[-1,0]"), zeros, 1,
        "data_offsets[0] is -1");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,\"1\"]"), zeros, 1,
        "data_offsets[1]");
    BAD(E1("\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,4]"), zeros, 4,
        "do not match shape [2] I32 (8 bytes)");
    BAD("{\"u\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}",
        zeros, 12, "overlap");
    BAD("{\"u\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}",
        zeros, 8, "overlap");
    BAD("{\"u\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
        "\"v\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}",
        zeros, 12, "hole");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]"), zeros, 8, "hole");
    BAD(E1("\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]"), zeros, 8, "hole");
    BAD("{}", zeros, 4, "hole");
    BAD("{\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
        zeros, 2, "tensor name 'u' appears twice");
    BAD("{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, "__metadata__ appears twice");
    BAD("{\"__metadata__\":{\"a\":1}}", NULL, 0, "value of 'a' is not a string");
    BAD("{\"__metadata__\":{\"a\":{}}}", NULL, 0, "not a string");
    BAD("{\"__metadata__\":{\"a\":null}}", NULL, 0, "not a string");
    BAD("{\"__metadata__\":[\"a\"]}", NULL, 0, "__metadata__ is not");
    BAD("{\"__metadata__\":{\"a\":\"1\",\"a\":\"2\"}}", NULL, 0, "key 'a' appears twice");

    /* The exact message for the common mistake. */
    {
        char path[128];
        pj(path, sizeof path, "run.ckpt");
        const char *json = "{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[3,3],"
                           "\"data_offsets\":[0,100]}}";
        size_t nj = strlen(json);
        unsigned char buf[8 + 200 + 100] = {(unsigned char)nj};
        memcpy(buf + 8, json, nj);
        CHECK(write_raw(path, buf, 8 + nj + 100) == 0, "write run.ckpt");
        lb_st_file *f = NULL;
        CHECK(lb_st_read(path, &f) == LB_EFORMAT, "run.ckpt rejected");
        char want[300];
        snprintf(want, sizeof want,
                 "%s: tensor 'conv1.weight': data_offsets [0, 100] do not match shape [3,3] F32 "
                 "(36 bytes)",
                 path);
        CHECK(!strcmp(lb_error_msg(), want), "message '%s'", lb_error_msg());
    }

    /* Things that are fine: whitespace, zero-size tensors sharing offsets, unaligned data. */
    lb_st_file *f = NULL;
    CHECK(read_json("{ }\n\t ", NULL, 0, &f) == LB_OK && lb_st_count(f) == 0, "whitespace: %s",
          lb_error_msg());
    lb_st_free(f);
    f = NULL;
    lb_status st = read_json("{\"__metadata__\":{\"k\":\"\\\\u0000\"}}", NULL, 0, &f);
    const char *kv = lb_st_meta_get(f, "k");
    CHECK(st == LB_OK && kv && !strcmp(kv, "\\u0000"), "escaped backslash before u0000: %s",
          lb_error_msg());
    lb_st_free(f);
    f = NULL;
    const unsigned char data[5] = {7, 0, 0, 0xc0, 0x3f}; /* U8 7, F32 1.5 at offset 1 */
    st = read_json("{\"z2\":{\"dtype\":\"I32\",\"shape\":[0,3],\"data_offsets\":[5,5]},"
                   "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[1,5]},"
                   "\"z0\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
                   "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
                   "\"__metadata__\":{}}",
                   data, sizeof data, &f);
    CHECK(st == LB_OK, "zero-size and unaligned: %s", lb_error_msg());
    if (f) {
        const char *order[4] = {"z0", "b", "f", "z2"};
        int ok = lb_st_count(f) == 4;
        for (int i = 0; ok && i < 4; i++) ok = !strcmp(lb_st_get(f, i)->name, order[i]);
        CHECK(ok, "data order with zero-size tensors");
        const lb_st_tensor *t = lb_st_find(f, "f");
        float v = 0;
        if (t) memcpy(&v, t->data, 4);
        CHECK(v == 1.5f, "unaligned F32 via memcpy: %g", v);
    }
    lb_st_free(f);

    /* Open/read failures are LB_EIO. */
    char path[128];
    pj(path, sizeof path, "missing.safetensors");
    f = NULL;
    st = lb_st_read(path, &f);
    CHECK(st == LB_EIO && f == NULL && strstr(lb_error_msg(), path), "missing file: %s %s",
          lb_status_name(st), lb_error_msg());
    st = lb_st_read(g_dir, &f);
    CHECK(st == LB_EIO && strstr(lb_error_msg(), g_dir), "directory: %s", lb_error_msg());
}

/* ---- failed writes ------------------------------------------------------------------------- */
static void test_write_failures(void) {
    char path[256], good[128];
    const float v[4] = {1, 2, 3, 4};
    lb_st_tensor t = {"v", LB_F32, 1, {4}, v};

    pj(path, sizeof path, "nodir/sub/x.safetensors");
    lb_status st = lb_st_write(path, &t, 1, NULL, 0);
    CHECK(st == LB_EIO && strstr(lb_error_msg(), path) && strstr(lb_error_msg(), "No such file"),
          "missing directory: %s %s", lb_status_name(st), lb_error_msg());
    pj(path, sizeof path, "nodir");
    CHECK(access(path, F_OK) != 0, "nothing created");

    pj(path, sizeof path, "afile");
    CHECK(write_raw(path, "x", 1) == 0, "make afile");
    pj(path, sizeof path, "afile/x.safetensors");
    st = lb_st_write(path, &t, 1, NULL, 0);
    CHECK(st == LB_EIO && strstr(lb_error_msg(), path), "parent is a file: %s", lb_error_msg());

    /* Path is a directory: the rename fails after a complete temporary file was written. */
    pj(path, sizeof path, "adir");
    CHECK(mkdir(path, 0755) == 0, "mkdir adir");
    st = lb_st_write(path, &t, 1, NULL, 0);
    struct stat sb;
    CHECK(st == LB_EIO && strstr(lb_error_msg(), path) && strstr(lb_error_msg(), "rename"),
          "path is a directory: %s", lb_error_msg());
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "directory untouched");
    CHECK(count_tmp(g_dir) == 0, "no temp file after failed rename");

    /* A good file must survive every failure below. */
    pj(good, sizeof good, "keep.safetensors");
    CHECK(lb_st_write(good, &t, 1, g_meta, 2) == LB_OK, "write good: %s", lb_error_msg());
    size_t gn = 0;
    unsigned char *gb = slurp(good, &gn);
    CHECK(gb != NULL, "slurp good");
    if (!gb) return;

    /* The temporary name is taken (by a directory): no overwrite, no removal of what is not ours.
     */
    snprintf(path, sizeof path, "%s.tmp.%ld", good, (long)getpid());
    CHECK(mkdir(path, 0755) == 0, "occupy temp name");
    st = lb_st_write(good, &t, 1, NULL, 0);
    CHECK(st == LB_EIO && strstr(lb_error_msg(), good), "temp taken: %s", lb_error_msg());
    CHECK(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode), "occupant kept");
    CHECK(same_file(good, gb, gn), "good file intact (temp taken)");
    rmdir(path);

    /* Disk "full" halfway: a file-size limit makes fwrite/fflush fail with EFBIG. */
    struct rlimit old;
    if (getrlimit(RLIMIT_FSIZE, &old) == 0 && old.rlim_max >= 4096) {
        void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
        struct rlimit lim = {4096, old.rlim_max};
        size_t nbig = 16384;
        float *big = calloc(nbig, sizeof *big);
        lb_st_tensor bt = {"big", LB_F32, 1, {(int64_t)nbig}, big};
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "setrlimit");
        st = lb_st_write(good, &bt, 1, NULL, 0);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        CHECK(st == LB_EIO && strstr(lb_error_msg(), good) && strstr(lb_error_msg(), "large"),
              "write beyond file-size limit: %s %s", lb_status_name(st), lb_error_msg());
        CHECK(same_file(good, gb, gn), "good file intact (write failed)");
        CHECK(count_tmp(g_dir) == 0, "temp removed after failed write");
        free(big);
    }

    /* Bad arguments are LB_EINVAL and write nothing. */
    lb_st_tensor two[2] = {t, t};
    CHECK(lb_st_write(good, two, 2, NULL, 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "appears twice"),
          "duplicate names: %s", lb_error_msg());
    lb_st_tensor x = t;
    x.name = "__metadata__";
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "tensor named __metadata__");
    x = t;
    x.shape[0] = -1;
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "negative shape");
    x = t;
    x.ndim = LB_ST_MAXDIM + 1;
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "too many dims");
    x = t;
    x.dtype = (lb_dtype)17;
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "bad dtype");
    x = t;
    x.data = NULL;
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "NULL data");
    x = t;
    x.name = "\xff";
    CHECK(lb_st_write(good, &x, 1, NULL, 0) == LB_EINVAL, "invalid UTF-8 name");
    const lb_st_meta dm[2] = {{"k", "1"}, {"k", "2"}};
    CHECK(lb_st_write(good, &t, 1, dm, 2) == LB_EINVAL, "duplicate metadata keys");
    const lb_st_meta nm = {"k", NULL};
    CHECK(lb_st_write(good, &t, 1, &nm, 1) == LB_EINVAL, "NULL metadata value");
    CHECK(same_file(good, gb, gn), "good file intact (bad arguments)");
    CHECK(count_tmp(g_dir) == 0, "no temp files at the end");
    free(gb);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/lb_ckpt_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trip();
    test_header_bytes();
    test_python();
    test_malformed();
    test_write_failures();
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END("test_ckpt");
}
