/* The check of a Pareto results JSON (bench/pareto/run.sh writes it) before `lowbit plot pareto`
 * hands it to python: pure, no printing, so that fuzz/fuzz_pareto.c can run it. Not the plot. */
#include "pareto_check.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>

int pareto_check(const char *name, const char *text, char *why, size_t whyn) {
    cJSON *j = cJSON_Parse(text);
    if (!j) {
        snprintf(why, whyn, "%s: not valid JSON", name);
        return 0;
    }
    const cJSON *pts = cJSON_GetObjectItemCaseSensitive(j, "points");
    if (!cJSON_IsArray(pts) || cJSON_GetArraySize(pts) == 0) {
        cJSON_Delete(j);
        snprintf(why, whyn, "%s: no \"points\" array (or it is empty)", name);
        return 0;
    }
    static const char *const nums[3] = {"weight_bytes", "activation_bytes", "accuracy"};
    int i = 0;
    for (const cJSON *p = pts->child; p; p = p->next, i++) {
        const char *bad = NULL, *field = NULL;
        if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "method")))
            field = "method", bad = "missing or not a string";
        for (int k = 0; k < 3 && !bad; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(p, nums[k]);
            if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0)
                field = nums[k], bad = "missing, not a number or negative";
            else if (k == 2 && v->valuedouble > 1)
                field = nums[k], bad = "above 1 (a fraction, not a percentage)";
        }
        if (bad) {
            cJSON_Delete(j);
            snprintf(why, whyn, "%s: point %d: \"%s\" %s", name, i, field, bad);
            return 0;
        }
    }
    cJSON_Delete(j);
    return 1;
}
