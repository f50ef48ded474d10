/* Thread-local error messages for library calls; the CLI is the only place that prints them. */
#include "lb_core.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local char g_msg[1024];

lb_status lb_error_set(lb_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_msg, sizeof g_msg, fmt, ap);
    va_end(ap);
    return st;
}

const char *lb_error_msg(void) {
    return g_msg[0] ? g_msg : "no error message recorded";
}

const char *lb_status_name(lb_status st) {
    switch (st) {
    case LB_OK:
        return "ok";
    case LB_EINVAL:
        return "invalid argument";
    case LB_EIO:
        return "i/o error";
    case LB_EFORMAT:
        return "malformed file";
    case LB_ENOMEM:
        return "out of memory";
    case LB_ESHAPE:
        return "shape mismatch";
    case LB_ENUMERIC:
        return "non-finite value";
    case LB_ECOLLAPSE:
        return "training collapsed";
    case LB_EBUDGET:
        return "size budget missed";
    }
    return "unknown status";
}
