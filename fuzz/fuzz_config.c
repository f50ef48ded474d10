/* libFuzzer target for the configuration JSON a checkpoint carries (metadata lowbit.model and
 * lowbit.train: lb_model_cfg_from_json, lb_train_cfg_from_json). Any input must be refused with a
 * message naming the file, or give a configuration that the writer prints and the reader takes
 * back to the same text (what a resumed or re-saved checkpoint relies on). Not a test of the model
 * builder or of the safetensors container (fuzz_safetensors). Links the whole library
 * (scripts/fuzz.sh builds it instrumented); seeds in fuzz/corpus/config. */
#include "train_internal.h"

#include <stdlib.h>
#include <string.h>

#define PATH "fuzz.safetensors"

static void check_refusal(void) {
    if (!strstr(lb_error_msg(), PATH)) abort(); /* every refusal names the file */
}

static void model_round_trip(const char *js) {
    lb_model_cfg a, b;
    if (lb_model_cfg_from_json(js, PATH, &a) != LB_OK) {
        check_refusal();
        return;
    }
    char *s1 = lb_model_cfg_to_json(&a);
    if (!s1) abort();
    if (lb_model_cfg_from_json(s1, PATH, &b) != LB_OK) abort(); /* the writer's own text */
    char *s2 = lb_model_cfg_to_json(&b);
    if (!s2 || strcmp(s1, s2) != 0) abort();
    free(s1);
    free(s2);
}

static void train_round_trip(const char *js) {
    lb_train_cfg a, b;
    lb_train_cfg_default(&a);
    if (lb_train_cfg_from_json(js, PATH, &a) != LB_OK) {
        check_refusal();
        return;
    }
    char *s1 = lb_train_cfg_to_json(&a);
    if (!s1) abort();
    lb_train_cfg_default(&b);
    if (lb_train_cfg_from_json(s1, PATH, &b) != LB_OK) abort();
    char *s2 = lb_train_cfg_to_json(&b);
    if (!s2 || strcmp(s1, s2) != 0) abort();
    free(s1);
    free(s2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *js = malloc(size + 1); /* metadata values are NUL-terminated strings */
    if (!js) return 0;
    memcpy(js, data, size);
    js[size] = 0;
    model_round_trip(js);
    train_round_trip(js);
    free(js);
    return 0;
}
