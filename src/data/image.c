/* PNG (libpng) and JPEG (libjpeg-turbo) decoding into 8-bit grey or RGB, and the conversion of an
 * image to a data set's channels and size (area / bilinear resampling). Not the folder walking
 * (imgdir.c). */
#include "lb_data.h"

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */

#include <jpeglib.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>

#define JPEG_MAX_SCANS 256 /* progressive files may have thousands of tiny scans: a decode bomb */

typedef struct dec {
    const char *name;
    const uint8_t *buf;
    size_t len, at;
    int header_only;
    lb_image *out;
    char msg[JMSG_LENGTH_MAX > 256 ? JMSG_LENGTH_MAX : 256];
    png_bytep *rows; /* freed by the caller, also after a longjmp */
} dec;

static lb_status check_dims(dec *d, const char *kind, unsigned long w, unsigned long h) {
    if (w == 0 || h == 0 || w > LB_IMG_MAX_SIDE || h > LB_IMG_MAX_SIDE ||
        (unsigned long long)w * h > LB_IMG_MAX_PIXELS)
        return lb_error_set(LB_EFORMAT,
                            "%s: %s image of %lux%lu pixels (at most %d per side and %u "
                            "in all)",
                            d->name, kind, w, h, LB_IMG_MAX_SIDE, LB_IMG_MAX_PIXELS);
    return LB_OK;
}

/* ---- PNG ------------------------------------------------------------------------------------ */

static void png_read_cb(png_structp png, png_bytep out, size_t n) {
    dec *d = png_get_io_ptr(png);
    if (n > d->len - d->at) png_error(png, "file truncated");
    memcpy(out, d->buf + d->at, n);
    d->at += n;
}

static void png_error_cb(png_structp png, png_const_charp msg) {
    dec *d = png_get_error_ptr(png);
    snprintf(d->msg, sizeof d->msg, "%s", msg);
    png_longjmp(png, 1);
}

/* Ancillary-chunk trouble (a bad CRC in a text chunk, an unknown sRGB profile) does not change
 * the pixels: libpng reports it as a warning and carries on, and so do we. */
