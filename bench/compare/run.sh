#!/usr/bin/env bash
# The quantizer comparison of issue 13 ("One comparison command", docs/quantizers.md): trains on
# Fashion-MNIST and leaves one checkpoint, metrics file and log per cell, then writes the tables
# (RUNDIR/tables.md) with bench/compare/table.py. Not part of the suite: hours of CPU.
#   resnet20: FP32 (recipe B of bench/RESULTS.md), then every method fine-tuned from it at each of
#     BITS: lsq, lsq --po2, msqe-po2 and grad-po2 (per channel), MaQD round-clip with weight
#     standardization, DoReFa weights + PACT activations, reg learned levels;
#   lbn: the cnn with MaQD round-clip W4A4 from scratch, Layer-Batch Norm at batch 8 against BN at
#     batch 128, the same epochs;
#   mobilenet: mobilenetv1 and mobilenetv2 FP32, then seed 003's matrix at W4A4: msqe-po2 and
#     grad-po2 x per tensor / per channel x without / with the fixes (msqe: outlier mask and
#     second moments; grad: stable-scale freeze after one epoch), scales logged every 50 steps
#     (lowbit plot scales RUN.metrics.jsonl), and LSQ as the reference; mobilenetv2 also with
#     LSQ po2 steps, MaQD round-clip (+ weight standardization, from the plain FP32), DoReFa+PACT
#     and reg learned levels, so that the integer checks cover every method;
#   integer: bench/int_agree.sh on every W4A4 checkpoint of resnet20 and mobilenetv2.
#
# usage: bench/compare/run.sh [RUNDIR]         (RUNDIR default: $RUNDIR, else bench/compare/runs)
# Environment (all optional):
#   PARTS     "resnet20 lbn mobilenet integer"
#   BITS      "4 3 2"                 resnet20 bit-widths (first/last layers 8 bits)
#   FP32_EPOCHS 15; FT_EPOCHS "4:2 3:3 2:4"  fine-tuning epochs per bit-width; LBN_EPOCHS 5
#   R20_FP32  an FP32 resnet20 checkpoint to start from instead of training one
#   R20_FP32_WS  the same with --weight-std, MaQD's start (a model trained without weight
#             standardization computes another function once its weights are standardized:
#             MaQD from the plain FP32 lost 1.12 points, from its own base 0.58; RESULTS.md)
#   MB_MODELS "mobilenetv1 mobilenetv2"; MB_WIDTH 1 (--width-mult of both MobileNets; at 1
#             MobileNetV2's FP32 alone is about 1.5 hours of one core on a 2-core machine)
#   MV1_FP32, MV2_FP32  FP32 MobileNet checkpoints (same recipe and width) to start from
#   THREADS   1 (each cell; run two copies of this script to use two cores: cells are claimed
#             with a lock directory, so copies never run the same cell)
#   EXTRA     appended to every train command (smoke tests: "--train-limit 512 --test-limit 256")
#   LOWBIT    the binary (default <repo>/build/release/lowbit); DATA (Fashion-MNIST)
#   DRY_RUN   1: print the commands only
# A cell is done when RUNDIR/<cell>.log exists (written as .log.part, renamed at exit); an
# interrupted cell (lock, no .log) is redone from scratch after its lock is removed.
set -u -o pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
RUNDIR=${1:-${RUNDIR:-$here/runs}}
PARTS=${PARTS:-resnet20 lbn mobilenet integer}
BITS=${BITS:-4 3 2}
FP32_EPOCHS=${FP32_EPOCHS:-15}
FT_EPOCHS=${FT_EPOCHS:-4:2 3:3 2:4}
LBN_EPOCHS=${LBN_EPOCHS:-5}
R20_FP32=${R20_FP32:-}
R20_FP32_WS=${R20_FP32_WS:-}
MB_MODELS=${MB_MODELS:-mobilenetv1 mobilenetv2}
MB_WIDTH=${MB_WIDTH:-1}
MV1_FP32=${MV1_FP32:-}
MV2_FP32=${MV2_FP32:-}
THREADS=${THREADS:-1}
EXTRA=${EXTRA:-}
LOWBIT=${LOWBIT:-$repo/build/release/lowbit}
DATA=${DATA:-/usr/share/datasets/fashion-mnist}
DRY_RUN=${DRY_RUN:-0}

die() { echo "compare: $*" >&2; exit 2; }
[ -x "$LOWBIT" ] || die "no lowbit binary at $LOWBIT (set LOWBIT)"
mkdir -p "$RUNDIR" || die "cannot create $RUNDIR"
# shellcheck disable=SC2206
extra=($EXTRA)

ft_epochs() { # bits -> fine-tuning epochs
    local p
    for p in $FT_EPOCHS; do [ "${p%%:*}" = "$1" ] && { echo "${p#*:}"; return; }; done
    echo 3
}

. "$here/../cells.bash"

