/* lb_faults: stuck-at faults and device variability of the memory cells that store coded weights
 * (methods.md sec. 3): per-chip fault maps (drawn, converted from a measured text form, saved and
 * loaded in a checksummed binary file), fault application and reachable levels, per-weight
 * variability levels, the fault-aware, variability-aware and QFALT regularizers, and a chip
 * attached to a network (its eval forward, the snap of the weights). It is not the trainer's use
 * of them nor the CLI; docs/faults.md has the model, the file format and the why.
 *
 * The model. A coded weight tensor stores, per weight, a b-bit pattern p in [0, 2^b), one memory
 * cell per bit. What p means is the layer's encoding:
 *  - LB_FENC_INDEX (default): p is the level index k of the reg quantizer (offset binary, the
 *    seed's S matrix); its value is a_k = sum_j bit_j(k) R_j - R_b.
 *  - LB_FENC_TWOS: p is the b-bit two's complement pattern of a signed code c in
 *    [-2^(b-1), 2^(b-1)-1] (LSQ, fixed uniform); c = p - 2^b * bit_{b-1}(p). A uniform grid of
 *    step s is the same sum with R = s*[2^0, .., 2^(b-2), -2^(b-1)] and R_b = 0 (lb_fault_R_twos).
 *    A reg layer may be stored so too (a map drawn with that encoding): its index k is the code
 *    c = k - 2^(b-1), and its R becomes lb_fault_R_reg_twos(R).
 *  - LB_FENC_SIGNMAG (LSQ and fixed signed layers, an option; our design, docs/faults.md): bit
 *    b-1 is the sign and bits 0..b-2 the magnitude of a code c in [-(2^(b-1)-1), 2^(b-1)-1], as
 *    a differential pair of cell columns stores it; the code -2^(b-1) is held as -(2^(b-1)-1).
 *    Its levels are a[p] = sign(p) * sum_{j<b-1} bit_j(p) R_j v_j: the sign cell selects the
 *    polarity and carries no magnitude, so R_{b-1} = 0 and no multiplier of it counts
 *    (lb_fault_R_signmag); a stuck sign cell flips the weight's polarity.
 * So everything below works on the pattern p and a b+1 vector R, whatever the quantizer.
 * Per weight the map holds sa0 and sa1 masks (bit j set: cell j stuck at 0 / at 1; never both) and
 * optionally b variability multipliers v_j (a stored 1 conducts R_j * v_j; a 0 contributes 0; the
 * offset R_b does not vary). The chip holds p' = (p & ~sa0) | sa1; p is reachable iff
 * (p & sa0) == 0 && (p & sa1) == sa1. */
#ifndef LB_FAULTS_H
#define LB_FAULTS_H

#include <stddef.h>
#include <stdint.h>

#include "lb_core.h"

#define LB_FNAME_MAX 64 /* layer and architecture names, bytes including the NUL */
#define LB_FMAX_BITS 8  /* stored bits per weight */
#define LB_FMAX_LAYERS 4096
#define LB_FMAP_VERSION 1 /* of the binary file (docs/faults.md) */
/* Weights per map, all layers together: a bound on what a file may make lowbit allocate (10x
 * the largest zoo model; the fuzz build lowers it to stay inside libFuzzer's memory limit). */
#ifndef LB_FMAX_WEIGHTS
#define LB_FMAX_WEIGHTS ((uint64_t)1 << 28)
#endif

typedef enum lb_fenc {
    LB_FENC_INDEX = 0,
    LB_FENC_TWOS = 1,
    LB_FENC_SIGNMAG = 2,
    LB_FENC_COUNT
} lb_fenc;

/* Variability multipliers (methods.md sec. 3; docs/faults.md): GAUSS v = 1 + r*N(0,1) (reference,
 * not clipped: may be <= 0 for large r); LOGNORMAL v = exp(N(-s^2/2, s^2)), s^2 = ln(1 + r^2), so
 * E[v] = 1 and std(v)/E[v] = r exactly (our design), r = sigma/mu. */
