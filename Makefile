# The pipeline's map. Targets are files under work/<collection>/, so `make` reruns only what changed.
#
#   make setup                      virtual environment with pinned versions (.venv)
#   make test                       the test suite
#   make bm25 LANG=all              BM25 runs for every language and split with topics
#   make eval                       nDCG@10 / Recall@100 table on dev for every system with runs
#
# Inputs: CONFIG=configs/<x>.yaml, DATA=<MIRACL release root>, LANG=all|"ja yo"|ja,yo, SPLIT=dev, VERBOSE=1.
# Training on several processes (torchrun; rank 0 saves and reports): NPROC=<processes per host>, e.g.
#   make train-ce NPROC=4; on several hosts, with work/ on a shared file system, the same command on each:
#   make train-ce NPROC=4 NNODES=2 NODE_RANK=<0 or 1> MASTER_ADDR=<host of rank 0> [MASTER_PORT=29500]

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:
MAKEFLAGS += --no-builtin-rules

# LANG is also the locale. Take it as the language selection only when it comes from the command
# line, then give every recipe a UTF-8 locale (a JVM under LANG=all reads and writes ASCII).
ifeq ($(origin LANG),command line)
SELECT := $(strip $(LANG))
ifeq ($(SELECT),)
$(error LANG= is empty: give LANG=all, or language codes such as LANG="ja yo" or LANG=ja,yo)
endif
else
SELECT := all
endif
ifeq ($(origin SPLIT),command line)
ifeq ($(strip $(SPLIT)),)
$(error SPLIT= is empty: give a split such as SPLIT=dev (train, dev, test-a, test-b), or leave SPLIT out for every configured split)
endif
endif
override LANG := C.UTF-8
export LANG
export LC_ALL := C.UTF-8
export PYTHONUTF8 := 1
# make -j runs torch processes side by side; OpenMP's default spin-waiting then makes each of them
# several times slower (measured here: two trainings 80 s side by side, 13 s with passive waiting).
export OMP_WAIT_POLICY ?= PASSIVE
# ranx compiles with numba at first use (~15 s); a persistent cache makes later calls fast.
export NUMBA_CACHE_DIR := $(CURDIR)/work/.numba-cache
# Quiet by default (stages/console.py): each stage prints a line per language; Java, Anserini, the Trainer and
# library warnings go to the stage's log file under work/<collection>/logs/. VERBOSE=1 shows everything,
# the commands included.
VERBOSE ?=
override VERBOSE := $(filter-out 0,$(VERBOSE))
Q := $(if $(VERBOSE),,@)
export PIPELINE_OUTPUT := $(if $(VERBOSE),verbose,quiet)
export PIPELINE_LOG_DIR := $(CURDIR)/work/logs
# EXECUTOR=ray: the stages' work units (dense encoding's shards, reranking's splits, the teacher's chunks of pairs)
# on Ray workers, on the cluster RAY_ADDRESS names or on a Ray instance started for the stage; local (the config's
# executor.kind, by default) runs them here.
EXECUTOR ?=
ifneq ($(strip $(EXECUTOR)),)
export PIPELINE_EXECUTOR := $(strip $(EXECUTOR))
endif
# Under Ray, one stage process at a time: side by side, each would start (or fill) Ray with workers of its own.
ifeq ($(strip $(EXECUTOR)),ray)
override JOBS := 1
endif
# Messages of the stages name make's variables (LANG=, SPLIT=) rather than their own flags (--lang, --split).
export PIPELINE_FRONTEND := make

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VENV_STAMP := $(VENV)/.installed
CONFIG ?= configs/sample.yaml
DATA ?=
SPLIT ?=
MODELS ?=
CONFIG_ARGS := --config $(CONFIG) $(if $(DATA),--data $(abspath $(DATA))) $(if $(MODELS),--models $(abspath $(MODELS)))
FAISS_EXTRA := $(if $(shell command -v nvidia-smi 2>/dev/null),gpu,cpu)

