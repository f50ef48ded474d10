/* The lowbit CLI's shared pieces: strict option parsing and error exit. Only the CLI prints. */
#ifndef LB_CLI_H
#define LB_CLI_H

#include "lb_train.h"

/* Prints "lowbit <cmd>: <msg>" to stderr and exits 2 (usage) or 1 (runtime). */
_Noreturn void cli_die(int code, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi);
float cli_float(const char *cmd, const char *opt, const char *v, double lo, double hi);
const char *cli_value(const char *cmd, int argc, char **argv, int *i);
/* --layers body|all (fault maps, sweeps): 1 for all, 0 for body; exits 2 otherwise. */
int cli_layers(const char *cmd, const char *v);
/* --reg-encoding index|twos (fault maps, sweeps): 1 for twos, 0 for index; exits 2 otherwise. */
int cli_reg_encoding(const char *cmd, const char *v);
/* --lsq-encoding twos|signmag (fault maps, sweeps): 1 for signmag, 0 for twos; exits 2 otherwise.
 */
int cli_lsq_encoding(const char *cmd, const char *v);
void cli_copy(const char *cmd, const char *opt, char *dst, size_t n, const char *v);

/* Options shared by train and bench (model, quantization, optimization, data). Returns 1 if
 * argv[*i] was one of them (advancing *i past its value). */
int cli_train_option(const char *cmd, int argc, char **argv, int *i, lb_train_cfg *c);
void cli_train_usage(void);
/* The spiking-model options (cli_snn.c): 1 if argv[*i] was one. */
int cli_snn_option(const char *cmd, int argc, char **argv, int *i, lb_snn_cfg *s);
void cli_snn_usage(void);
/* After parsing: a spiking option with a model that is not spiking, or spiking options that do
 * not fit together (--loss mse-count with --readout membrane), exit 2 naming them. */
void cli_snn_check(const char *cmd, const lb_train_cfg *c);
/* --image-size HxW, --channels 1|3, --test-split F (image folders); 1 if argv[*i] was one. */
int cli_image_option(const char *cmd, int argc, char **argv, int *i, lb_image_opts *img);
/* After parsing: a reg option (--levels, --reg-kind, --reg-lambda, ...) without --quant reg
 * exits 2 naming it. */
void cli_reg_check(const char *cmd, const lb_train_cfg *c);

int cmd_train(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_faults(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_finetune(int argc, char **argv);
struct lb_ft_cfg;
/* The options finetune and faults sweep share (cmd_finetune.c): 1 if argv[*i] was one. */
int cli_ft_option(const char *cmd, int argc, char **argv, int *i, struct lb_ft_cfg *c);
int cmd_faults_sweep(int argc, char **argv); /* lowbit faults sweep (cmd_sweep.c) */
int cmd_import(int argc, char **argv);
int cmd_events(int argc, char **argv); /* lowbit events info|emulate (cmd_events.c) */
int cmd_plot(int argc, char **argv);   /* lowbit plot scales (cmd_plot.c) */

#endif
