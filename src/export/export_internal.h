/* Private to src/export: the C99 emitters (emit_c.c) used by the directory writer (export.c). */
#ifndef LB_EXPORT_INTERNAL_H
#define LB_EXPORT_INTERNAL_H

#include <stdio.h>

#include "lb_int.h"

/* Each writes one file's text; they return 0, or -1 when the model has something they cannot
 * express (with lb_error_set). I/O errors are the caller's (ferror). */
int lb_emit_model_h(FILE *f, const lb_int_model *m, const char *source);
int lb_emit_model_data_h(FILE *f, const lb_int_model *m, const char *source);
int lb_emit_model_c(FILE *f, const lb_int_model *m, const char *source);
int lb_emit_main_c(FILE *f, const lb_int_model *m);

/* Storage bits of packed weight codes: 2 (2-bit), 4 (3..4-bit) or 8 (5..8-bit). */
static inline int lb_emit_storage_bits(int bits) {
    return bits <= 2 ? 2 : bits <= 4 ? 4 : 8;
}

#endif