typedef enum lb_fvar { LB_FVAR_NONE = 0, LB_FVAR_GAUSS, LB_FVAR_LOGNORMAL, LB_FVAR_COUNT } lb_fvar;

/* The identity of one coded weight tensor: what a map must match. */
typedef struct lb_flayer_spec {
    char name[LB_FNAME_MAX];
    uint64_t n; /* weights */
    int bits;   /* 1..LB_FMAX_BITS */
    lb_fenc enc;
    /* in a model's specs only (lb_fmap_specs_of_net; never in a file): the layer may also be
     * stored in two's complement (a reg layer, whose default is the index) */
    int twos_ok;
    /* likewise: the layer may be stored in sign-magnitude (a signed LSQ or fixed layer, whose
     * default is two's complement) */
    int signmag_ok;
} lb_flayer_spec;

/* One layer of a map. In memory the masks are one byte per weight (the file packs them). */
typedef struct lb_flayer {
    lb_flayer_spec spec;
    uint8_t *sa0, *sa1; /* n each */
    float *var;         /* n * bits (weight-major: var[w*bits + j]) or NULL: all 1 */
} lb_flayer;

/* How a map was made (saved in the file, informative only; a measured map has kind 0). */
typedef struct lb_fprov {
    uint64_t fault_seed, var_seed;
    double rate, sa1_share, var_ratio;
    lb_fvar var_kind;
} lb_fprov;

typedef struct lb_fmap {
    char arch[LB_FNAME_MAX];
    int nlayers;
    lb_flayer *layers;
    lb_fprov prov;
    void *mem; /* one block holding every layer's arrays */
} lb_fmap;

/* ---- maps (src/faults/fmap.c) ------------------------------------------------------------------
 * A healthy map (no faults, no multipliers unless with_var: then all 1) for a model: arch name and
 * layer specs (unique non-empty names shorter than LB_FNAME_MAX, bits 1..8, known encoding).
 * LB_EINVAL naming the layer otherwise. Free with lb_fmap_free (also after a failed create). */
lb_status lb_fmap_create(lb_fmap *m, const char *arch, const lb_flayer_spec *specs, int nlayers,
                         int with_var);
void lb_fmap_free(lb_fmap *m);
lb_flayer *lb_fmap_find(const lb_fmap *m, const char *name); /* NULL when absent */
/* Draws stuck-at faults: each cell of each weight independently faulty with probability `rate`,
 * a faulty cell stuck at 1 with probability `sa1_share` (0: the reference's SA0 only). Replaces
 * the masks. Deterministic in the seed: layer `name`'s stream is lb_rng_derive(seed, hash(name),
 * chunk) per chunk of LB_FCHUNK weights, so a map depends on neither thread count nor the other
 * layers. rate and sa1_share in [0, 1] else LB_EINVAL. */
#define LB_FCHUNK 4096
lb_status lb_fmap_draw_faults(lb_fmap *m, double rate, double sa1_share, uint64_t seed);
/* Draws the variability multipliers (allocating them when the map has none), kind and ratio
 * r = sigma/mu >= 0 (finite); r == 0 or LB_FVAR_NONE sets all to exactly 1. */
lb_status lb_fmap_draw_var(lb_fmap *m, lb_fvar kind, double ratio, uint64_t seed);
/* Spares the first and last coded layers (first_last != 0 and more than two layers): no stuck
 * cells, multipliers exactly 1. The reference keeps those layers float, off the faulty array
 * (methods.md sec. 2, "first and last layers excluded unless asked"); lowbit stores them as
 * 8-bit codes, which a chip may or may not hold: `--layers body|all` (docs/faults.md). Call
 * after drawing; the other layers' draws are unchanged (per-layer streams). */
