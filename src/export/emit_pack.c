/* Weight codes packed for the exported C (shared by the CNN and spiking emitters): the byte
 * layout lbm_unpack and the spiking runner's lbm_code read back. Not the text of either runner. */
#include <stdlib.h>

#include "export_internal.h"

void lb_emit_u8_array(FILE *f, const char *name, const unsigned char *v, size_t n) {
    fprintf(f, "static const unsigned char %s[%zu] = {", name, n);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%u,", i % 20 ? " " : "\n    ", v[i]);
    fputs("\n};\n", f);
}

/* n codes (two's complement, or level indices) as one bit stream from p's first bit: code j
 * takes bits j*sb .. j*sb+sb-1, bit b of the stream being bit b%8 of byte b/8. At 2, 4 and 8 bits
 * that is four, two or one code a byte, lowest bits first; a 3-bit code may straddle two bytes. */
static void put_codes(unsigned char *p, const int16_t *w, const unsigned char *idx, size_t n,
                      int sb) {
    unsigned mask = (1u << sb) - 1;
    for (size_t i = 0; i < n; i++) {
        size_t b = i * (size_t)sb;
        unsigned v = (((unsigned)(w ? w[i] : idx[i])) & mask) << (b % 8);
        p[b / 8] |= (unsigned char)(v & 0xffu);
        if (v > 0xffu) p[b / 8 + 1] |= (unsigned char)(v >> 8);
    }
}

unsigned char *lb_emit_pack_codes(const int16_t *w, const unsigned char *idx, size_t n, int sbits,
                                  size_t *bytes) {
    *bytes = lb_emit_packed_bytes(n, sbits);
    unsigned char *p = calloc(*bytes ? *bytes : 1, 1);
    if (!p) return NULL;
    put_codes(p, w, idx, n, sbits);
    return p;
}

/* A sliced layer's rows (lb_emit_row_bytes): output channel co packed as lb_emit_pack_codes does at
 * its own storage bits, from a byte boundary; writes the row tables lbm_rb<i> (storage bits) and
 * lbm_ro<i> (byte offsets) to f before the codes. NULL when out of memory. */
unsigned char *lb_emit_pack_rows(const lb_int_op *op, int K, size_t *bytes, int i, FILE *f) {
    size_t total = 0;
    for (int co = 0; co < op->cout; co++)
        total += lb_emit_packed_bytes((size_t)K, lb_emit_storage_bits(op->rbits[co]));
    unsigned char *p = calloc(total ? total : 1, 1);
    if (!p) return NULL;
    fprintf(f, "static const signed char lbm_rb%d[%d] = {", i, op->cout);
    for (int co = 0; co < op->cout; co++)
        fprintf(f, "%s%d,", co % 16 ? " " : "\n    ", lb_emit_storage_bits(op->rbits[co]));
    fprintf(f, "\n};\nstatic const int32_t lbm_ro%d[%d] = {", i, op->cout);
    size_t off = 0;
    for (int co = 0; co < op->cout; co++) {
        int sb = lb_emit_storage_bits(op->rbits[co]);
        fprintf(f, "%s%zu,", co % 8 ? " " : "\n    ", off);
        put_codes(p + off, op->w + (size_t)co * K, NULL, (size_t)K, sb);
        off += lb_emit_packed_bytes((size_t)K, sb);
    }
    fputs("\n};\n", f);
    *bytes = total;
    return p;
}