# The training rows' launcher: plain Python, or torchrun with NPROC. NPROC counts from the command line only
# (build scripts often export an NPROC of their own); the host settings come from the environment too (a
# cluster's scheduler sets them).
ifneq ($(origin NPROC),command line)
override NPROC :=
endif
no_digits = $(subst 0,,$(subst 1,,$(subst 2,,$(subst 3,,$(subst 4,,$(subst 5,,$(subst 6,,$(subst 7,,$(subst 8,,$(subst 9,,$(1)))))))))))
is_count = $(and $(filter 1,$(words $(1))),$(if $(call no_digits,$(1)),,y),$(if $(filter 0%,$(1)),,y))
ifneq ($(NPROC),)
ifeq ($(call is_count,$(NPROC)),)
$(error NPROC=$(NPROC): give the number of training processes per host, a positive integer such as NPROC=2)
endif
ifeq ($(call is_count,$(or $(strip $(NNODES)),1)),)
$(error NNODES=$(NNODES): give the number of hosts, a positive integer such as NNODES=2)
endif
MULTI_HOST := $(filter-out 1,$(strip $(NNODES)))
ifneq ($(MULTI_HOST),)
ifeq ($(call is_count,$(NODE_RANK))$(filter 0,$(NODE_RANK)),)
$(error NNODES=$(NNODES) needs NODE_RANK=<this host's number, 0 to NNODES-1>: 0 on the host at MASTER_ADDR)
endif
ifeq ($(strip $(MASTER_ADDR)),)
$(error NNODES=$(NNODES) needs MASTER_ADDR=<the address of the host with NODE_RANK=0>)
endif
ifeq ($(call is_count,$(or $(strip $(MASTER_PORT)),29500)),)
$(error MASTER_PORT=$(MASTER_PORT): give a port number, such as MASTER_PORT=29500)
endif
endif
else ifeq ($(origin NNODES),command line)
$(error NNODES=$(NNODES) needs NPROC=<training processes per host>)
endif
# One host: torchrun's standalone rendezvous on a free local port. Several: the static one at MASTER_ADDR.
TORCHRUN_HOSTS := $(if $(MULTI_HOST),--nnodes=$(MULTI_HOST) --node_rank=$(strip $(NODE_RANK)) --master_addr=$(strip $(MASTER_ADDR)) --master_port=$(or $(strip $(MASTER_PORT)),29500),--standalone)
# LOGLEVEL: torchrun's own warnings (its OMP_NUM_THREADS banner) only with VERBOSE=1; errors always.
TRAIN_PY := $(if $(NPROC),LOGLEVEL=$(if $(VERBOSE),WARNING,ERROR) $(VENV)/bin/torchrun --nproc_per_node=$(NPROC) $(TORCHRUN_HOSTS) -m,$(PY) -m)

comma := ,
empty :=
space := $(empty) $(empty)

# ---------------------------------------------------------------- set-up and tests

setup: $(VENV_STAMP) ## create .venv: torch (CPU wheel) first, then the project with pinned versions

$(VENV_STAMP): pyproject.toml configs/requirements-lock.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required, found " + sys.version'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -c configs/requirements-lock.txt -e ".[$(FAISS_EXTRA),test,ray]"
	touch $@

test: lint ## ruff, then the test suite (no network, no GPU)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff: lint rules and formatting (settings in pyproject.toml); make format rewrites
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV_STAMP) ## rewrite the code in ruff's format, and apply ruff's safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# ---------------------------------------------------------------- what the config says

# Languages, splits, the work folder and every stage's files come from the config (and DATA) through a
# generated include: stages/plan.py holds the table of stages (what each runs, reads, writes and hashes).
PLAN_DIR ?= work/.make
# One plan per CONFIG, DATA and MODELS: the plan names the model files the rules read.
PLAN := $(PLAN_DIR)/$(subst /,_,$(CONFIG))$(if $(DATA),@$(subst /,_,$(abspath $(DATA))))$(if $(MODELS),+$(subst /,_,$(abspath $(MODELS)))).mk
NO_PLAN_GOALS := help setup test lint format clean-all doctor
ifneq ($(filter-out $(NO_PLAN_GOALS),$(or $(MAKECMDGOALS),$(.DEFAULT_GOAL))),)
ifneq ($(DATA),)
ifeq ($(wildcard $(DATA)/.),)
$(error DATA=$(DATA) is not a folder: point DATA= at a MIRACL release (miracl-v1.0-<lang>/, miracl-corpus-v1.0-<lang>/))
endif
endif
ifeq ($(wildcard $(CONFIG)),)
$(error CONFIG=$(CONFIG): no such file; the configs are in configs/ (sample.yaml, miracl-v1.0.yaml, ...))
endif
include $(PLAN)
endif