common=(--seed 1 --label-smoothing 0.1 --flip)
wu=1 # recipe B's one-epoch warm-up (none in a one-epoch smoke run)
[ "$FP32_EPOCHS" -gt 1 ] || wu=0
for part in $PARTS; do
    case $part in
    resnet20)
        base=$R20_FP32
        if [ -z "$base" ]; then
            cell r20_fp32 --model resnet20 --epochs "$FP32_EPOCHS" --lr 0.1 --warmup $wu \
                "${common[@]}"
            wait_for "$RUNDIR/r20_fp32" || { echo "compare: resnet20 FP32 failed" >&2; continue; }
            base=$RUNDIR/r20_fp32.safetensors
        fi
        wsbase=$R20_FP32_WS
        if [ -z "$wsbase" ]; then
            cell r20_fp32_ws --model resnet20 --epochs "$FP32_EPOCHS" --lr 0.1 --warmup $wu \
                --weight-std "${common[@]}"
            wait_for "$RUNDIR/r20_fp32_ws" || echo "compare: resnet20 FP32 --weight-std failed" >&2
            wsbase=$RUNDIR/r20_fp32_ws.safetensors
        fi
        for b in $BITS; do
            ft=(--model resnet20 --init "$base" --epochs "$(ft_epochs "$b")" --lr 0.02 --warmup 0
                --wbits "$b" --abits "$b" "${common[@]}")
            cell "r20_lsq_w$b" "${ft[@]}" --quant lsq
            cell "r20_lsqpo2_w$b" "${ft[@]}" --quant lsq --po2
            cell "r20_msqe_w$b" "${ft[@]}" --quant msqe-po2 --per-channel --log-scales 50
            cell "r20_gradpo2_w$b" "${ft[@]}" --quant grad-po2 --per-channel --log-scales 50
            cell "r20_maqd_w$b" "${ft[@]/#$base/$wsbase}" --quant roundclip --weight-std
            cell "r20_dorefa_w$b" "${ft[@]}" --quant dorefa
            cell "r20_reg_w$b" "${ft[@]}" --quant reg --levels learned
        done
        ;;
    lbn)
        q=(--model cnn --quant roundclip --wbits 4 --abits 4 --epochs "$LBN_EPOCHS" "${common[@]}")
        cell lbn_cnn_bn_b128 "${q[@]}" --batch 128
        cell lbn_cnn_lbn_b8 "${q[@]}" --norm lbn --batch 8
        cell lbn_cnn_bn_b8 "${q[@]}" --batch 8
        ;;
    mobilenet)
        for m in $MB_MODELS; do
            mw=(--model "$m" --width-mult "$MB_WIDTH")
            base=$MV1_FP32
            [ "$m" = mobilenetv2 ] && base=$MV2_FP32
            if [ -z "$base" ]; then
                cell "${m}_fp32" "${mw[@]}" --epochs "$FP32_EPOCHS" --lr 0.1 --warmup $wu \
                    "${common[@]}"
                wait_for "$RUNDIR/${m}_fp32" || { echo "compare: $m FP32 failed" >&2; continue; }
                base=$RUNDIR/${m}_fp32.safetensors
            fi
            ft=("${mw[@]}" --init "$base" --epochs "$(ft_epochs 4)"
                --lr 0.02 --warmup 0 --wbits 4 --abits 4 --log-scales 50 "${common[@]}")
            cell "${m}_lsq_w4" "${ft[@]}" --quant lsq
            for gran in tensor channel; do
                g=()
                [ $gran = channel ] && g=(--per-channel)
                cell "${m}_msqe_${gran}_nofix" "${ft[@]}" "${g[@]}" --quant msqe-po2 \
                    --msqe-outlier off --msqe-moments off
                cell "${m}_msqe_${gran}_fix" "${ft[@]}" "${g[@]}" --quant msqe-po2 \
                    --msqe-outlier on --msqe-moments on
                cell "${m}_grad_${gran}_nofix" "${ft[@]}" "${g[@]}" --quant grad-po2
                cell "${m}_grad_${gran}_fix" "${ft[@]}" "${g[@]}" --quant grad-po2 \
                    --po2-stable-after 469
            done
            # the integer checks cover every method on mobilenetv2 (issue 13), not only the matrix
            if [ "$m" = mobilenetv2 ]; then
                cell "${m}_lsqpo2_w4" "${ft[@]}" --quant lsq --po2
                cell "${m}_maqd_w4" "${ft[@]}" --quant roundclip --weight-std
                cell "${m}_dorefa_w4" "${ft[@]}" --quant dorefa
                cell "${m}_reg_w4" "${ft[@]}" --quant reg --levels learned
            fi
        done
        ;;
    integer)
        [ "$DRY_RUN" = 1 ] && { echo "+ bench/int_agree.sh (W4A4 resnet20 and mobilenetv2 cells)"; continue; }
        cks=()
        for f in "$RUNDIR"/r20_*_w4.safetensors "$RUNDIR"/mobilenetv2_*.safetensors; do
            [ -e "$f" ] && [ "$f" != "$RUNDIR/mobilenetv2_fp32.safetensors" ] && cks+=("$f")
        done
        [ ${#cks[@]} -gt 0 ] && bash "$repo/bench/int_agree.sh" -l "$LOWBIT" -o "$RUNDIR/int_agree" \
            "${cks[@]}"
        ;;
    *) die "unknown part '$part' (resnet20 lbn mobilenet integer)" ;;
    esac
done
[ "$DRY_RUN" = 1 ] || /usr/bin/python3 "$here/table.py" "$RUNDIR" >"$RUNDIR/tables.md" &&
    echo "tables: $RUNDIR/tables.md"
