/* Private to src/export: the C99 emitters (emit_c.c) used by the directory writer (export.c). */
#ifndef LB_EXPORT_INTERNAL_H
#define LB_EXPORT_INTERNAL_H

#include <stdio.h>

#include "lb_int.h"

/* How the exported code stores the model: a conv whose only reader is a max pool pools each
 * output channel's plane as it is requantized (its full output never exists: on the cnn this
 * takes its static RAM from 58 to 39 KB); tensors are overlapped by lifetime in one static arena
 * per element type (0 chars, 1 int16, 2 int32), so no buffer is read through two types. */
typedef struct lb_export_plan {
    int *pool_of;  /* per op: a conv's absorbed max-pool op, else -1 */
    int *absorbed; /* per op: 1 for a max pool done inside its conv */
    int *arena;    /* per tensor: 0, 1, 2, or -1 when never stored */
    size_t *off;   /* per tensor: offset in its arena, in elements */
    size_t elems[3];
    size_t acc;  /* int32 accumulator plane (largest conv output plane) */
    size_t wbuf; /* one output channel's unpacked codes (largest K) */
} lb_export_plan;

lb_status lb_export_plan_make(const lb_int_model *m, lb_export_plan *p);
void lb_export_plan_free(lb_export_plan *p);
size_t lb_export_plan_bytes(const lb_export_plan *p); /* all static buffers */

/* Each writes one file's text; they return 0, or -1 when the model has something they cannot
 * express (with lb_error_set). I/O errors are the caller's (ferror). */
int lb_emit_model_h(FILE *f, const lb_int_model *m, const char *source);
int lb_emit_model_data_h(FILE *f, const lb_int_model *m, const lb_export_plan *p,
                         const char *source);
int lb_emit_model_c(FILE *f, const lb_int_model *m, const lb_export_plan *p, const char *source);
int lb_emit_main_c(FILE *f, const lb_int_model *m);
/* A spiking network's model_data.h and model.c (emit_snn.c; model.h and main.c are shared), and
 * the byte figures of its export. */
int lb_emit_snn_data_h(FILE *f, const lb_int_model *m, const char *source);
int lb_emit_snn_c(FILE *f, const lb_int_model *m, const char *source);
void lb_snn_export_bytes(const lb_int_model *m, size_t *weight_bytes, size_t *activation_bytes);

/* The kernels' C99 text (emit_ctext.c), written into model.c by lb_emit_model_c. lb_emit_k_conv
 * and friends are templates with a %1$s-style suffix and type (see emit_c.c's emit_tpl). */
extern const char *const lb_emit_k_common,
    *const lb_emit_k_unpack, *const lb_emit_k_conv,
                                 *const lb_emit_k_pool_plane,
                                     *const lb_emit_k_linear,
                                         *const lb_emit_k_maxpool,
                                             *const lb_emit_k_clamp,
                                                 *const lb_emit_k_shortcut,
                                                     *const lb_emit_k_div,
                                                         *const lb_emit_k_avgpool,
                                                             *const lb_emit_k_gap,
                                                                 *const lb_emit_k_quant,
                                                                     *const lb_emit_k_add;

/* Packed weight codes (emit_pack.c). lb_emit_pack_codes packs n codes (w, or level indices idx
 * when w is NULL) at sbits 1..8 as one little-endian bit stream (code j at bits j*sbits..);
 * lb_emit_pack_rows packs a sliced layer row by row and writes its row tables to f; both return
 * malloc'd bytes, NULL when out of memory. lb_emit_u8_array writes one static byte array. */
void lb_emit_u8_array(FILE *f, const char *name, const unsigned char *v, size_t n);
unsigned char *lb_emit_pack_codes(const int16_t *w, const unsigned char *idx, size_t n, int sbits,
                                  size_t *bytes);
unsigned char *lb_emit_pack_rows(const lb_int_op *op, int K, size_t *bytes, int i, FILE *f);

/* Storage bits of packed weight codes: the codes' own width, 1..8 (a 3-bit layer costs 3/8 of a
 * byte a weight, not 4/8: sub-byte widths are what mixed precision trades in). */
static inline int lb_emit_storage_bits(int bits) {
    return bits < 1 ? 1 : bits > 8 ? 8 : bits;
}

/* Bytes of n codes packed at sbits each. */
static inline size_t lb_emit_packed_bytes(size_t n, int sbits) {
    return (n * (size_t)sbits + 7) / 8;
}

/* Sliced layers with a width per output channel (op->rbits): every row packed at its own storage
 * bits from a byte boundary, with a table of the rows' storage bits (one byte each) and their byte
 * offsets (int32 each). Used when that is smaller than packing the layer at its widest. Returns
 * the per-row form's bytes (codes and both tables), or 0 when the layer is packed as one. */
static inline size_t lb_emit_row_bytes(const lb_int_op *op) {
    if (op->kind != LB_IOP_CONV || !op->rbits || op->ibits) return 0;
    size_t K = (size_t)op->cin / (size_t)op->groups * (size_t)op->k * (size_t)op->k, rows = 0;
    for (int co = 0; co < op->cout; co++)
        rows += lb_emit_packed_bytes(K, lb_emit_storage_bits(op->rbits[co]));
    rows += (size_t)op->cout * (1 + 4);
    return rows < lb_emit_packed_bytes((size_t)op->cout * K, lb_emit_storage_bits(op->wbits)) ? rows
                                                                                              : 0;
}

#endif