static void png_warning_cb(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

/* Everything between setjmp and the end lives in *d (not in locals of this function), so a
 * longjmp back here leaves nothing indeterminate. */
static lb_status png_run(dec *d, png_structp png, png_infop info) {
    if (setjmp(png_jmpbuf(png)))
        return lb_error_set(LB_EFORMAT, "%s: corrupt PNG: %s", d->name, d->msg);
    png_set_user_limits(png, LB_IMG_MAX_SIDE, LB_IMG_MAX_SIDE);
    png_set_chunk_malloc_max(png, 16u << 20);
    png_set_read_fn(png, d, png_read_cb);
    png_read_info(png, info);
    png_uint_32 w, h;
    int depth, ct, il;
    png_get_IHDR(png, info, &w, &h, &depth, &ct, &il, NULL, NULL);
    lb_status st = check_dims(d, "PNG", w, h);
    if (st) return st;
    d->out->w = (int)w;
    d->out->h = (int)h;
    d->out->c = (ct & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (d->header_only) return LB_OK;
    if (ct == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (depth == 16) png_set_strip_16(png);
    png_set_strip_alpha(png); /* like PIL's convert("RGB"): the colour under the alpha */
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    size_t rb = png_get_rowbytes(png, info);
    if (png_get_channels(png, info) != d->out->c || rb != (size_t)w * d->out->c)
        return lb_error_set(LB_EFORMAT, "%s: PNG: unexpected layout after conversion", d->name);
    d->out->px = malloc((size_t)h * rb);
    d->rows = malloc(h * sizeof *d->rows);
    if (!d->out->px || !d->rows) return lb_error_set(LB_ENOMEM, "%s: out of memory", d->name);
    for (png_uint_32 y = 0; y < h; y++) d->rows[y] = d->out->px + y * rb;
    png_read_image(png, d->rows);
    return LB_OK;
}

static lb_status png_decode(dec *d) {
    png_structp png =
        png_create_read_struct(PNG_LIBPNG_VER_STRING, d, png_error_cb, png_warning_cb);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    lb_status st = info ? png_run(d, png, info)
                        : lb_error_set(LB_ENOMEM, "%s: cannot create a PNG reader", d->name);
    png_destroy_read_struct(&png, info ? &info : NULL, NULL);
    return st;
}

/* ---- JPEG ----------------------------------------------------------------------------------- */

typedef struct jerr {
    struct jpeg_error_mgr pub;
    struct jpeg_progress_mgr prog;
    jmp_buf jb;
    dec *d;
} jerr;

static void jpeg_fail(j_common_ptr ci) {
    jerr *e = (jerr *)ci->err;
    ci->err->format_message(ci, e->d->msg);
    longjmp(e->jb, 1);
}

/* Level -1 is a warning about corrupt data (truncation, bad entropy codes), after which libjpeg
 * would fill in grey: a damaged training image is an error, not a silently different one. Trace
 * messages (level >= 0) are dropped: the library never prints. */
static void jpeg_message(j_common_ptr ci, int level) {
    if (level < 0) jpeg_fail(ci);
}

static void jpeg_progress(j_common_ptr ci) {
    jerr *e = (jerr *)ci->err;
    if (((j_decompress_ptr)ci)->input_scan_number > JPEG_MAX_SCANS) {
        snprintf(e->d->msg, sizeof e->d->msg, "more than %d scans", JPEG_MAX_SCANS);
        longjmp(e->jb, 1);
    }
}

static lb_status jpeg_run(dec *d, struct jpeg_decompress_struct *ci, jerr *e) {
    if (setjmp(e->jb)) return lb_error_set(LB_EFORMAT, "%s: corrupt JPEG: %s", d->name, d->msg);
    jpeg_create_decompress(ci);
    ci->progress = &e->prog;
    jpeg_mem_src(ci, d->buf, (unsigned long)d->len);
    jpeg_read_header(ci, TRUE);
    lb_status st = check_dims(d, "JPEG", ci->image_width, ci->image_height);
    if (st) return st;
    d->out->w = (int)ci->image_width;
    d->out->h = (int)ci->image_height;
    d->out->c = ci->num_components == 1 ? 1 : 3;
    if (d->header_only) return LB_OK;
    ci->out_color_space = d->out->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_start_decompress(ci);
    if (ci->output_components != d->out->c || ci->output_width != ci->image_width ||
        ci->output_height != ci->image_height)
        return lb_error_set(LB_EFORMAT, "%s: JPEG: unexpected layout after conversion", d->name);
    size_t rb = (size_t)d->out->w * d->out->c;
    d->out->px = malloc((size_t)d->out->h * rb);
    if (!d->out->px) return lb_error_set(LB_ENOMEM, "%s: out of memory", d->name);
    while (ci->output_scanline < ci->output_height) {
        JSAMPROW row = d->out->px + (size_t)ci->output_scanline * rb;
        if (jpeg_read_scanlines(ci, &row, 1) != 1)
            return lb_error_set(LB_EFORMAT, "%s: corrupt JPEG: no progress", d->name);
    }
    jpeg_finish_decompress(ci);
    return LB_OK;
}

static lb_status jpeg_decode(dec *d) {
    struct jpeg_decompress_struct ci;
    jerr e;
    memset(&ci, 0, sizeof ci);
    memset(&e, 0, sizeof e);
    ci.err = jpeg_std_error(&e.pub);
    e.pub.error_exit = jpeg_fail;
    e.pub.emit_message = jpeg_message;
    e.prog.progress_monitor = jpeg_progress;
    e.d = d;
    lb_status st = jpeg_run(d, &ci, &e);
    jpeg_destroy_decompress(&ci);
    return st;
}

/* ---- entry points --------------------------------------------------------------------------- */

lb_status lb_image_decode_mem(const char *name, const uint8_t *buf, size_t len, int header_only,
                              lb_image *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_image_decode_mem: out is NULL");
    memset(out, 0, sizeof *out);
    if (!name) name = "<image>";
    if (!buf) len = 0;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    dec d = {name, buf, len, 0, header_only, out, "", NULL};
    lb_status st;
    if (len >= 8 && memcmp(buf, png_sig, 8) == 0)
        st = png_decode(&d);
    else if (len >= 3 && buf[0] == 0xff && buf[1] == 0xd8 && buf[2] == 0xff)
        st = jpeg_decode(&d);
    else
        st = lb_error_set(LB_EFORMAT, "%s: not a PNG or JPEG file (%s)", name,
                          len ? "unknown magic bytes" : "empty");
    free(d.rows);
    if (st) lb_image_free(out);
    return st;
}

lb_status lb_image_load(const char *path, int header_only, lb_image *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_image_load: out is NULL");
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    lb_status st = LB_OK;
    for (;;) { /* whole file: sizes from stat can change under us, a read loop cannot lie */
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = realloc(buf, nc);
            if (!nb) {
                st = lb_error_set(LB_ENOMEM, "%s: out of memory reading the file", path);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) st = lb_error_set(LB_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!st) st = lb_image_decode_mem(path, buf, len, header_only, out);
    free(buf);
    return st;
}

void lb_image_free(lb_image *im) {
    if (!im) return;
    free(im->px);
    memset(im, 0, sizeof *im);
}

/* ---- conversion ----------------------------------------------------------------------------- */

/* Per output index o: taps first[o] .. first[o]+cnt[o]-1 with weights wt[o*maxt + k]. */
typedef struct taps {
    int *first, *cnt, maxt;
    float *wt;
} taps;

static int taps_make(taps *t, int src, int dst) {
    double s = (double)src / dst;
    t->maxt = src > dst ? (int)ceil(s) + 1 : 2;
    t->first = malloc((size_t)dst * sizeof *t->first);
    t->cnt = malloc((size_t)dst * sizeof *t->cnt);
    t->wt = malloc((size_t)dst * t->maxt * sizeof *t->wt);
    if (!t->first || !t->cnt || !t->wt) return 0;
    for (int o = 0; o < dst; o++) {
        float *w = t->wt + (size_t)o * t->maxt;
        if (src > dst) { /* area: the source interval [o*s, (o+1)*s) weighted by its overlap */
            double a = o * s, b = (o + 1) * s;
            int i0 = (int)floor(a), n = 0; /* every i in [floor(a), b) overlaps: contiguous */
            for (int i = i0; i < src && i < b && n < t->maxt; i++)
                w[n++] = (float)((fmin(b, i + 1.0) - fmax(a, (double)i)) / s);
            t->first[o] = i0;
            t->cnt[o] = n;
        } else if (src == dst) {
            t->first[o] = o;
            t->cnt[o] = 1;
            w[0] = 1.0f;
        } else { /* bilinear between the pixel centres around (o + 0.5) * src/dst - 0.5 */
            double x = (o + 0.5) * s - 0.5;
            if (x < 0) x = 0;
            if (x > src - 1) x = src - 1;
            int i0 = (int)floor(x);
            double f = x - i0;
            t->first[o] = i0;
            t->cnt[o] = i0 + 1 < src ? 2 : 1;
            w[0] = (float)(1 - f);
            w[1] = (float)f;
            if (t->cnt[o] == 1) w[0] = 1.0f;
        }
    }
    return 1;
}

static void taps_free(taps *t) {
    free(t->first);
    free(t->cnt);
    free(t->wt);
}

static uint8_t round_u8(float v) {
    float r = floorf(v + 0.5f);
    return r <= 0 ? 0 : r >= 255 ? 255 : (uint8_t)r;
}

lb_status lb_image_convert(const lb_image *im, int c, int h, int w, uint8_t *dst) {
    if (!im || !im->px || !dst || (c != 1 && c != 3) || h < 1 || w < 1 ||
        (im->c != 1 && im->c != 3))
        return lb_error_set(LB_EINVAL, "lb_image_convert: bad arguments");
    int H = im->h, W = im->w, ic = im->c;
    size_t plane = (size_t)H * W;
    uint8_t *src = malloc(plane * c); /* planes in the target channels, source size */
    float *tmp = malloc((size_t)H * w * sizeof *tmp); /* one plane resized along x */
    taps tx = {0}, ty = {0};
    lb_status st = LB_OK;
    if (!src || !tmp || !taps_make(&tx, W, w) || !taps_make(&ty, H, h)) {
        st = lb_error_set(LB_ENOMEM, "out of memory resizing a %dx%d image", H, W);
        goto out;
    }
    for (size_t p = 0; p < plane; p++) {
        const uint8_t *q = im->px + p * ic;
        if (c == ic) {
            for (int k = 0; k < c; k++) src[k * plane + p] = q[k];
        } else if (c == 1) { /* integer luma: the same bytes on every machine */
            src[p] = (uint8_t)((299u * q[0] + 587u * q[1] + 114u * q[2] + 500u) / 1000u);
        } else {
            src[p] = src[plane + p] = src[2 * plane + p] = q[0];
        }
    }
    for (int k = 0; k < c; k++) {
        const uint8_t *s = src + k * plane;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < w; x++) {
                const float *wt = tx.wt + (size_t)x * tx.maxt;
                const uint8_t *row = s + (size_t)y * W + tx.first[x];
                float v = 0;
                for (int j = 0; j < tx.cnt[x]; j++) v += wt[j] * row[j];
                tmp[(size_t)y * w + x] = v;
            }
        uint8_t *o = dst + (size_t)k * h * w;
        for (int y = 0; y < h; y++) {
            const float *wt = ty.wt + (size_t)y * ty.maxt;
            for (int x = 0; x < w; x++) {
                const float *col = tmp + (size_t)ty.first[y] * w + x;
                float v = 0;
                for (int j = 0; j < ty.cnt[y]; j++) v += wt[j] * col[(size_t)j * w];
                o[(size_t)y * w + x] = round_u8(v);
            }
        }
    }
out:
    free(src);
    free(tmp);
    taps_free(&tx);
    taps_free(&ty);
    return st;
}
