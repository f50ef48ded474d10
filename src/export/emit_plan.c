/* The storage plan of an exported CNN: which max pools run inside their conv, and where each
 * tensor lives in the static arenas (by lifetime, one arena per element type). Not the text
 * (emit_c.c). */
#include "../int/int_internal.h"
#include "export_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- storage plan ---------------------------------------------------------------------------- */
static int arena_of(lb_int_type t) {
    return t == LB_IT_S32 ? 2 : t == LB_IT_S16 ? 1 : 0;
}

void lb_export_plan_free(lb_export_plan *p) {
    free(p->pool_of);
    free(p->absorbed);
    free(p->arena);
    free(p->off);
    memset(p, 0, sizeof *p);
}

size_t lb_export_plan_bytes(const lb_export_plan *p) {
    return p->elems[0] + 2 * p->elems[1] + 4 * p->elems[2] + 4 * p->acc + p->wbuf;
}

lb_status lb_export_plan_make(const lb_int_model *m, lb_export_plan *p) {
    memset(p, 0, sizeof *p);
    size_t no = (size_t)m->nops, nt = (size_t)m->nt;
    p->pool_of = malloc(no * sizeof *p->pool_of);
    p->absorbed = calloc(no, sizeof *p->absorbed);
    p->arena = malloc(nt * sizeof *p->arena);
    p->off = calloc(nt, sizeof *p->off);
    int *def = malloc(nt * sizeof *def), *last = malloc(nt * sizeof *last);
    int *readers = calloc(nt, sizeof *readers);
    if (!p->pool_of || !p->absorbed || !p->arena || !p->off || !def || !last || !readers) {
        free(def);
        free(last);
        free(readers);
        lb_export_plan_free(p);
        return lb_error_set(LB_ENOMEM, "out of memory planning the export");
    }
    for (size_t i = 0; i < no; i++)
        for (int j = 0; j < 2; j++)
            if (m->ops[i].in[j] >= 0) readers[m->ops[i].in[j]]++;
    for (size_t i = 0; i < no; i++) {
        p->pool_of[i] = -1;
        const lb_int_op *op = &m->ops[i];
        if (op->kind != LB_IOP_CONV || op->linear || readers[op->out] != 1) continue;
        for (size_t j = i + 1; j < no; j++)
            if (m->ops[j].in[0] == op->out && m->ops[j].kind == LB_IOP_MAXPOOL) {
                p->pool_of[i] = (int)j;
                p->absorbed[j] = 1;
            }
    }
    for (size_t t = 0; t < nt; t++) {
        def[t] = last[t] = -1;
        p->arena[t] = arena_of(m->t[t].type);
    }
    for (size_t i = 0; i < no; i++) {
        const lb_int_op *op = &m->ops[i];
        if (p->absorbed[i]) continue;
        int out = p->pool_of[i] >= 0 ? m->ops[p->pool_of[i]].out : op->out;
        if (p->pool_of[i] >= 0) p->arena[op->out] = -1; /* never stored */
        if (def[out] < 0) def[out] = (int)i;
        for (int j = 0; j < 2; j++)
            if (op->in[j] >= 0) last[op->in[j]] = (int)i;
        if (op->kind == LB_IOP_CONV) {
            size_t plane = (size_t)op->oh * op->ow,
                   K = (size_t)op->cin / op->groups * op->k * op->k;
            p->acc = plane > p->acc ? plane : p->acc;
            p->wbuf = K > p->wbuf ? K : p->wbuf;
        }
    }
    last[m->logits] = m->nops;
    for (size_t t = 0; t < nt; t++) {
        if (p->arena[t] < 0 || def[t] < 0) {
            p->arena[t] = -1;
            continue;
        }
        if (last[t] < def[t]) last[t] = def[t];
        size_t need = (lb_int_numel(&m->t[t]) + 3) / 4 * 4, off = 0;
        for (int again = 1; again;) {
            again = 0;
            for (size_t u = 0; u < t; u++) {
                if (p->arena[u] != p->arena[t] || last[u] < def[t] || last[t] < def[u]) continue;
                size_t un = (lb_int_numel(&m->t[u]) + 3) / 4 * 4;
                if (off < p->off[u] + un && p->off[u] < off + need) {
                    off = p->off[u] + un;
                    again = 1;
                }
            }
        }
        p->off[t] = off;
        if (off + need > p->elems[p->arena[t]]) p->elems[p->arena[t]] = off + need;
    }
    free(def);
    free(last);
    free(readers);
    return LB_OK;
}
