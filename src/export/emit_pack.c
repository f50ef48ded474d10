/* Weight codes packed for the exported C (shared by the CNN and spiking emitters): the byte
 * layout lbm_unpack and the spiking runner's lbm_code read back. Not the text of either runner. */
#include <stdlib.h>

#include "export_internal.h"

void lb_emit_u8_array(FILE *f, const char *name, const unsigned char *v, size_t n) {
    fprintf(f, "static const unsigned char %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%u,", i % 20 ? " " : "\n    ", v[i]);
    fputs("\n};\n", f);
}

/* Codes of one layer, packed little-endian within bytes: 8-bit as bytes (two's complement),
 * 4-bit two per byte (low nibble first), 2-bit four per byte (lowest bits first). */
unsigned char *lb_emit_pack_codes(const int16_t *w, const unsigned char *idx, size_t n, int sbits,
                                  size_t *bytes) {
    int per = 8 / sbits;
    *bytes = (n + (size_t)per - 1) / (size_t)per;
    unsigned char *p = calloc(*bytes ? *bytes : 1, 1);
    if (!p) return NULL;
    unsigned mask = (1u << sbits) - 1;
    for (size_t i = 0; i < n; i++)
        p[i / (size_t)per] |= (unsigned char)((((unsigned)(w ? w[i] : idx[i])) & mask)
                                              << ((i % (size_t)per) * sbits));
    return p;
}

/* A sliced layer's rows (lb_emit_row_bytes): output channel co packed as lb_emit_pack_codes does at
 * its own storage bits, from a byte boundary; writes the row tables lbm_rb<i> (storage bits) and
 * lbm_ro<i> (byte offsets) to f before the codes. NULL when out of memory. */
unsigned char *lb_emit_pack_rows(const lb_int_op *op, int K, size_t *bytes, int i, FILE *f) {
    size_t total = 0;
    for (int co = 0; co < op->cout; co++) {
        int per = 8 / lb_emit_storage_bits(op->rbits[co]);
        total += ((size_t)K + per - 1) / per;
    }
    unsigned char *p = calloc(total ? total : 1, 1);
    if (!p) return NULL;
    fprintf(f, "static const signed char lbm_rb%d[%d] = {", i, op->cout);
    for (int co = 0; co < op->cout; co++)
        fprintf(f, "%s%d,", co % 16 ? " " : "\n    ", lb_emit_storage_bits(op->rbits[co]));
    fprintf(f, "\n};\nstatic const int32_t lbm_ro%d[%d] = {", i, op->cout);
    size_t off = 0;
    for (int co = 0; co < op->cout; co++) {
        int sb = lb_emit_storage_bits(op->rbits[co]), per = 8 / sb;
        unsigned mask = (1u << sb) - 1;
        fprintf(f, "%s%zu,", co % 8 ? " " : "\n    ", off);
        for (int k = 0; k < K; k++)
            p[off + (size_t)(k / per)] |=
                (unsigned char)((((unsigned)op->w[(size_t)co * K + k]) & mask) << ((k % per) * sb));
        off += ((size_t)K + per - 1) / per;
    }
    fputs("\n};\n", f);
    *bytes = total;
    return p;
}