void lb_fmap_spare(lb_fmap *m, int first_last);
/* Does the map fit this model? Same arch, same layers in the same order with the same names,
 * counts, bits and encodings. LB_ESHAPE with a message naming `file` and the first difference. */
lb_status lb_fmap_check_model(const lb_fmap *m, const char *file, const char *arch,
                              const lb_flayer_spec *specs, int nlayers);
const char *lb_fenc_name(lb_fenc e); /* "index", "twos", "?" */
lb_status lb_fenc_parse(const char *s, lb_fenc *out);
const char *lb_fvar_name(lb_fvar v); /* "none", "gauss", "lognormal", "?" */
lb_status lb_fvar_parse(const char *s, lb_fvar *out);

/* ---- files (src/faults/fmap_io.c, fmap_text.c; format in docs/faults.md) ----------------------
 * Binary: writes atomically (temporary file, fsync, rename, fsync of the directory); LB_EIO on an
 * i/o failure (any existing file is left intact). The readers validate everything (magic, version,
 * sizes, CRC32 of the payload, names, bits, encodings, sa0 & sa1 == 0, finite multipliers) and
 * return LB_EFORMAT (LB_EIO: cannot read) with a message naming the file and the problem; on error
 * *out is left empty (safe to lb_fmap_free). */
lb_status lb_fmap_write(const char *path, const lb_fmap *m);
lb_status lb_fmap_read(const char *path, lb_fmap *out);
lb_status lb_fmap_parse(const char *name_for_errors, const void *buf, size_t n, lb_fmap *out);
/* Reads and checks against a model (lb_fmap_check_model): the usual entry point. */
lb_status lb_fmap_read_for(const char *path, const char *arch, const lb_flayer_spec *specs,
                           int nlayers, lb_fmap *out);
/* The text form a user writes from chip measurements (docs/faults.md): a header line
 * "lowbit-faults 1", "arch <name>", then per layer "layer <name> <n> <bits> <index|twos>"
 * followed by its faulty cells "<weight> <bit> sa0|sa1" and multipliers "var <weight> <bit> <v>";
 * '#' starts a comment. Unlisted cells are healthy, unlisted multipliers 1. */
lb_status lb_fmap_parse_text(const char *name_for_errors, const char *buf, size_t n, lb_fmap *out);
lb_status lb_fmap_read_text(const char *path, lb_fmap *out);

/* ---- fault application and reachable levels (src/faults/fapply.c) ------------------------------
 * Scalar references. Masks and patterns are b-bit values (bits above b ignored). */
static inline unsigned lb_fault_apply(unsigned p, unsigned sa0, unsigned sa1) {
    return (p & ~sa0) | sa1;
}
static inline int lb_fault_reachable(unsigned p, unsigned sa0, unsigned sa1) {
    return (p & sa0) == 0 && (p & sa1) == sa1;
}
/* Pattern <-> code value of an encoding: index k = p; twos c = p - 2^b * bit_{b-1}(p); signmag
 * c = (1 - 2 bit_{b-1}(p)) * (p mod 2^(b-1)) (both zeros read 0). */
int lb_fault_value(unsigned p, int bits, lb_fenc enc);
/* The pattern stored for a code in the encoding's range; signmag stores -2^(b-1), which it cannot
 * hold, as -(2^(b-1)-1), and 0 as the all-0 pattern. */
unsigned lb_fault_pattern(int code, int bits, lb_fenc enc);
/* The sign the encoding gives pattern p's magnitude sum: -1 for a signmag pattern with its sign
 * bit set, else +1. */
