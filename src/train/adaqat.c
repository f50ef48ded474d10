/* AdaQAT's learned bit-widths (methods.md sec. 4, docs/mixed.md): the width update and freeze
 * rule, the probe forwards, and the checkpoint/metrics forms. Not the trainer's loop (train.c
 * calls in here once per step) and not a quantizer (it only sets bits). */
#include "lb_adaqat.h"
#include "lb_ops.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_methods[] = {"none", "adaqat", NULL};
static const char *const g_scopes[] = {"layer", "net", NULL};

lb_status lb_learn_bits_parse(const char *s, lb_learn_bits *out) {
    for (int i = 0; g_methods[i]; i++)
        if (strcmp(s, g_methods[i]) == 0) {
            *out = (lb_learn_bits)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "--learn-bits: expected adaqat (or none), got '%s'", s);
}

lb_status lb_bits_scope_parse(const char *s, lb_bits_scope *out) {
    for (int i = 0; g_scopes[i]; i++)
        if (strcmp(s, g_scopes[i]) == 0) {
            *out = (lb_bits_scope)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "--learn-bits-scope: expected layer or net, got '%s'", s);
}

const char *lb_learn_bits_name(lb_learn_bits m) {
    return (unsigned)m < 2 ? g_methods[m] : "?";
}

const char *lb_bits_scope_name(lb_bits_scope s) {
    return (unsigned)s < 2 ? g_scopes[s] : "?";
}

int lb_bitwidth_bits(const lb_bitwidth *b) {
    return (int)ceilf(b->n);
}

float lb_adaqat_lambda(const lb_adaqat *s) {
    for (int p = 0; p < s->npairs; p++)
        if (!s->w[p].frozen) return s->lambda;
    return 0.5f * s->lambda;
}

/* N <- clamp(N - lr*g); a rise of b from v is counted, and the 11th from one value freezes. */
static void step_width(lb_bitwidth *w, double g, float lr) {
    if (w->frozen || !isfinite(g)) return;
    int old = lb_bitwidth_bits(w);
    float n = (float)((double)w->n - (double)lr * g);
    if (n < LB_ADAQAT_FLOOR) n = LB_ADAQAT_FLOOR;
    if (n > (float)LB_ADAQAT_MAXBITS) n = (float)LB_ADAQAT_MAXBITS;
    w->n = n;
    int now = lb_bitwidth_bits(w);
    if (now > old && ++w->rises[old] > LB_ADAQAT_RISES) w->frozen = 1;
}

int lb_adaqat_turn(const lb_adaqat *s, long step) {
    return (int)(step % s->npairs);
}

void lb_adaqat_update(lb_adaqat *s, int turn, double L, double Lw, double La, int probed_w,
                      int probed_a) {
    if (!isfinite(L) || turn < 0 || turn >= s->npairs) return;
    /* both use the lambda from before this update: "settled" is judged once per step */
    double lam = lb_adaqat_lambda(s);
    lb_bitwidth *w = &s->w[turn], *a = &s->a[turn];
    if (!probed_w || isfinite(Lw))
        step_width(w, (probed_w ? L - Lw : 0) + lam * lb_bitwidth_bits(a), s->lr);
    if (!probed_a || isfinite(La))
        step_width(a, (probed_a ? L - La : 0) + lam * lb_bitwidth_bits(w), s->lr);
}

static int learnable(const lb_quant *q) {
    lb_qkind k = q->cfg.kind;
    return k == LB_Q_LSQ || k == LB_Q_FIXED || k == LB_Q_DOREFA || k == LB_Q_PACT;
}

