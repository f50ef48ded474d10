# lowbit build. `make` builds the library, the CLI and the tests (release); `make asan` the same
# under ASan+UBSan in build/asan; `make test` runs the whole suite (scripts/test.sh).
CC      ?= gcc
BUILD   ?= build/release
OPT     ?= -O3
SAN     ?=
BLAS_INC := $(shell pkg-config --cflags-only-I openblas 2>/dev/null || pkg-config --cflags-only-I cblas 2>/dev/null)
BLAS_LIB := $(shell pkg-config --libs openblas 2>/dev/null || echo -lcblas)
CFLAGS  ?=
CFLAGS  += -std=c11 $(OPT) -g -Wall -Wextra -Werror -D_GNU_SOURCE -fopenmp -Iinclude $(BLAS_INC) $(SAN)
LDLIBS  := $(BLAS_LIB) -lcjson -lpng -ljpeg -lz -lprotobuf-c -lm -lpthread
LDFLAGS += -fopenmp $(SAN)

# SIMD kernels live in their own files and are chosen at run time; only they get ISA flags.
AVX2_FLAGS   := -mavx2 -mfma
AVX512_FLAGS := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
VNNI_FLAGS   := $(AVX512_FLAGS) -mavx512vnni

LIB_SRC  := $(sort $(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC := $(sort $(wildcard tools/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRC := $(sort $(wildcard fuzz/fuzz_*.c))
LIB      := $(BUILD)/liblowbit.a
# ONNX import (docs/onnx.md): the C for onnx.proto is generated at build time by protoc-c
# (protobuf-c-compiler) from the .proto Debian's libonnx-dev installs; never committed.
ONNX_PROTO ?= /usr/include/onnx/onnx.proto
GEN      := $(BUILD)/gen
LIB_OBJ  += $(GEN)/onnx.pb-c.o
CFLAGS   += -I$(GEN)
CLI      := $(BUILD)/lowbit

.PHONY: all lib cli tests asan test format clean
.SECONDARY:
all: lib cli tests
lib: $(LIB)
cli: $(CLI)
tests: $(TEST_BIN)

$(BUILD)/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%_avx512.o: %_avx512.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX512_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%_vnni.o: %_vnni.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(VNNI_FLAGS) -MMD -MP -c $< -o $@
$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h &: $(ONNX_PROTO)
	@mkdir -p $(GEN)
	protoc-c --c_out=$(GEN) -I$(dir $(ONNX_PROTO)) $(notdir $(ONNX_PROTO))
$(GEN)/onnx.pb-c.o: $(GEN)/onnx.pb-c.c $(GEN)/onnx.pb-c.h
	$(CC) $(CFLAGS) -c $< -o $@
$(patsubst %.c,$(BUILD)/%.o,$(wildcard src/interop/*.c)): $(GEN)/onnx.pb-c.h

$(LIB): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(CLI): $(TOOL_SRC:%.c=$(BUILD)/%.o) $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# -O2, not ASan's usual -O1: the suite's sanitizer runs spend their time in the Winograd GEMM and
# weight-gradient kernels, which -O2 runs 1.4x faster under the sanitizers (a 512-image cnn run:
# 26.5 s at -O1, 18.6 s at -O2; release 1.6 s); the checks are inserted before optimization.
asan:
	$(MAKE) BUILD=build/asan OPT=-O2 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" all

test:
	bash scripts/test.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(TEST_BIN:=.d) $(TOOL_SRC:%.c=$(BUILD)/%.d)