static inline int lb_fault_sign(unsigned p, int bits, lb_fenc enc) {
    return enc == LB_FENC_SIGNMAG && ((p >> (bits - 1)) & 1) ? -1 : 1;
}
/* The cells 0..n-1 whose R_j enters a level: all b, but signmag's sign cell (b - 1). */
static inline int lb_fault_value_cells(int bits, lb_fenc enc) {
    return enc == LB_FENC_SIGNMAG ? bits - 1 : bits;
}
/* The code the chip holds for `code` (an index or a signed code, by enc). */
int lb_fault_code(int code, int bits, lb_fenc enc, unsigned sa0, unsigned sa1);
/* The reachable code nearest to `code` in value (ties to the lower). sa0 & sa1 must be 0 (then
 * the set is never empty: the faulty code itself is reachable). A signmag 0 is reachable through
 * either of its two patterns (lb_fault_pattern writes 0000; both levels are +0). */
int lb_fault_nearest_code(int code, int bits, lb_fenc enc, unsigned sa0, unsigned sa1);
/* The 2^b reachable flags of a mask pair: out[p] = 1 when reachable; returns how many. */
int lb_fault_reachable_set(int bits, unsigned sa0, unsigned sa1, uint8_t *out);
/* R of a signed uniform grid of step s as a two's complement sum: s*2^j (j < b-1), -s*2^(b-1),
 * offset 0. Then lb_fault_levels gives a[p] = s * c(p). */
void lb_fault_R_twos(float s, int bits, float *R);
/* R of a signed uniform grid of step s in sign-magnitude: s*2^j (j < b-1), 0 for the sign cell,
 * offset 0. Then lb_fault_levels(.., LB_FENC_SIGNMAG, ..) gives a[p] = s * c(p). */
void lb_fault_R_signmag(float s, int bits, float *R);
/* R of a uniform grid of step s in encoding enc: lb_fault_R_twos, lb_fault_R_signmag, or for the
 * index (an unsigned grid, its code its own index) s*2^j with no offset. */
void lb_fault_R_uniform(float s, int bits, lb_fenc enc, float *R);
/* A reg quantizer's levels stored in two's complement (our design, docs/faults.md "Encodings"):
 * index k is stored as the pattern p = k ^ 2^(b-1) (the two's complement of k - 2^(b-1)), so
 * a_k = sum_j bit_j(p) Rt_j - Rt_b with Rt_j = R_j (j < b-1), Rt_{b-1} = -R_{b-1},
 * Rt_b = R_b - R_{b-1}: the top cell counts negatively, and the all-0 pattern is the level just
 * above the middle rather than the lowest one. */
void lb_fault_R_reg_twos(const float *R, int bits, float *Rt);
/* a[p] = sign(p) * sum_j bit_j(p) R_j v_j - R_b for p in [0, 2^b) (sign: lb_fault_sign, +1 but
 * for signmag), summed in double (j ascending), rounded to float once; v NULL means all 1 (then
 * equal, bit for bit, to the reg quantizer's levels). A signmag zero is +0 whatever its sign. */
void lb_fault_levels(const float *R, int bits, lb_fenc enc, const float *v, float *a);
/* a[p] of that sum for one pattern alone (the same bits as lb_fault_levels's a[p]). */
float lb_fault_level_at(const float *R, int bits, lb_fenc enc, const float *v, unsigned p);
/* The reachable level nearest to w among a[0..2^b): w clamped into the reachable range, smallest
 * float |w - a| wins, ties to the lower level, equal levels to the smaller p (reg's rule). Returns
 * p; NaN w gives the reachable p of the lowest level. */
int lb_fault_nearest_level(float w, const float *a, int bits, unsigned sa0, unsigned sa1);
/* Fast path over a tensor slice of a layer: out[i] = the faulty pattern of in[i] for weights
 * off..off+n of layer L (index codes as uint8; two's complement codes as int8, sign-extended
 * from b bits; signmag codes as int8, decoded). out may equal in. */
void lb_fault_apply_u8(const lb_flayer *L, size_t off, size_t n, const uint8_t *in, uint8_t *out);
void lb_fault_apply_i8(const lb_flayer *L, size_t off, size_t n, const int8_t *in, int8_t *out);

