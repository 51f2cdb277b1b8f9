# The pipeline's map. Targets are files under work/<collection>/, so `make` reruns only what changed.
#
#   make setup                      virtual environment with pinned versions (.venv)
#   make test                       the test suite
#   make bm25 LANG=all              BM25 runs for every language and split with topics
#   make eval                       nDCG@10 / Recall@100 table on dev for every system with runs
#
# Inputs: CONFIG=configs/<x>.yaml, DATA=<MIRACL release root>, LANG=all|"ja yo"|ja,yo, SPLIT=dev.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

# LANG is also the locale. Take it as the language selection only when it comes from the command
# line, then give every recipe a UTF-8 locale (a JVM under LANG=all reads and writes ASCII).
ifeq ($(origin LANG),command line)
SELECT := $(LANG)
else
SELECT := all
endif
override LANG := C.UTF-8
export LANG
export LC_ALL := C.UTF-8
export PYTHONUTF8 := 1
# ranx compiles with numba at first use (~15 s); a persistent cache makes later calls fast.
export NUMBA_CACHE_DIR := $(CURDIR)/work/.numba-cache

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
CONFIG ?= configs/sample.yaml
DATA ?=
SPLIT ?=
CONFIG_ARGS := --config $(CONFIG) $(if $(DATA),--data $(abspath $(DATA)))
FAISS_EXTRA := $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)

comma := ,
empty :=
space := $(empty) $(empty)

# ---------------------------------------------------------------- set-up and tests

setup: $(VENV_STAMP) ## create .venv: torch (CPU wheel) first, then the project with pinned versions

$(VENV_STAMP): pyproject.toml configs/requirements-lock.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c configs/requirements-lock.txt -e ".[$(FAISS_EXTRA),test]"
	touch $@

test: $(VENV_STAMP) ## run the test suite (no network, no GPU)
	$(PY) -m pytest

# ---------------------------------------------------------------- what the config says

# Languages, splits and the work folder come from the config (and DATA), via a generated include.
PLAN := work/.make/$(subst /,_,$(CONFIG))$(if $(DATA),@$(subst /,_,$(abspath $(DATA)))).mk
NO_PLAN_GOALS := help setup test clean-all doctor
ifneq ($(filter-out $(NO_PLAN_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
include $(PLAN)
endif

$(PLAN): $(CONFIG) $(wildcard configs/*.yaml) stages/config.py | $(VENV_STAMP)
	@mkdir -p $(@D)
	$(PY) -m stages.config make-vars $(CONFIG_ARGS) > $@.tmp && mv $@.tmp $@

LANGS := $(if $(filter all,$(SELECT)),$(ALL_LANGS),$(subst $(comma),$(space),$(SELECT)))
ifneq ($(ALL_LANGS),)
ifneq ($(filter-out $(ALL_LANGS),$(LANGS)),)
$(error unknown language(s) in LANG: $(filter-out $(ALL_LANGS),$(LANGS)); $(CONFIG) defines: $(ALL_LANGS))
endif
endif

RUNS := $(WORK_DIR)/runs
topics_file = $(DATA_ROOT)/miracl-v1.0-$(1)/topics/topics.miracl-v1.0-$(1)-$(2).tsv
corpus_files = $(wildcard $(DATA_ROOT)/miracl-corpus-v1.0-$(1)/*.jsonl $(DATA_ROOT)/miracl-corpus-v1.0-$(1)/*.jsonl.gz)
# Splits of language $(1) to run: those named in SPLIT, else the configured ones that have topics.
run_splits = $(if $(SPLIT),$(filter $(subst $(comma),$(space),$(SPLIT)),$(SPLITS_$(1))),$(foreach s,$(SPLITS_$(1)),$(if $(wildcard $(call topics_file,$(1),$(s))),$(s))))

# ---------------------------------------------------------------- BM25

# One process per language indexes it (if its corpus changed) and writes the runs of all its splits.
define bm25_rules
bm25_runs_$(1) := $(foreach s,$(call run_splits,$(1)),$(RUNS)/bm25/run.bm25.$(1).$(s).txt)
ifneq ($$(bm25_runs_$(1)),)
$$(bm25_runs_$(1)) &: $(call corpus_files,$(1)) $(foreach s,$(call run_splits,$(1)),$(call topics_file,$(1),$(s))) $(CONFIG)
	$(PY) -m stages.bm25 $(CONFIG_ARGS) --lang $(1) --split "$(call run_splits,$(1))"
endif
endef
$(foreach l,$(ALL_LANGS),$(eval $(call bm25_rules,$(l))))

BM25_RUNS := $(foreach l,$(LANGS),$(bm25_runs_$(l)))

bm25: ## BM25 runs for LANG (default: all) and SPLIT (default: every split with topics), languages in parallel
	@$(MAKE) --no-print-directory -j$(JOBS) bm25-runs

bm25-runs: $(BM25_RUNS)
	@printf '%s\n' $(BM25_RUNS)

index: ## only build the BM25 indexes of LANG
	$(PY) -m stages.bm25 $(CONFIG_ARGS) --lang "$(LANGS)" --index-only

# ---------------------------------------------------------------- evaluation

EVAL_ON := $(or $(SPLIT),$(EVAL_SPLIT))
EVAL_RUNS := $(foreach l,$(LANGS),$(if $(filter $(EVAL_ON),$(SPLITS_$(l))),$(RUNS)/bm25/run.bm25.$(l).$(EVAL_ON).txt))

eval: ## nDCG@10 and Recall@100 per language (and average) on SPLIT (default: dev), every system with runs
	@$(MAKE) --no-print-directory -j$(JOBS) eval-inputs
	$(PY) -m stages.evaluate $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

eval-inputs: $(EVAL_RUNS)
	@:

check: eval ## compare the evaluation with the table of expected scores (configs/expected/)
	$(PY) -m stages.check $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

# ---------------------------------------------------------------- diagnostics and benchmarks

doctor: $(VENV_STAMP) ## Java in use, library versions, each language's analyzer on a sample sentence
	$(PY) -m stages.doctor $(CONFIG_ARGS) --lang "$(SELECT)"

bench-bm25: ## indexing and retrieval throughput, ours beside Pyserini's command line (synthetic 200k passages)
	$(PY) -m stages.benchmarks.bm25 $(CONFIG_ARGS)

# ---------------------------------------------------------------- housekeeping

clean: ## remove what was generated for this collection (indexes, runs, reports)
	rm -rf $(WORK_DIR)

clean-all: ## remove work/ and .venv/
	rm -rf work $(VENV)

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /  make \1\t/' | expand -t 24

.PHONY: setup test bm25 bm25-runs index eval eval-inputs check doctor bench-bm25 clean clean-all help
