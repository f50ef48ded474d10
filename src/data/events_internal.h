/* Shared by the event sources of src/data (events.c, evdir.c, dvs_emu.c); not a public API. */
#ifndef LB_EVENTS_INTERNAL_H
#define LB_EVENTS_INTERNAL_H

#include "lb_data.h"

#define LB_EV_FRAMES_DEFAULT 10 /* docs/methods.md section 6: ten time bins */

/* A copy of n class names as one allocation (pointers, then the strings), as lb_dataset_free
 * frees it; NULL when out of memory. */
char **lb_names_dup(char *const *names, int n);

#endif