/* ---- regularizers (src/faults/freg.c) -----------------------------------------------------------
 * Over the weights w[0..n) of a slice of a layer with N weights in all (loss normalisation) and
 * one level vector R (b+1; a per-channel quantizer calls once per channel), with the map slice
 * `mk` (sa0/sa1/var pointers already offset to the slice's first weight; any may be NULL:
 * NULL masks = no faults, NULL var = no variability). Each weight's level set is its own:
 * a_{w,p} = sign(p) sum_j bit_j(p) R_j v_{w,j} - R_b over the patterns p reachable under its masks
 * (sign: lb_fault_sign of mk.enc).
 * The losses are returned (double), gradients ADDED to dw (may be NULL) and dR (b+1 doubles,
 * may be NULL). Single-threaded and deterministic; the trainer parallelizes over layers/channels.
 *
 * lb_freg_mse: lambda * (Q/N) * sum_w d(w)^2, Q = 2^b - 1, d(w) = w - (nearest reachable own
 * level, lb_fault_nearest_level's rule). Masks only: fault-aware; var only: variability-aware;
 * both: both. dw = lambda*2Q/N*d; dR_j = -lambda*2Q/N*sum d*bit_j(p*)*v_j; dR_b = +lambda*2Q/N*sum
 * d. lb_freg_qfalt: QFALT's baseline, methods.md literally: -lambda * sum_w sum_p V_{w,p} exp(-(w -
 * a_{w,p})^2/sigma^2), V_{w,p} = 1 when p is reachable for w (else 0), over ALL levels (no
 * nearest-level selection, no Q/N); sigma a constant of the call (the caller's schedule). */
typedef struct lb_fslice {
    const uint8_t *sa0, *sa1;
    const float *var; /* n * bits */
    lb_fenc enc;      /* the layer's: the sign of a signmag level (dR_j carries it too) */
} lb_fslice;
lb_fslice lb_fslice_of(const lb_flayer *L, size_t off); /* L NULL: all NULL (healthy) */
double lb_freg_mse(const float *w, size_t n, size_t n_layer, const float *R, int bits, lb_fslice mk,
                   double lambda, float *dw, double *dR);
double lb_freg_qfalt(const float *w, size_t n, const float *R, int bits, lb_fslice mk,
                     double lambda, double sigma, float *dw, double *dR);
/* The reference of lb_freg_mse: a plain linear search over every pattern of every weight (no
 * healthy-weight table). lb_freg_mse must agree with it bit for bit in dw and in the loss. */
double lb_freg_mse_ref(const float *w, size_t n, size_t n_layer, const float *R, int bits,
                       lb_fslice mk, double lambda, float *dw, double *dR);

/* ---- networks (src/faults/fattach.c) ------------------------------------------------------------
 * The coded weight tensors of a planned network, in node order: conv/linear layers whose weight
 * quantizer stores codes (LB_Q_REG: index encoding; LSQ and fixed: two's complement when signed,
 * index when unsigned), named after the layer. Writes at most cap specs, returns the count in *n.
 */
struct lb_net;
lb_status lb_fmap_specs_of_net(const struct lb_net *net, lb_flayer_spec *specs, int cap, int *n);
/* Every layer that may (twos_ok, the reg layers) is stored in two's complement; returns how many
 * layers that changed. */
int lb_fmap_specs_twos(lb_flayer_spec *specs, int n);
/* Every layer that may (signmag_ok, signed LSQ and fixed layers) is stored in sign-magnitude;
 * returns how many layers that changed. */
int lb_fmap_specs_signmag(lb_flayer_spec *specs, int n);
/* Does the map carry a multiplier other than exactly 1? Returns 1 and the first such cell
 * (any out pointer may be NULL), else 0. Such a cell's value is not an integer code. */
int lb_fmap_has_var(const lb_fmap *m, int *layer, uint64_t *weight, int *bit);

