#!/usr/bin/env bash
# Installs the Debian packages lowbit needs, only those missing (root, Debian 12). Why each one:
#   gcc make pkg-config     the build
#   libopenblas-dev         CBLAS sgemm inside the conv/linear kernels (any CBLAS links)
#   zlib1g-dev              reading the gzip'd idx files of (Fashion-)MNIST
#   libcjson-dev            the JSON header of safetensors checkpoints
#   libpng-dev libjpeg62-turbo-dev  decoding image folders (PNG, JPEG); docs/data.md
#   libgomp (gcc)           OpenMP: per-image parallel loops
#   dataset-fashion-mnist   the default data set, /usr/share/datasets/fashion-mnist
#   python3-torch python3-numpy  PyTorch 1.13 reference values in tests, the peer in bench/
#   python3-pil             tests/cli/imgdir.sh writes a PNG/JPEG folder tree from Fashion-MNIST
#   libprotobuf-c-dev protobuf-c-compiler libonnx-dev  ONNX import: protoc-c generates the C for
#                           libonnx-dev's onnx.proto at build time; docs/onnx.md
#   python3-onnx            tests/cli/onnx.sh exports PyTorch models to ONNX
#   python3-torchvision     torchvision's own MobileNetV2 graph, exported and imported in onnx.sh
#   gcc-arm-none-eabi libnewlib-arm-none-eabi  compiling exported models for a Cortex-M4
#   clang libclang-rt-14-dev  the clang -Werror build and the libFuzzer runs of the parsers
#   python3-matplotlib      the plots of `lowbit faults sweep` (SVG and PNG; tests/cli/finetune.sh)
# From PyPI (pip, beside Debian's torch, --no-deps so it never replaces Debian's packages):
#   snntorch 1.0.0          reference values of the LIF neuron and the count loss (tests/torch/
#                           ref_snn.py; without it a PyTorch twin is used, and the suite says so)
#   onnxruntime 1.20.1      runs lowbit's ONNX exports in tests/cli/onnx.sh and onnx_quant.sh and
#                           bench/onnx/agree.sh (docs/onnx.md; without it those tests compare
#                           less and say so). Its wheel works with Debian's numpy 1.24; what it
#                           imports at run time is Debian's (python3-numpy, -protobuf, -sympy,
#                           -packaging); coloredlogs and flatbuffers serve only its own tools
# With BENCH=1 also what bench/robust/ needs (not the suite):
#   python3-sklearn         the bundled digits set and the logistic-regression baseline
#   fonts-dejavu-core fonts-dejavu-extra  rendering the glyph set
set -eu
pkgs="gcc make pkg-config libopenblas-dev zlib1g-dev libcjson-dev libpng-dev libjpeg62-turbo-dev
      dataset-fashion-mnist
      libprotobuf-c-dev protobuf-c-compiler libonnx-dev python3-onnx python3-torchvision
      python3-torch python3-numpy python3-pil gcc-arm-none-eabi libnewlib-arm-none-eabi clang libclang-rt-14-dev
      python3-matplotlib python3-protobuf python3-sympy python3-packaging"
[ "${BENCH:-0}" = 1 ] &&
    pkgs="$pkgs python3-sklearn fonts-dejavu-core fonts-dejavu-extra"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "deps: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! /usr/bin/python3 -c "import snntorch" 2>/dev/null; then
    echo "deps: installing snntorch 1.0.0 (pip, --no-deps)"
    /usr/bin/python3 -m pip install -q --break-system-packages --no-deps snntorch==1.0.0 ||
        echo "deps: snntorch not installed: the SNN references come from the PyTorch twin"
fi
if ! /usr/bin/python3 -c "import onnxruntime" 2>/dev/null; then
    echo "deps: installing onnxruntime 1.20.1 (pip, --no-deps)"
    /usr/bin/python3 -m pip install -q --break-system-packages --no-deps onnxruntime==1.20.1 ||
        echo "deps: onnxruntime not installed: the ONNX export tests skip their onnxruntime runs"
fi
