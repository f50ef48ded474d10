/* Checkpoint metadata lowbit.data: what a model trained on an image folder needs to see new
 * images as training did (class names, the held-out fraction, the resampling rule). Not the
 * tensors or the model/training configs (ckpt_io.c, config_json.c). */
#include "train_internal.h"
#include "lb_ckpt.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

/* For the record (people, other tools): lowbit itself applies its one rule and does not parse
 * these; a different rule in some later version would be written here under the same keys. */
#define RESIZE_RULE "area when shrinking, bilinear when growing, per axis"
#define GREY_RULE "(299 R + 587 G + 114 B + 500) / 1000"

char *lb_ckpt_data_json(const lb_ckpt_info *info) {
    if (!info->class_names) return NULL;
    cJSON *o = cJSON_CreateObject(), *a = cJSON_CreateArray();
    if (!o || !a) {
        cJSON_Delete(o);
        cJSON_Delete(a);
        return NULL;
    }
    cJSON_AddStringToObject(o, "format", "imgdir");
    for (int i = 0; i < info->model.classes; i++)
        cJSON_AddItemToArray(a, cJSON_CreateString(info->class_names[i]));
    cJSON_AddItemToObject(o, "classes", a);
    float ts = info->train.img.test_split > 0 ? info->train.img.test_split : LB_IMG_TEST_SPLIT;
    cJSON_AddNumberToObject(o, "test_split", ts);
    cJSON_AddStringToObject(o, "resize", RESIZE_RULE);
    cJSON_AddStringToObject(o, "grey", GREY_RULE);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Parses lowbit.data (absent: LB_OK, nothing set); names may be NULL (only test_split wanted). */
static lb_status parse(const char *js, const char *path, int classes, float *test_split,
                       char ***names, int *n) {
    cJSON *o = cJSON_Parse(js);
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "classes"),
                *ts = cJSON_GetObjectItemCaseSensitive(o, "test_split");
    lb_status st = LB_OK;
    if (!cJSON_IsObject(o) || !cJSON_IsArray(a) || cJSON_GetArraySize(a) != classes ||
        (ts && !(cJSON_IsNumber(ts) && ts->valuedouble > 0 && ts->valuedouble < 1)))
        st = lb_error_set(LB_EFORMAT,
                          "%s: metadata lowbit.data: need an object with \"classes\", an array of "
                          "%d strings (the model's classes), and \"test_split\" in (0, 1)",
                          path, classes);
    size_t bytes = (size_t)classes * sizeof(char *);
    for (int i = 0; !st && i < classes; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsString(x))
            st = lb_error_set(LB_EFORMAT, "%s: metadata lowbit.data: class %d is not a string",
                              path, i);
        else
            bytes += strlen(x->valuestring) + 1;
    }
    if (!st && ts) *test_split = (float)ts->valuedouble;
    if (!st && names) {
        char **v = malloc(bytes);
        if (!v) st = lb_error_set(LB_ENOMEM, "%s: out of memory", path);
        char *p = v ? (char *)(v + classes) : NULL;
        for (int i = 0; !st && i < classes; i++) {
            size_t l = strlen(cJSON_GetArrayItem(a, i)->valuestring) + 1;
            memcpy(p, cJSON_GetArrayItem(a, i)->valuestring, l);
            v[i] = p;
            p += l;
        }
        if (!st) {
            *names = v;
            *n = classes;
        }
    }
    cJSON_Delete(o);
    return st;
}

lb_status lb_ckpt_data_read(const lb_st_file *f, const char *path, lb_ckpt_info *info) {
    const char *js = lb_st_meta_get(f, "lowbit.data");
    if (!js) return LB_OK;
    return parse(js, path, info->model.classes, &info->train.img.test_split, NULL, NULL);
}

lb_status lb_ckpt_class_names(const char *path, char ***names, int *n) {
    *names = NULL;
    *n = 0;
    lb_ckpt_info info;
    lb_st_file *f;
    lb_status st = lb_ckpt_peek(path, &info);
    if (st == LB_OK) st = lb_st_read(path, &f);
    if (st != LB_OK) return st;
    const char *js = lb_st_meta_get(f, "lowbit.data");
    float ts = 0;
    if (js) st = parse(js, path, info.model.classes, &ts, names, n);
    lb_st_free(f);
    return st;
}
