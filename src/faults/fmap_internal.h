/* Internal: what the fault-map files (fmap.c, fmap_io.c, fmap_text.c) share. Not a public
 * header; the model and its rules are in lb_faults.h and docs/faults.md. */
#ifndef LB_FMAP_INTERNAL_H
#define LB_FMAP_INTERNAL_H

#include <stdio.h>

#include "lb_faults.h"

/* FNV-1a 64 of a name: the per-layer stream key of lb_fmap_draw_*. */
uint64_t lb_fmap_name_hash(const char *s);
/* The whole file in a malloc'd buffer (both map readers); errors name the file. */
lb_status lb_fmap_slurp(const char *path, unsigned char **data, size_t *len);
/* One layer spec valid? (name length, bits, encoding, count); `file` and index for messages,
 * `code` the status to return (LB_EINVAL for arguments, LB_EFORMAT for files). */
lb_status lb_fmap_check_spec(const char *file, const lb_flayer_spec *s, int i, lb_status code);

#endif
