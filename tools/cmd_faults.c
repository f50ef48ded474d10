/* `lowbit faults map|convert|info`: draws a chip's fault map for a checkpoint, converts a measured
 * map from the text form, describes a map (docs/faults.md). Not the evaluation on a chip
 * (cmd_eval.c, cmd_export.c take --chip) nor fine-tuning. */
#include "cli.h"
#include "lb_faults.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The coded tensors of checkpoint `file`: its arch and specs (caller frees *specs). Exits 1 on a
 * bad file and on a float (unquantized) model, which has nothing a chip could hold. */
static int ckpt_specs(const char *cmd, const char *file, char *arch, lb_flayer_spec **specs) {
    lb_net *n;
    lb_ckpt_info info;
    if (lb_ckpt_open_model(file, 1, 1, &n, &info) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    *specs = malloc(LB_FMAX_LAYERS * sizeof **specs);
    if (!*specs) cli_die(1, cmd, "out of memory");
    int ns = 0;
    lb_status st = lb_fmap_specs_of_net(n, *specs, LB_FMAX_LAYERS, &ns);
    lb_net_free(n);
    if (st != LB_OK) cli_die(1, cmd, "%s: %s", file, lb_error_msg());
    if (ns == 0)
        cli_die(1, cmd,
                "%s: no coded weights for a chip to hold: its weights are %s (chips hold lsq, "
                "fixed and reg codes: train with --quant lsq|fixed|reg)",
                file,
                lb_quant_plan_wkind(&info.model.q) == LB_Q_NONE
                    ? "float (unquantized)"
                    : lb_qkind_name(lb_quant_plan_wkind(&info.model.q)));
    snprintf(arch, LB_FNAME_MAX, "%s", info.model.arch);
    return ns;
}

static int faults_map(int argc, char **argv) {
    const char *cmd = "faults map", *file = NULL, *out = NULL, *dist = NULL;
    double rate = 0.02, share = 0, var = 0;
    uint64_t seed = 1, vseed = 0;
    int have_var = 0, have_vseed = 0, all_layers = 0, reg_twos = 0, lsq_signmag = 0;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
#define IS(s) (strcmp(o, s) == 0)
#define VAL cli_value(cmd, argc, argv, &i)
        if (IS("--help") || IS("-h")) {
            puts("usage: lowbit faults map CKPT -o MAP [--rate R] [--sa1-share S] [--seed N]\n"
                 "       [--variability X [--var-dist gauss|lognormal] [--var-seed M]]\n"
                 "Draws a chip's fault map for the coded weights of checkpoint CKPT (their\n"
                 "encoding from its quantizers: reg kinds store the level index, LSQ/fixed a\n"
                 "two's complement code) and writes it atomically to MAP (docs/faults.md).\n"
                 "  --rate R          bit-fault rate: each cell stuck with probability R, in [0, "
                 "1]\n"
                 "                    (default 0.02, methods.md's reference)\n"
                 "  --sa1-share S     share of stuck cells stuck at 1, in [0, 1] (default 0: SA0)\n"
                 "  --reg-encoding E  how reg layers store their level index k: index (default,\n"
                 "                    offset binary, the seed's) or twos (k - 2^(b-1) in two's\n"
                 "                    complement: the all-0 pattern is a middle level)\n"
                 "  --lsq-encoding E  how signed LSQ/fixed layers store their code: twos\n"
                 "                    (default) or signmag (a sign cell and b-1 magnitude\n"
                 "                    cells, as a differential pair: holds +-(2^(b-1)-1))\n"
                 "  --layers L        body (default): the first and last coded layers are\n"
                 "                    healthy (held off the faulty array, as in the reference,\n"
                 "                    where they stay float); all: every coded layer\n"
                 "  --seed N          fault seed (default 1); one seed's maps are nested in R\n"
                 "  --variability X   sigma/mu >= 0 of the per-cell multipliers (default 0: none)\n"
                 "  --var-dist D      gauss (1 + X*N(0,1), the reference) | lognormal (default\n"
                 "                    gauss)\n"
                 "  --var-seed M      variability seed (default: the fault seed)");
            return 0;
        }
        if (IS("-o") || IS("--out"))
            out = VAL;
        else if (IS("--rate"))
            rate = cli_float(cmd, o, VAL, 0, 1);
        else if (IS("--sa1-share"))
            share = cli_float(cmd, o, VAL, 0, 1);
        else if (IS("--layers"))
            all_layers = cli_layers(cmd, VAL);
        else if (IS("--reg-encoding"))
            reg_twos = cli_reg_encoding(cmd, VAL);
        else if (IS("--lsq-encoding"))
            lsq_signmag = cli_lsq_encoding(cmd, VAL);
        else if (IS("--seed"))
            seed = (uint64_t)cli_int(cmd, o, VAL, 0, 2147483647);
        else if (IS("--variability")) {
            const char *v = VAL;
            if (v[0] == '-') cli_die(2, cmd, "--variability: sigma/mu must be >= 0, got '%s'", v);
            var = cli_float(cmd, o, v, 0, 100);
            have_var = 1;
        } else if (IS("--var-dist"))
            dist = VAL;
        else if (IS("--var-seed")) {
            vseed = (uint64_t)cli_int(cmd, o, VAL, 0, 2147483647);
            have_vseed = 1;
        } else if (o[0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit faults map --help)", o);
        else if (file)
            cli_die(2, cmd, "more than one checkpoint given ('%s', '%s')", file, o);
        else
            file = o;
#undef IS
#undef VAL
    }
    if (!file) cli_die(2, cmd, "no checkpoint CKPT given (see lowbit faults map --help)");
    if (!out) cli_die(2, cmd, "no output map given (-o MAP)");
    lb_fvar kind = LB_FVAR_GAUSS;
    if (dist && (lb_fvar_parse(dist, &kind) != LB_OK || kind == LB_FVAR_NONE))
        cli_die(2, cmd, "--var-dist: expected gauss or lognormal, got '%s'", dist);
    if ((dist || have_vseed) && !have_var)
        cli_die(2, cmd, "%s needs --variability", dist ? "--var-dist" : "--var-seed");
    char arch[LB_FNAME_MAX];
    lb_flayer_spec *specs;
    int ns = ckpt_specs(cmd, file, arch, &specs);
    if (reg_twos && lb_fmap_specs_twos(specs, ns) == 0) {
        free(specs);
        cli_die(2, cmd,
                "--reg-encoding twos: %s has no reg-coded layer (LSQ and fixed layers "
                "store their own encoding)",
                file);
    }
    if (lsq_signmag && lb_fmap_specs_signmag(specs, ns) == 0) {
        free(specs);
        cli_die(2, cmd,
                "--lsq-encoding signmag: %s has no signed LSQ or fixed layer (reg layers store "
                "an index or two's complement: --reg-encoding)",
                file);
    }
    lb_fmap m;
    lb_status st = lb_fmap_create(&m, arch, specs, ns, 0);
    free(specs);
    if (st == LB_OK) st = lb_fmap_draw_faults(&m, rate, share, seed);
    /* sigma/mu 0 draws no multipliers at all: the map stays integer (docs/faults.md) */
    if (st == LB_OK && var > 0) st = lb_fmap_draw_var(&m, kind, var, have_vseed ? vseed : seed);
    if (st == LB_OK) lb_fmap_spare(&m, !all_layers);
    if (st == LB_OK) st = lb_fmap_write(out, &m);
    if (st != LB_OK) {
        lb_fmap_free(&m);
        cli_die(1, cmd, "%s", lb_error_msg());
    }
    uint64_t n = 0, cells = 0, stuck = 0;
    int spared = !all_layers && m.nlayers > 2;
    for (int l = 0; l < m.nlayers; l++) {
        const lb_flayer *L = &m.layers[l];
        n += L->spec.n;
        if (spared && (l == 0 || l == m.nlayers - 1)) continue;
        cells += L->spec.n * (uint64_t)L->spec.bits;
        for (uint64_t w = 0; w < L->spec.n; w++)
            stuck += (uint64_t)__builtin_popcount(L->sa0[w] | L->sa1[w]);
    }
    printf("wrote %s: model %s, %d coded layers, %llu weights, %llu of %llu cells stuck (%.4f)",
           out, arch, m.nlayers, (unsigned long long)n, (unsigned long long)stuck,
           (unsigned long long)cells, cells ? (double)stuck / (double)cells : 0.0);
    if (var > 0) printf(", %s variability sigma/mu %g", lb_fvar_name(kind), var);
    if (spared)
        printf("; first and last coded layers ('%s', '%s') spared (--layers all puts them on the "
               "chip)",
               m.layers[0].spec.name, m.layers[m.nlayers - 1].spec.name);
    putchar('\n');
    lb_fmap_free(&m);
    return 0;
}

static int faults_convert(int argc, char **argv) {
    const char *cmd = "faults convert", *in = NULL, *out = NULL, *ckpt = NULL;
    for (int i = 0; i < argc; i++) {
        const char *o = argv[i];
        if (strcmp(o, "--help") == 0 || strcmp(o, "-h") == 0) {
            puts("usage: lowbit faults convert IN.txt -o MAP [--for CKPT]\n"
                 "Converts a map measured on a chip, written in the text form of docs/faults.md,\n"
                 "to the binary map file (written atomically).\n"
                 "  --for CKPT   also check that the map fits checkpoint CKPT before writing");
            return 0;
        }
        if (strcmp(o, "-o") == 0 || strcmp(o, "--out") == 0)
            out = cli_value(cmd, argc, argv, &i);
        else if (strcmp(o, "--for") == 0)
            ckpt = cli_value(cmd, argc, argv, &i);
        else if (o[0] == '-')
            cli_die(2, cmd, "unknown option '%s' (see lowbit faults convert --help)", o);
        else if (in)
            cli_die(2, cmd, "more than one input given ('%s', '%s')", in, o);
        else
            in = o;
    }
    if (!in) cli_die(2, cmd, "no input text map given (see lowbit faults convert --help)");
    if (!out) cli_die(2, cmd, "no output map given (-o MAP)");
    lb_fmap m;
    if (lb_fmap_read_text(in, &m) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    if (ckpt) {
        char arch[LB_FNAME_MAX];
        lb_flayer_spec *specs;
        int ns = ckpt_specs(cmd, ckpt, arch, &specs);
        lb_status st = lb_fmap_check_model(&m, in, arch, specs, ns);
        free(specs);
        if (st != LB_OK) {
            lb_fmap_free(&m);
            cli_die(1, cmd, "%s (checkpoint %s)", lb_error_msg(), ckpt);
        }
    }
    if (lb_fmap_write(out, &m) != LB_OK) {
        lb_fmap_free(&m);
        cli_die(1, cmd, "%s", lb_error_msg());
    }
    printf("wrote %s: model %s, %d coded layers%s\n", out, m.arch, m.nlayers,
           m.nlayers && m.layers[0].var ? ", with multipliers" : "");
    lb_fmap_free(&m);
    return 0;
}

static int faults_info(int argc, char **argv) {
    const char *cmd = "faults info", *file = NULL;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            puts("usage: lowbit faults info MAP\nDescribes a fault map: model, how it was drawn, "
                 "and per coded layer its stuck cells and multipliers.");
            return 0;
        }
        if (argv[i][0] == '-') cli_die(2, cmd, "unknown option '%s'", argv[i]);
        if (file) cli_die(2, cmd, "more than one map given ('%s', '%s')", file, argv[i]);
        file = argv[i];
    }
    if (!file) cli_die(2, cmd, "no MAP given (see lowbit faults info --help)");
    lb_fmap m;
    if (lb_fmap_read(file, &m) != LB_OK) cli_die(1, cmd, "%s", lb_error_msg());
    const lb_fprov *p = &m.prov;
    printf("file: %s\nmodel: %s  coded layers: %d\n", file, m.arch, m.nlayers);
    printf("drawn: rate %g  sa1_share %g  seed %llu  variability %s %g  var_seed %llu\n", p->rate,
           p->sa1_share, (unsigned long long)p->fault_seed, lb_fvar_name(p->var_kind), p->var_ratio,
           (unsigned long long)p->var_seed);
    for (int l = 0; l < m.nlayers; l++) {
        const lb_flayer *L = &m.layers[l];
        uint64_t s0 = 0, s1 = 0, faulty = 0;
        for (uint64_t w = 0; w < L->spec.n; w++) {
            s0 += (uint64_t)__builtin_popcount(L->sa0[w]);
            s1 += (uint64_t)__builtin_popcount(L->sa1[w]);
            faulty += (L->sa0[w] | L->sa1[w]) != 0;
        }
        printf("  %-14s %8llu weights %d-bit %-5s  stuck cells: %llu at 0, %llu at 1  "
               "weights with a stuck cell: %llu",
               L->spec.name, (unsigned long long)L->spec.n, L->spec.bits, lb_fenc_name(L->spec.enc),
               (unsigned long long)s0, (unsigned long long)s1, (unsigned long long)faulty);
        if (L->var) {
            size_t nv = (size_t)L->spec.n * (size_t)L->spec.bits;
            double sum = 0, sq = 0, lo = INFINITY;
            for (size_t i = 0; i < nv; i++) {
                sum += L->var[i];
                sq += (double)L->var[i] * L->var[i];
                lo = L->var[i] < lo ? L->var[i] : lo;
            }
            double mean = nv ? sum / (double)nv : 0;
            printf("  multipliers: mean %.4f std %.4f min %.4f", mean,
                   nv ? sqrt(fmax(sq / (double)nv - mean * mean, 0)) : 0.0, nv ? lo : 0.0);
        }
        putchar('\n');
    }
    lb_fmap_free(&m);
    return 0;
}

int cmd_faults(int argc, char **argv) {
    const char *sub = argc > 0 ? argv[0] : NULL;
    if (!sub || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        fputs("usage: lowbit faults map|convert|info|sweep ...\n"
              "  map      draw a chip's fault map (stuck bits, variability) for a checkpoint\n"
              "  convert  a map measured on a chip, text form -> binary map file\n"
              "  info     describe a map\n"
              "  sweep    chips per fault rate/variability, before and after fine-tuning\n"
              "A chip is used with 'lowbit eval CKPT --chip MAP' and 'lowbit export CKPT --chip\n"
              "MAP' (docs/faults.md). 'lowbit faults <sub> --help' describes each.\n",
              sub ? stdout : stderr);
        return sub ? 0 : 2;
    }
    if (strcmp(sub, "map") == 0) return faults_map(argc - 1, argv + 1);
    if (strcmp(sub, "convert") == 0) return faults_convert(argc - 1, argv + 1);
    if (strcmp(sub, "info") == 0) return faults_info(argc - 1, argv + 1);
    if (strcmp(sub, "sweep") == 0) return cmd_faults_sweep(argc - 1, argv + 1);
    cli_die(2, "faults", "unknown subcommand '%s' (map, convert, info, sweep)", sub);
}
