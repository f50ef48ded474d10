/* Which requantizations of an integer model are pure shifts (their multiplier m a power of two),
 * counted per op for `lowbit export`'s summary and the po2 tests. Not the derivation itself. */
#include "int_internal.h"

static int pow2(int32_t m) {
    uint32_t u = m < 0 ? (uint32_t)0 - (uint32_t)m : (uint32_t)m;
    return u != 0 && (u & (u - 1)) == 0;
}

void lb_int_shift_count(const lb_int_model *m, lb_int_shift_stats *out) {
    *out = (lb_int_shift_stats){0};
    for (int i = 0; i < m->nops; i++) {
        const lb_int_op *op = &m->ops[i];
        int n = op->kind == LB_IOP_CONV    ? op->cout
                : op->kind == LB_IOP_QUANT ? 1
                : op->kind == LB_IOP_ADD   ? 2
                                           : 0;
        int all = 1;
        for (int c = 0; c < n; c++) {
            /* an add branch already at the output scale is not requantized at all */
            if (op->kind == LB_IOP_ADD && op->rq_id[c]) continue;
            all &= pow2(op->rq[c].m);
        }
        if (op->kind == LB_IOP_CONV) {
            out->convs++;
            out->conv_shift += all;
        } else if (n) {
            out->other++;
            out->other_shift += all;
        }
    }
}
