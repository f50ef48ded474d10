/* libFuzzer target for the ONNX reader (protobuf decoding, constants, attributes, the mapping to
 * lowbit's graph description); not a test. Input: the bytes of an .onnx file. External data is
 * refused in memory, so nothing is read from disk. */
#include "lb_onnx.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_onnx_model *m;
    if (lb_onnx_read_mem(data, size, "<fuzz>", NULL, &m) != LB_OK) return 0;
    /* Invariants lowbit import relies on. */
    if (!m->graph || strncmp(m->graph, "{\"nodes\":[", 10) != 0 || (m->in_c != 1 && m->in_c != 3) ||
        m->in_h < 1 || m->in_w < 1 || m->classes < 2)
        __builtin_trap();
    float acc = 0;
    for (int i = 0; i < m->nt; i++)
        for (size_t k = 0; k < m->t[i].n; k++) acc += m->t[i].data[k]; /* every value readable */
    (void)acc;
    lb_onnx_free(m);
    return 0;
}