/* ---- a chip on a network (src/faults/fnet.c; docs/faults.md "Evaluation on a chip") ------------
 * Attaching a map to a planned network makes every eval forward (training == 0) use the weights
 * as that chip holds them, through the net's eval weight hook (lb_net.wq_hook): per coded weight
 * the stored code is the quantizer's own (LSQ/fixed: the signed code round(clip(w/s)) of its
 * channel's step, stored as a b-bit two's complement pattern, or as itself when unsigned; reg
 * kinds: the level index k of the nearest level, lb_quant_reg_codes), the chip holds p' = (p &
 * ~sa0) | sa1 (or, with `nearest`, the reachable code nearest to p in value: methods.md's option
 * "nearest reachable level"), and the weight's value is level p' of its own level set
 * (lb_fault_levels with its multipliers; LSQ/fixed R = lb_fault_R_twos(step)). A weight whose
 * value comes out equal to the quantizer's keeps the quantizer's bits, so a healthy map (no
 * faults, no multiplier other than 1) changes nothing, bit for bit. Training forwards are not
 * touched (fine-tuning decides what it does with the chip). One chip per net. */
typedef struct lb_chip {
    struct lb_net *net;
    const lb_fmap *map; /* borrowed (lb_chip_attach) or &own (lb_chip_open) */
    lb_fmap own;
    int nearest;      /* LB_CHIP_SNAP, LB_CHIP_REACHABLE or LB_CHIP_OWN_LEVEL (below) */
    int *layer;       /* per node: its layer in the map, -1 for none */
    unsigned char *k; /* scratch: reg level indices of the largest coded tensor */
} lb_chip;
/* Checks the map against the network's coded tensors (lb_fmap_check_model, `name` names the
 * map in messages; arch the model's architecture) and installs the hook. LB_EINVAL naming the
 * model when it has no coded weights (float / unquantized). The map must outlive the chip. */
/* How a weight's code is chosen (lb_chip.nearest): SNAP the quantizer's code, the chip holds its
 * faulty pattern (methods.md's default); REACHABLE the reachable code nearest to it in value (the
 * option "nearest reachable level", `nearest` != 0 below); OWN_LEVEL the code whose value on this
 * chip (stuck cells, then the weight's own multipliers) is nearest to the float weight:
 * methods.md's evaluation with variability, chosen for every map with multipliers whatever
 * `nearest` says. */
enum { LB_CHIP_SNAP = 0, LB_CHIP_REACHABLE = 1, LB_CHIP_OWN_LEVEL = 2 };
lb_status lb_chip_attach(lb_chip *c, struct lb_net *net, const char *arch, const lb_fmap *map,
                         const char *name, int nearest);
/* The same checks and tables without the eval hook: a second chip on a net that has one (fault
 * injection while training, whose snap alone is used). lb_chip_detach leaves the net's hook. */
lb_status lb_chip_bind(lb_chip *c, struct lb_net *net, const char *arch, const lb_fmap *map,
                       const char *name, int nearest);
/* lb_fmap_read_for(path) then lb_chip_attach; the chip owns the map. */
lb_status lb_chip_open(lb_chip *c, struct lb_net *net, const char *arch, const char *path,
                       int nearest);
/* Removes the hook and frees what the chip owns (safe on a zeroed or failed chip). */
void lb_chip_detach(lb_chip *c);
/* Replaces the float weights of every coded layer by the values the chip holds (the eval
 * forward's weights; methods.md's "quantized, faulty copy" of the periodic reset). Afterwards
 * the codes the quantizers derive from the weights are the chip's codes (fault application is
 * idempotent), which is how the integer model and export get them (docs/faults.md). */
lb_status lb_chip_snap_weights(lb_chip *c);
/* Over all coded weights: how many hold another code than the one stored (*changed) of *total. */
void lb_chip_count(const lb_chip *c, uint64_t *changed, uint64_t *total);

#endif