# A config the stages refuse makes a plan that stops make with the stages' message (and deletes itself, so
# the next make asks again): one error, in the user's terms, without make's own complaints after it. The
# plan also depends on what it read (PLAN_INPUTS: the config's `extends` chain, the data folders), and it
# writes each stage's config stamp to $(STAMP_DIR)/: rewritten only when the keys that stage hashes change.
$(PLAN): $(CONFIG) stages/config.py stages/table.py stages/plan.py | $(VENV_STAMP)
	@mkdir -p $(@D)
	@$(PY) -m stages.plan make-vars $(CONFIG_ARGS) --plan $@ > $@.tmp || { rm -f $@.tmp; exit 2; }
	@mv $@.tmp $@
ifneq ($(PLAN_INPUTS),)
$(PLAN): $(PLAN_INPUTS)
# Stamps removed with the work folder (make clean) are written again, dated as unchanged.
$(STAMP_DIR)/.written:
	$(Q)$(PY) -m stages.plan stamps $(CONFIG_ARGS)
$(STAMP_DIR)/%.yaml: | $(STAMP_DIR)/.written ;
endif

# Each language once, in the order given (the stages read the selection the same way).
uniq = $(if $(1),$(firstword $(1)) $(call uniq,$(filter-out $(firstword $(1)),$(1))))
LANGS := $(strip $(if $(filter all,$(SELECT)),$(ALL_LANGS),$(call uniq,$(subst $(comma),$(space),$(SELECT)))))
SPLIT_WORDS := $(subst $(comma),$(space),$(SPLIT))
ifneq ($(ALL_LANGS),)
ifneq ($(filter-out $(ALL_LANGS),$(LANGS)),)
$(error unknown language(s) in LANG: $(filter-out $(ALL_LANGS),$(LANGS)); $(CONFIG) defines: $(ALL_LANGS))
endif
# Splits any configured language has; SPLIT must name some of them.
ALL_SPLITS := $(sort $(foreach l,$(ALL_LANGS),$(SPLITS_$(l))))
ifneq ($(filter-out $(ALL_SPLITS),$(SPLIT_WORDS)),)
$(error unknown split(s) in SPLIT: $(filter-out $(ALL_SPLITS),$(SPLIT_WORDS)); $(CONFIG) configures: $(ALL_SPLITS))
endif
export PIPELINE_LOG_DIR := $(WORK_DIR)/logs
endif
# What a *-runs target prints of the files it made sure of: nothing, or the list under VERBOSE=1.
list_files = $(if $(VERBOSE),@printf '%s\n' $(1),@:)

# ---------------------------------------------------------------- stages

# One rule per row of the table (stages/plan.py), by its kind: `one` (one process), `language` (one process
# per language), `group` (one process for the selected languages, so a model or numba's kernels load once,
# and one per other language, for the pooled fusion tuning that may need them). A rule's prerequisites are
# the row's input files and its config stamp; its targets, the row's outputs; each stage then keeps the
# outputs whose recorded inputs are unchanged.
# MODELS=<folder>: models trained on another collection (e.g. MODELS=work/miracl-mini/models) rerank and
# retrieve this one. They are inputs then, never rebuilt: training rules lose their prerequisites (`trains`
# keeps them without MODELS), and a missing model stops make with its path.
trains = $(if $(MODELS),,$(1))
# Several hosts pair their training processes by order: every host trains the same steps one at a time.
TRAIN_JOBS = $(if $(MULTI_HOST),1,$(JOBS))
define train_recipe
$(if $(MODELS),@echo "no model at $@: MODELS=$(MODELS) must hold the models trained on another collection (train them there: make train-ce train-bi)" >&2; exit 2,$(Q)$(1))
endef
# $(1) stage, $(2) the languages of one process (none for a stage of kind one).
stage_outputs = $(if $(2),$(foreach l,$(2),$(stage_out_$(1)_$(l))),$(stage_out_$(1)))
stage_inputs = $(sort $(if $(2),$(foreach l,$(2),$(stage_in_$(1)_$(l))),$(stage_in_$(1))))
stage_split_arg = $(strip $(call uniq,$(foreach l,$(2),$(stage_splits_$(1)_$(l)))))
stage_command = $(if $(stage_trains_$(1)),$(TRAIN_PY),$(PY) -m) $(stage_module_$(1)) $(CONFIG_ARGS)$(if $(stage_args_$(1)), $(stage_args_$(1)))$(if $(2), --lang "$(2)")$(if $(call stage_split_arg,$(1),$(2)), --split "$(call stage_split_arg,$(1),$(2))")
define stage_rule
ifneq ($(strip $(call stage_outputs,$(1),$(2))),)
$(call stage_outputs,$(1),$(2)) &: $(if $(stage_trains_$(1)),$(call trains,$(call stage_inputs,$(1),$(2))),$(call stage_inputs,$(1),$(2)))
	$(if $(stage_trains_$(1)),$$(call train_recipe,$(call stage_command,$(1),$(2))),$(Q)$(call stage_command,$(1),$(2)))
