# ferry - the two commands a fresh machine needs:
#   make demo    install dependencies, build, run the default demo
#   make check   install dependencies, build, run every test
BUILD ?= build
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?= stream rdma zstd lz4 zlib xbzrle retpath qmp mapped
SOAK_SECONDS ?= 1800

.PHONY: all deps build demo check test lint fuzz-check fuzz soak bench clean

all: build

deps:
	@scripts/deps.sh

$(BUILD)/build.ninja: | deps
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	$(BUILD)/ferry demo --ram 1G --vcpus 2 --workload stress:bytes=512M

# Unit and end-to-end tests, the stream decoder fuzzed for FUZZ_SECONDS and
# the other fuzz targets for 15 s each, and the style checks; ends with one
# "N passed, N failed" line.
check: build
	@scripts/check.sh $(BUILD) $(FUZZ_BUILD) $(FUZZ_SECONDS)

test: build
	meson test -C $(BUILD) --print-errorlogs

lint: deps
	@scripts/lint.sh

$(FUZZ_BUILD)/build.ninja: | deps
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzzing=true -Dbuildtype=debugoptimized

# A longer fuzzing session, each target in turn for FUZZ_SECONDS:
# make fuzz FUZZ_SECONDS=3600 (one target: FUZZ_TARGETS=qmp)
fuzz: build $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	for t in $(FUZZ_TARGETS); do \
		scripts/fuzz.sh $(BUILD) $(FUZZ_BUILD) $(FUZZ_SECONDS) $$t || exit 1; \
	done

# Randomised migrations with faults for SOAK_SECONDS (make check runs a
# 120 s one); SOAK_SEED=N repeats a run's choices.
soak: build
	python3 tests/soak/soak.py --seconds $(SOAK_SECONDS) \
		$(SOAK_SEED:%=--seed %) $(BUILD)/ferry

bench: build
	$(BUILD)/bench/dirty-sync
	$(BUILD)/bench/codec
	bench/precopy --ferry $(BUILD)/ferry
	bench/postcopy --ferry $(BUILD)/ferry
	bench/rdma --ferry $(BUILD)/ferry
	bench/snapshot --ferry $(BUILD)/ferry

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD) $(BUILD)-san