lb_status lb_adaqat_init(lb_adaqat *s, const lb_net *n, lb_bits_scope scope, float lr,
                         float lambda) {
    memset(s, 0, sizeof *s);
    s->scope = scope;
    s->lr = lr;
    s->lambda = lambda;
    int first = -1, last = -1;
    for (int i = 1; i < n->nnodes; i++)
        if (n->nodes[i].op == LB_OP_CONV || n->nodes[i].op == LB_OP_LINEAR) {
            if (first < 0) first = i;
            last = i;
        }
    /* first and last layers keep the plan's --first-bits / --last-bits: the image input stays
     * float, and both layers are small and the most sensitive (docs/mixed.md) */
    for (int i = first + 1; i < last; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        if (!learnable(&d->wq) || !learnable(&d->aq)) continue;
        if (s->nlayers == LB_ADAQAT_MAX)
            return lb_error_set(LB_EINVAL, "--learn-bits: more than %d layers", LB_ADAQAT_MAX);
        int k = s->nlayers++;
        s->node[k] = i;
        if (scope == LB_BITS_NET && k > 0) continue;
        s->w[k].n = (float)d->wq.cfg.bits;
        s->a[k].n = (float)d->aq.cfg.bits;
    }
    if (s->nlayers == 0)
        return lb_error_set(LB_EINVAL,
                            "--learn-bits: no layer to learn widths for (it needs quantized "
                            "weights and activations of kind lsq, fixed, dorefa or pact between "
                            "the first and the last layer)");
    s->npairs = scope == LB_BITS_NET ? 1 : s->nlayers;
    return LB_OK;
}

static int pair_of(const lb_adaqat *s, int i) {
    return s->npairs > 1 ? i : 0;
}

/* Sets bits ceil(N) on every learned quantizer, one less on pair `turn`'s weights (lower_w) or
 * activations (lower_a) where that pair can be probed; keep: for good, ranges kept. */
static lb_status set_bits(const lb_adaqat *s, lb_net *n, int turn, int lower_w, int lower_a,
                          int keep) {
    lb_status (*set)(lb_quant *, int) = keep ? lb_quant_set_bits_keep_range : lb_quant_set_bits;
    for (int i = 0; i < s->nlayers; i++) {
        lb_node *d = &n->nodes[s->node[i]];
        int p = pair_of(s, i);
        const lb_bitwidth *w = &s->w[p], *a = &s->a[p];
        int bw = lb_bitwidth_bits(w), ba = lb_bitwidth_bits(a);
        if (p == turn && lower_w && !w->frozen && bw > 2) bw--;
        if (p == turn && lower_a && !a->frozen && ba > 2) ba--;
        lb_status st = set(&d->wq, bw);
        if (st == LB_OK) st = set(&d->aq, ba);
        if (st != LB_OK) return st;
    }
    return LB_OK;
}

lb_status lb_adaqat_apply(const lb_adaqat *s, lb_net *n) {
    return set_bits(s, n, -1, 0, 0, 0);
}

lb_status lb_adaqat_commit(const lb_adaqat *s, lb_net *n) {
    return set_bits(s, n, -1, 0, 0, 1);
}

/* One training-mode forward at lowered widths; state and RNG put back afterwards. */
static double probe_loss(const lb_adaqat *s, lb_net *n, int turn, int lw, int la, const float *x,
                         const int32_t *y, int b, float ls, float *probs, float *state_save,
                         lb_status *st) {
    if ((*st = set_bits(s, n, turn, lw, la, 0)) != LB_OK) return NAN;
    memcpy(state_save, n->state, n->nstate * sizeof(float));
    lb_rng rng = n->rng;
    const float *logits = lb_net_forward(n, x, b, 1);
    int nc;
    double L = lb_xent_forward(b, lb_net_classes(n), logits, y, ls, probs, &nc);
    memcpy(n->state, state_save, n->nstate * sizeof(float));
    n->rng = rng;
    return L;
}