endif
endef
$(foreach s,$(STAGES),$(if $(filter one,$(stage_kind_$(s))),$(eval $(call stage_rule,$(s),))))
$(foreach s,$(STAGES),$(if $(filter language,$(stage_kind_$(s))),$(foreach l,$(stage_langs_$(s)),$(eval $(call stage_rule,$(s),$(l))))))
$(foreach s,$(STAGES),$(if $(filter group,$(stage_kind_$(s))),$(eval $(call stage_rule,$(s),$(filter $(stage_langs_$(s)),$(LANGS))))))
$(foreach s,$(STAGES),$(if $(filter group,$(stage_kind_$(s))),$(foreach l,$(filter-out $(LANGS),$(stage_langs_$(s))),$(eval $(call stage_rule,$(s),$(l))))))

# A stage's outputs for the selected languages, and (for run-writing stages) the splits SPLIT names.
selected_splits = $(if $(SPLIT_WORDS),$(filter $(SPLIT_WORDS),$(1)),$(1))
stage_runs = $(foreach l,$(LANGS),$(foreach s,$(call selected_splits,$(stage_splits_$(1)_$(l))),$(filter %.$(s).txt,$(stage_out_$(1)_$(l)))))
# The runs of system $(1) (any stage's) for the selected languages on the splits $(2).
system_runs = $(foreach l,$(LANGS),$(foreach s,$(2),$(filter %.$(s).txt,$(stage_out_$(system_stage_$(1))_$(l)))))

# ---------------------------------------------------------------- BM25

BM25_RUNS := $(call stage_runs,bm25)
RM3_RUNS := $(call stage_runs,bm25-rm3)

bm25: ## BM25 runs for LANG (default: all) and SPLIT (default: every split with topics), languages in parallel
	@$(MAKE) --no-print-directory -j$(JOBS) bm25-runs

bm25-runs: $(BM25_RUNS)
	$(call list_files,$(BM25_RUNS))

bm25-rm3: ## BM25 with RM3 query expansion (same indexes) for LANG and SPLIT
	@$(MAKE) --no-print-directory -j$(JOBS) bm25-rm3-runs

bm25-rm3-runs: $(RM3_RUNS)
	$(call list_files,$(RM3_RUNS))

index: ## only build the BM25 indexes of LANG
	$(Q)$(PY) -m stages.bm25 $(CONFIG_ARGS) --lang "$(LANGS)" --index-only

# ---------------------------------------------------------------- evaluation

EVAL_ON := $(or $(SPLIT),$(EVAL_SPLIT))
EVAL_RUNS := $(call system_runs,bm25,$(EVAL_ON))

eval: ## nDCG@10 and Recall@100 per language (and average) on SPLIT (default: dev): BM25 and every system with runs
	@$(MAKE) --no-print-directory -j$(JOBS) eval-inputs
	$(Q)$(PY) -m stages.evaluate $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

eval-inputs: $(EVAL_RUNS)
	@:

# Every system's runs: what check and report evaluate.
ALL_SYSTEM_RUNS := fused-runs rerank-ce-runs rerank-bi-runs dense-runs

check: check-runs ## build every system's runs, then compare their scores with the expected table in configs/expected/
	$(Q)$(PY) -m stages.check $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

# What check compares: every system's runs of the split, evaluated.
check-runs:
	@$(MAKE) --no-print-directory -j$(JOBS) $(ALL_SYSTEM_RUNS) SPLIT=$(EVAL_ON)
	$(Q)$(PY) -m stages.evaluate $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

