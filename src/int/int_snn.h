/* Private to src/int and src/export: the integer form of a spiking network (docs/snn.md), one
 * layer per lb_net node, and the integer rules both its runner (int_snn_run.c) and the exported C
 * (emit_snn.c) follow. Not the CNN integer model (lb_int_op), whose per-image arena has no time. */
#ifndef LB_INT_SNN_H
#define LB_INT_SNN_H

#include "lb_int.h"

/* What a layer's frame holds. */
typedef enum lb_isnn_ty {
    LB_ISN_PIX = 0, /* raw uint8 pixels (rate encoding's input) */
    LB_ISN_IMG,     /* int32: the normalized image or event frame times 2^img_shift */
    LB_ISN_SPK,     /* uint8 spikes 0/1 */
    LB_ISN_ACC,     /* int32 accumulators / sums, real value = code * scale (one scale) */
    LB_ISN_CUR      /* int32 current or membrane in Q(frac) fixed point */
} lb_isnn_ty;

typedef enum lb_isnn_kind {
    LB_ISK_INPUT = 0,
    LB_ISK_ENCODE, /* direct: its input's frame every step; rate: hashed spikes; events: plane t */
    LB_ISK_CONV,   /* conv or linear: ACC, or CUR through rq[cout] (bias folded) when to_cur */
    LB_ISK_MAXPOOL,
    LB_ISK_LN,  /* ACC -> CUR: per-frame integer layer norm */
    LB_ISK_BN,  /* ACC -> CUR: rq[c] */
    LB_ISK_LIF, /* CUR -> SPK, state in Q(frac) (or membrane codes with mem_bits) */
    LB_ISK_ADD, /* CUR + CUR|SPK -> CUR */
    LB_ISK_SHORTCUT,
    LB_ISK_GAP,  /* SPK -> ACC sums (scale 1/(h*w)) */
    LB_ISK_PASS, /* flatten, dropout: the producer's frame */
    LB_ISK_TSUM  /* SPK counts or CUR sums over the steps -> the logits */
} lb_isnn_kind;

typedef struct lb_isnn_layer {
    lb_isnn_kind kind;
    char name[LB_NAME_MAX];
    int in[2];     /* layer ids (= lb_net node ids), -1 unused */
    int c, h, w;   /* frame shape */
    lb_isnn_ty ty; /* frame type */
    int timed;     /* 1: computed every step; 0: once per image (before the encode) */
    double scale;  /* ACC: real value of one code */
    /* conv / linear */
    int cin, ih, iw, k, stride, pad, groups, linear, to_cur;
    int16_t *wc; /* [cout][cin/groups][k][k] codes */
    /* level-table kinds (reg levels, DoReFa): what the export stores instead of wc */
    unsigned char *widx; /* [cout][K] stored level index, else NULL */
    int16_t *wtab;       /* [ntab][2^ibits] code of each index (ntab 1 or cout) */
    int ntab, ibits;
    lb_int_rq *rq; /* to_cur conv / BN: [c] */
    /* encode */
    lb_encoding enc;
    /* LN */
    int64_t eps_m; /* eps / scale^2 = eps_m * 2^eps_e, eps_m < 2^30 */
    int eps_e;
    /* LIF */
    int32_t *beta_q; /* [c] decay in Q15 */
    int32_t theta_q; /* threshold in membrane units */
    int reset, mem_bits;
    int32_t mlo, mhi; /* membrane code range (mem_bits) */
    /* pooling, shortcut */
    int pk, pstride;
    /* storage: offsets in the per-image workspace (bytes) */
    size_t off, state_off;
} lb_isnn_layer;

struct lb_isnn {
    lb_isnn_layer *l;
    int nl, steps, classes, frac; /* frac: fraction bits of currents */
    int in_c, in_h, in_w;         /* the input (events: steps * 2 planes) */
    int32_t lut[3][256];          /* pixel -> normalized value * 2^img_shift, per channel */
    int img_shift;
    int pol;         /* normalization channels: in_c, or the polarities of event planes */
    size_t ws_bytes; /* per image */
};

/* Integer helpers shared by the runner and (as text) the exporter. */
uint64_t lb_isnn_isqrt(uint64_t v); /* floor(sqrt(v)) */
/* One image (pixels or event planes) -> logits[classes]; ws holds ws_bytes. */
void lb_isnn_run_image(const struct lb_isnn *m, const uint8_t *img, int32_t *logits,
                       unsigned char *ws);
lb_status lb_isnn_derive(const lb_net *n, const float mean[3], const float std[3],
                         struct lb_isnn **out);
void lb_isnn_free(struct lb_isnn *m);
/* lb_int_from_net for a network with an encode layer: a model holding only m->snn. */
lb_status lb_int_from_snn(const lb_net *n, const float mean[3], const float std[3],
                          lb_int_model **out);

#endif