lb_status lb_adaqat_probe(const lb_adaqat *s, lb_net *n, int turn, const float *x, const int32_t *y,
                          int b, float label_smoothing, float *probs, float *state_save, double *Lw,
                          double *La, int *probed_w, int *probed_a) {
    *probed_w = !s->w[turn].frozen && lb_bitwidth_bits(&s->w[turn]) > 2;
    *probed_a = !s->a[turn].frozen && lb_bitwidth_bits(&s->a[turn]) > 2;
    lb_status st = LB_OK;
    *Lw = *La = NAN;
    if (*probed_w)
        *Lw = probe_loss(s, n, turn, 1, 0, x, y, b, label_smoothing, probs, state_save, &st);
    if (st == LB_OK && *probed_a)
        *La = probe_loss(s, n, turn, 0, 1, x, y, b, label_smoothing, probs, state_save, &st);
    lb_status st2 = lb_adaqat_apply(s, n);
    return st != LB_OK ? st : st2;
}

lb_status lb_adaqat_layer_bits(const lb_net *n, char *buf, size_t cap) {
    size_t k = 0;
    buf[0] = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        int wb = d->wq.cfg.kind == LB_Q_NONE ? 0 : d->wq.cfg.bits;
        int ab = d->aq.cfg.kind == LB_Q_NONE ? 0 : d->aq.cfg.bits;
        int m = snprintf(buf + k, cap - k, "%s%s=%d/%d", k ? "," : "", d->name, wb, ab);
        if (m < 0 || (size_t)m >= cap - k)
            return lb_error_set(LB_EINVAL, "learned bit-widths: too many layers for layer_bits");
        k += (size_t)m;
    }
    return LB_OK;
}

static cJSON *side_json(const lb_bitwidth *w, int np) {
    cJSON *o = cJSON_CreateObject(), *nn = cJSON_CreateArray(), *fr = cJSON_CreateArray(),
          *ri = cJSON_CreateArray();
    for (int p = 0; p < np; p++) {
        cJSON_AddItemToArray(nn, cJSON_CreateNumber(w[p].n)); /* a float: exact in %.17g */
        cJSON_AddItemToArray(fr, cJSON_CreateNumber(w[p].frozen));
        cJSON *r = cJSON_CreateIntArray(w[p].rises, LB_ADAQAT_MAXBITS + 1);
        cJSON_AddItemToArray(ri, r);
    }
    cJSON_AddItemToObject(o, "n", nn);
    cJSON_AddItemToObject(o, "frozen", fr);
    cJSON_AddItemToObject(o, "rises", ri);
    return o;
}

char *lb_adaqat_to_json(const lb_adaqat *s, const lb_net *n) {
    cJSON *o = cJSON_CreateObject(), *ly = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "scope", lb_bits_scope_name(s->scope));
    for (int i = 0; i < s->nlayers; i++)
        cJSON_AddItemToArray(ly, cJSON_CreateString(n->nodes[s->node[i]].name));
    cJSON_AddItemToObject(o, "layers", ly);
    cJSON_AddItemToObject(o, "w", side_json(s->w, s->npairs));
    cJSON_AddItemToObject(o, "a", side_json(s->a, s->npairs));
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return js;
}

static lb_status bad(const char *path, const char *what) {
    return lb_error_set(LB_EFORMAT, "%s: metadata lowbit.adaqat: %s", path, what);
}

static lb_status side_from(const cJSON *o, const char *path, const char *key, int np,
                           lb_bitwidth *w, const int *built) {
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, key);
    const cJSON *nn = cJSON_GetObjectItemCaseSensitive(sd, "n"),
                *fr = cJSON_GetObjectItemCaseSensitive(sd, "frozen"),
                *ri = cJSON_GetObjectItemCaseSensitive(sd, "rises");
    if (!cJSON_IsArray(nn) || !cJSON_IsArray(fr) || !cJSON_IsArray(ri) ||
        cJSON_GetArraySize(nn) != np || cJSON_GetArraySize(fr) != np ||
        cJSON_GetArraySize(ri) != np)
        return bad(path, "widths missing or not one per learned layer");
    for (int p = 0; p < np; p++) {
        const cJSON *v = cJSON_GetArrayItem(nn, p), *f = cJSON_GetArrayItem(fr, p),
                    *r = cJSON_GetArrayItem(ri, p);
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= LB_ADAQAT_FLOOR) ||
            !(v->valuedouble <= LB_ADAQAT_MAXBITS))
            return bad(path, "a width is not a number in [1.5, 8]");
        w[p].n = (float)v->valuedouble;
        if (lb_bitwidth_bits(&w[p]) != built[p])
            return bad(path, "a width does not match the bits in lowbit.model's layer_bits");
        if (!cJSON_IsNumber(f) || (f->valueint != 0 && f->valueint != 1))
            return bad(path, "a frozen flag is not 0 or 1");
        w[p].frozen = f->valueint;
        if (!cJSON_IsArray(r) || cJSON_GetArraySize(r) != LB_ADAQAT_MAXBITS + 1)
            return bad(path, "rise counts are not 9 integers per width");
        for (int k = 0; k <= LB_ADAQAT_MAXBITS; k++) {
            const cJSON *c = cJSON_GetArrayItem(r, k);
            if (!cJSON_IsNumber(c) || c->valuedouble < 0 || c->valuedouble > 1e9)
                return bad(path, "a rise count is not a non-negative integer");
            w[p].rises[k] = c->valueint;
        }
    }
    return LB_OK;
}