check-tolerance: check-runs ## measure check's tolerances for trained systems: train again under SEEDS="14 15 16 17" (slow)
	$(Q)$(PY) -m stages.seed_spread $(CONFIG_ARGS) --seeds "$(or $(SEEDS),14 15 16 17)" --split $(EVAL_ON)

# ---------------------------------------------------------------- cross-encoder

# Base model (the project-built tiny one offline) -> mMARCO step (ce-nmt) -> MIRACL step (ce). Each
# stage skips work whose recorded inputs are unchanged, so a config edit elsewhere retrains nothing.
CE_MODEL := $(stage_out_ce-model)
CE_RUNS := $(call stage_runs,rerank-ce) $(call stage_runs,rerank-ce-nmt)

train-ce: ## train the cross-encoder: mMARCO step (models/ce-nmt), then MIRACL train (models/ce); NPROC=n: torchrun
	@$(MAKE) --no-print-directory -j$(TRAIN_JOBS) $(CE_MODEL)

rerank-ce: ## rerank LANG's BM25 runs with the cross-encoder before (ce-nmt) and after (ce) MIRACL fine-tuning
	@$(MAKE) --no-print-directory -j$(JOBS) rerank-ce-runs

rerank-ce-runs: $(CE_RUNS)
	$(call list_files,$^)

# ---------------------------------------------------------------- bi-encoder and dense retrieval

# Student before training (bi-init) -> cross-lingual distillation from the English teacher (bi-kd)
# -> MIRACL fine-tuning (bi). The teacher's scores are cached under work/<collection>/teacher/. A teacher
# this project trains (teacher.model: trained:<name>) is built first, and so is the query alignment task's
# generator (distillation.query_alignment.generator, when its weight is above 0).
BI_MODELS := $(stage_out_bi-model) $(stage_out_bi-init-model)
BI_RUNS := $(foreach m,$(BI_NAME)-init $(BI_NAME)-kd $(BI_NAME),$(call stage_runs,rerank-$(m)))
# Dense retrieval: each language's whole corpus encoded once (float16 shards under work/<collection>/dense/),
# searched with faiss.
DENSE_RUNS := $(call stage_runs,dense)

train-bi: ## train the bi-encoder: student built (models/bi-init), distilled from the English teacher (models/bi-kd), MIRACL train (models/bi); NPROC=n: torchrun
	@$(MAKE) --no-print-directory -j$(TRAIN_JOBS) $(BI_MODELS)

train-qgen: ## train the query generator (models/qgen), a teacher for configs/recipes/qgen.yaml; NPROC=n: torchrun
	@$(MAKE) --no-print-directory $(stage_out_qgen-model)

teacher-scores: ## only compute (and cache) the English teacher's scores for distillation
	$(Q)$(PY) -m stages.teacher $(CONFIG_ARGS)

rerank-bi: ## rerank LANG's BM25 runs with the student before training (bi-init), after distillation (bi-kd), after fine-tuning (bi)
	@$(MAKE) --no-print-directory -j$(JOBS) rerank-bi-runs

rerank-bi-runs: $(BI_RUNS)
	$(call list_files,$^)

dense: ## dense retrieval over LANG's whole corpus with the trained student and faiss
	@$(MAKE) --no-print-directory -j$(JOBS) dense-runs

dense-runs: $(DENSE_RUNS)
	$(call list_files,$^)

# ---------------------------------------------------------------- fusion and submissions

# Tuning and fusion each run in one process for all selected languages: ranx's numba kernels compile anew
# in every process. A language with too few judged dev queries (FUSION_POOLED_LANGS, from the config)
# takes the parameters tuned over all languages (params.all.yaml, tuned first).
POOLED_PARAMS := $(stage_out_tune-pooled)
TUNED_PARAMS := $(foreach l,$(LANGS),$(stage_out_tune_$(l)))
FUSED_RUNS := $(call stage_runs,fuse)

tune-fusion: ## re-tune the fusion parameters of LANG on dev (per language; pooled where dev is too small)
	@rm -f $(TUNED_PARAMS) $(if $(filter $(FUSION_POOLED_LANGS),$(LANGS)),$(POOLED_PARAMS))
	@$(MAKE) --no-print-directory -j$(JOBS) tune-fusion-files

