/* Helpers shared by the safetensors reader and writer inside src/ckpt; not a public API. */
#ifndef LB_ST_INTERNAL_H
#define LB_ST_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* Largest shape entry or offset accepted: JSON numbers are doubles in cJSON, exact up to 2^53. */
#define LB_ST__MAX_INT (UINT64_C(1) << 53)
/* Room for "[d0,d1,...]" with LB_ST_MAXDIM 16-digit dims. */
#define LB_ST__SHAPE_STR 160

/* Offset of the first byte of s[0..n) that breaks UTF-8 (overlongs, surrogates and > U+10FFFF
 * rejected), or n. With `header`, raw control characters other than \t \n \r count as bad. */
size_t lb_st__utf8_check(const unsigned char *s, size_t n, int header);

/* A name made safe for an error message: control bytes shown as '?', long names cut with "...". */
typedef struct lb_st__pname {
    char s[68];
} lb_st__pname;
lb_st__pname lb_st__printable(const char *s);

void lb_st__shape_str(char *dst, size_t cap, int ndim, const int64_t *shape);

#endif