lb_status lb_adaqat_from_json(const char *js, const char *path, const lb_net *n, lb_adaqat *s) {
    cJSON *o = cJSON_Parse(js);
    lb_status st = LB_OK;
    int bw[LB_ADAQAT_MAX], ba[LB_ADAQAT_MAX];
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(o, "scope"),
                *ly = cJSON_GetObjectItemCaseSensitive(o, "layers");
    if (!cJSON_IsObject(o) || !cJSON_IsString(sc) || !cJSON_IsArray(ly)) {
        st = bad(path, "not an object with scope and layers");
        goto out;
    }
    if (strcmp(sc->valuestring, lb_bits_scope_name(s->scope)) != 0) {
        st = bad(path, "scope differs from the training configuration's");
        goto out;
    }
    if (cJSON_GetArraySize(ly) != s->nlayers) {
        st = bad(path, "its layers are not the model's learned layers");
        goto out;
    }
    for (int i = 0; i < s->nlayers; i++) {
        const cJSON *nm = cJSON_GetArrayItem(ly, i);
        if (!cJSON_IsString(nm) || strcmp(nm->valuestring, n->nodes[s->node[i]].name) != 0) {
            st = bad(path, "its layers are not the model's learned layers");
            goto out;
        }
        bw[i] = n->nodes[s->node[i]].wq.cfg.bits;
        ba[i] = n->nodes[s->node[i]].aq.cfg.bits;
    }
    st = side_from(o, path, "w", s->npairs, s->w, bw);
    if (st == LB_OK) st = side_from(o, path, "a", s->npairs, s->a, ba);
out:
    cJSON_Delete(o);
    return st;
}

void lb_adaqat_metrics(const lb_adaqat *s, const lb_net *n, char *buf, size_t cap) {
    if (!s || cap == 0) {
        if (cap) buf[0] = 0;
        return;
    }
    size_t k = 0;
    int m = snprintf(buf, cap, ",\"bits_lambda\":%g,\"widths\":[", (double)lb_adaqat_lambda(s));
    for (int i = 0; i < s->nlayers && m >= 0 && (size_t)m < cap - k; i++) {
        k += (size_t)m;
        const lb_bitwidth *w = &s->w[pair_of(s, i)], *a = &s->a[pair_of(s, i)];
        m = snprintf(buf + k, cap - k,
                     "%s{\"layer\":\"%s\",\"nw\":%.6f,\"na\":%.6f,\"bw\":%d,\"ba\":%d,"
                     "\"frozen_w\":%d,\"frozen_a\":%d}",
                     i ? "," : "", n->nodes[s->node[i]].name, (double)w->n, (double)a->n,
                     lb_bitwidth_bits(w), lb_bitwidth_bits(a), w->frozen, a->frozen);
    }
    if (m >= 0 && (size_t)m < cap - k) {
        k += (size_t)m;
        snprintf(buf + k, cap - k, "]");
    }
}