tune-fusion-files: $(TUNED_PARAMS)
	$(call list_files,$^)

fuse: ## fused runs of LANG for SPLIT (default: every split but train), tuning first where needed
	@$(MAKE) --no-print-directory -j$(JOBS) fused-runs

fused-runs: $(FUSED_RUNS)
	$(call list_files,$^)

# The bundle's zip is a file target. Its inputs: the test runs of every system it may submit (with
# submission.system auto: the fused run and each of its inputs, chosen by their dev estimates, so their dev
# runs and the tuned parameters too). A second `make submission` with nothing changed runs nothing.
TEST_SPLITS := $(filter test-%,$(ALL_SPLITS))
SUBMIT_SYSTEMS := $(if $(filter auto,$(SUBMISSION_SYSTEM)),$(FUSION_NAME) $(FUSION_SYSTEMS),$(SUBMISSION_SYSTEM))
SUBMISSION_BUNDLE := $(WORK_DIR)/submissions/$(SUBMISSION_TAG).$(if $(filter-out $(LANGS),$(ALL_LANGS)),$(subst $(space),-,$(strip $(LANGS))),all)
SUBMISSION_ZIP := $(SUBMISSION_BUNDLE).zip
SUBMISSION_INPUTS := $(foreach sys,$(SUBMIT_SYSTEMS),$(call system_runs,$(sys),$(TEST_SPLITS))) \
	$(if $(filter auto,$(SUBMISSION_SYSTEM)),$(TUNED_PARAMS) $(foreach l,$(LANGS),$(stage_in_tune_$(l))))

$(SUBMISSION_ZIP): $(SUBMISSION_INPUTS) $(CONFIG_CHAIN)
	$(Q)$(PY) -m submissions.package $(CONFIG_ARGS) --lang "$(LANGS)"

submission: ## validated leaderboard bundle and zip of LANG's test runs (runs every missing stage first)
	@test -n "$(TEST_SPLITS)" || { echo "$(CONFIG) configures no test split (test-a, test-b): nothing to submit" >&2; exit 2; }
	@if $(MAKE) --no-print-directory -q $(SUBMISSION_ZIP) SPLIT="$(TEST_SPLITS)" 2>/dev/null; then \
		echo "submission: nothing changed since the bundle was made"; \
		printf 'submission bundle: %s/\nready to upload:   %s\n' "$(SUBMISSION_BUNDLE)" "$(SUBMISSION_ZIP)"; \
	else \
		$(MAKE) --no-print-directory -j$(JOBS) $(SUBMISSION_ZIP) SPLIT="$(TEST_SPLITS)"; \
	fi

# make validate checks its FILE before anything runs: one message, in make's terms.
ifneq ($(filter validate,$(MAKECMDGOALS)),)
ifeq ($(strip $(FILE)),)
$(error make validate needs FILE=<run file>, e.g. make validate FILE=run.miracl.<tag>.sw.test-a.txt (LANG=sw SPLIT=test-a when the name does not say))
endif
ifeq ($(wildcard $(FILE)),)
$(error make validate FILE=$(FILE): no such file)
endif
endif

validate: $(VENV_STAMP) ## check a run file for the leaderboard: make validate FILE=path [LANG=xx SPLIT=test-a]
	$(Q)$(PY) -m submissions.validate $(CONFIG_ARGS) $(if $(filter-out all,$(SELECT)),--lang $(SELECT)) $(if $(SPLIT),--split $(SPLIT)) $(FILE)

report: ## dev tables (nDCG@10, Recall@100) per language and system, bar chart, tuned weights
	@$(MAKE) --no-print-directory -j$(JOBS) $(ALL_SYSTEM_RUNS) SPLIT=$(EVAL_ON)
	$(Q)$(PY) -m ensemble.report $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

compare: ## significance of the fused run against each input run, per language (ranx compare)
	@$(MAKE) --no-print-directory -j$(JOBS) fused-runs SPLIT=$(EVAL_ON)
	$(Q)$(PY) -m ensemble.compare $(CONFIG_ARGS) --lang "$(LANGS)" --split $(EVAL_ON)

