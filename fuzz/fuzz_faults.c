/* libFuzzer target for the fault-map readers (binary file and text form); not a test. Input:
 * first byte even: the rest is a binary map file (lb_fmap_parse); odd: a text map
 * (lb_fmap_parse_text). */
#include "lb_faults.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int text = data[0] & 1;
    lb_fmap m;
    lb_status st = text ? lb_fmap_parse_text("<text>", (const char *)data + 1, size - 1, &m)
                        : lb_fmap_parse("<map>", data + 1, size - 1, &m);
    if (st != LB_OK) {
        if (m.layers || m.mem || m.nlayers) __builtin_trap(); /* nothing handed out on error */
        if (!strstr(lb_error_msg(), text ? "<text>" : "<map>")) __builtin_trap(); /* names it */
        return 0;
    }
    /* Invariants a caller relies on. */
    if (m.nlayers < 0 || m.nlayers > LB_FMAX_LAYERS || (m.nlayers && !m.layers)) __builtin_trap();
    for (int i = 0; i < m.nlayers; i++) {
        const lb_flayer *L = &m.layers[i];
        if (L->spec.bits < 1 || L->spec.bits > LB_FMAX_BITS || !L->spec.name[0]) __builtin_trap();
        unsigned lim = 1u << L->spec.bits;
        for (size_t w = 0; w < (size_t)L->spec.n; w++) {
            if ((L->sa0[w] & L->sa1[w]) || L->sa0[w] >= lim || L->sa1[w] >= lim) __builtin_trap();
            for (int j = 0; L->var && j < L->spec.bits; j++)
                if (!isfinite(L->var[w * L->spec.bits + j])) __builtin_trap();
        }
        if (lb_fmap_find(&m, L->spec.name) != L) __builtin_trap(); /* names unique */
    }
    lb_fmap_free(&m);
    return 0;
}