# One training step again, in a scratch folder, scored on dev every EVERY steps (stages/learning_curve.py).
# The step's own model is built first, and with it everything the step reads.
learning-curve: ## a training step's dev nDCG@10 curve: make learning-curve MODEL=bi-kd [EVERY=4] (ce-nmt, ce, bi-kd, bi)
	@test -n "$(MODEL)" || { echo "usage: make learning-curve MODEL=<ce-nmt, ce, $(BI_NAME)-kd or $(BI_NAME)> [EVERY=4]" >&2; exit 2; }
	@$(MAKE) --no-print-directory -j$(JOBS) $(WORK_DIR)/models/$(MODEL)/training.json $(foreach l,$(ALL_LANGS),$(filter %.$(EVAL_SPLIT).txt,$(stage_out_bm25_$(l))))
	$(Q)$(PY) -m stages.learning_curve $(CONFIG_ARGS) --model $(MODEL) --every $(or $(EVERY),4)

# ---------------------------------------------------------------- diagnostics and benchmarks

doctor: $(VENV_STAMP) ## Java in use, library versions, each language's analyzer on a sample sentence
	$(Q)$(PY) -m stages.doctor $(CONFIG_ARGS) --lang "$(SELECT)"

bench-bm25: ## indexing and retrieval throughput, ours beside Pyserini's command line (synthetic 200k passages)
	$(Q)$(PY) -m stages.benchmarks.bm25 $(CONFIG_ARGS)

DEV_BM25_RUNS = $(foreach l,$(ALL_LANGS),$(filter %.$(EVAL_SPLIT).txt,$(stage_out_bm25_$(l))))

bench-encode: ## the student's passages/s with every inference backend beside sentence-transformers fp32, dev nDCG@10 each; faiss beside numpy
	@$(MAKE) --no-print-directory -s -j$(JOBS) $(WORK_DIR)/models/$(BI_NAME)/training.json $(DEV_BM25_RUNS)
	$(Q)$(PY) -m stages.benchmarks.encode $(CONFIG_ARGS)

bench-rerank: ## the cross-encoder's pairs/s with every inference backend beside sentence-transformers fp32, dev nDCG@10 each
	@$(MAKE) --no-print-directory -s -j$(JOBS) $(WORK_DIR)/models/ce/training.json $(DEV_BM25_RUNS)
	$(Q)$(PY) -m stages.benchmarks.rerank $(CONFIG_ARGS)

bench-teacher: $(VENV_STAMP) ## the distillation teacher's (English query, passage) pairs/s on this machine, for make plan
	$(Q)$(PY) -m stages.benchmarks.teacher $(CONFIG_ARGS)

bench-index: $(VENV_STAMP) ## faiss indexes side by side (flat, IVF-Flat, IVF-PQ by default) on 1M clustered synthetic vectors: recall@100, queries/s, memory per million
	$(Q)$(PY) -m stages.benchmarks.index $(CONFIG_ARGS)

plan: $(VENV_STAMP) ## the full run's time and disk per stage for 1, 8 and 32 workers, from DATA's counts and the rates the bench-* targets measured here
	$(Q)$(PY) -m stages.cost_plan $(CONFIG_ARGS)

plan-check: $(VENV_STAMP) ## BM25 and exact vector search measured at 5k, 100k, 300k and 1M synthetic passages: 1M against its projection from the smaller ones
	$(Q)$(PY) -m stages.cost_plan $(CONFIG_ARGS) --check

gpu-check: $(VENV_STAMP) ## GPU hosts only: bf16 rerank/encode/training (and torchrun), faiss-gpu vs cpu -> work/gpu-check/
	$(Q)$(PY) -m stages.benchmarks.gpu_check $(CONFIG_ARGS)

# ---------------------------------------------------------------- housekeeping

clean: ## remove what was generated for this collection (indexes, runs, reports)
	rm -rf $(WORK_DIR)

clean-all: ## remove work/ and .venv/
	rm -rf work $(VENV)

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /  make \1\t/' | expand -t 24

.PHONY: setup test lint format bm25 bm25-runs bm25-rm3 bm25-rm3-runs index eval eval-inputs check check-runs check-tolerance doctor bench-bm25 bench-rerank bench-teacher bench-index plan plan-check gpu-check clean clean-all help \
	tune-fusion tune-fusion-files fuse fused-runs submission validate report compare \
	train-ce rerank-ce rerank-ce-runs train-bi train-qgen teacher-scores rerank-bi rerank-bi-runs dense dense-runs bench-encode
