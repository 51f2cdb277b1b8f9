# The pipeline's map. Targets are files under work/<collection>/, so `make` reruns only what changed.
#
#   make setup                      virtual environment with pinned versions (.venv)
#   make test                       the test suite
#   make bm25 LANG=all              BM25 runs for every language and split with topics
#   make eval                       nDCG@10 / Recall@100 table on dev for every system with runs
#
# Inputs: CONFIG=configs/<x>.yaml, DATA=<MIRACL release root>, LANG=all|"ja yo"|ja,yo, SPLIT=dev, VERBOSE=1.

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

test: lint ## ruff, then the test suite (no network, no GPU)
	$(PY) -m pytest

lint: $(VENV_STAMP) ## ruff: lint rules and formatting (settings in pyproject.toml); make format rewrites
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

format: $(VENV_STAMP) ## rewrite the code in ruff's format, and apply ruff's safe fixes
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# ---------------------------------------------------------------- what the config says

# Languages, splits and the work folder come from the config (and DATA), via a generated include.
PLAN_DIR ?= work/.make
PLAN := $(PLAN_DIR)/$(subst /,_,$(CONFIG))$(if $(DATA),@$(subst /,_,$(abspath $(DATA))))$(if $(MODELS),+models).mk
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
# the next make asks again): one error, in the user's terms, without make's own complaints after it.
$(PLAN): $(CONFIG) $(wildcard configs/*.yaml configs/recipes/*.yaml) stages/config.py | $(VENV_STAMP)
	@mkdir -p $(@D)
	@$(PY) -m stages.config make-vars $(CONFIG_ARGS) --plan $@ > $@.tmp || { rm -f $@.tmp; exit 2; }
	@mv $@.tmp $@

# Each language once, in the order given (the stages read the selection the same way).
uniq = $(if $(1),$(firstword $(1)) $(call uniq,$(filter-out $(firstword $(1)),$(1))))
LANGS := $(strip $(if $(filter all,$(SELECT)),$(ALL_LANGS),$(call uniq,$(subst $(comma),$(space),$(SELECT)))))
ifneq ($(ALL_LANGS),)
ifneq ($(filter-out $(ALL_LANGS),$(LANGS)),)
$(error unknown language(s) in LANG: $(filter-out $(ALL_LANGS),$(LANGS)); $(CONFIG) defines: $(ALL_LANGS))
endif
# Splits any configured language has; SPLIT must name some of them.
ALL_SPLITS := $(sort $(foreach l,$(ALL_LANGS),$(SPLITS_$(l))))
ifneq ($(filter-out $(ALL_SPLITS),$(subst $(comma),$(space),$(SPLIT))),)
$(error unknown split(s) in SPLIT: $(filter-out $(ALL_SPLITS),$(subst $(comma),$(space),$(SPLIT))); $(CONFIG) configures: $(ALL_SPLITS))
endif
export PIPELINE_LOG_DIR := $(WORK_DIR)/logs
endif
# What a *-runs target prints of the files it made sure of: nothing, or the list under VERBOSE=1.
list_files = $(if $(VERBOSE),@printf '%s\n' $(1),@:)

RUNS := $(WORK_DIR)/runs
topics_file = $(DATA_ROOT)/miracl-v1.0-$(1)/topics/topics.miracl-v1.0-$(1)-$(2).tsv
corpus_files = $(wildcard $(DATA_ROOT)/miracl-corpus-v1.0-$(1)/*.jsonl $(DATA_ROOT)/miracl-corpus-v1.0-$(1)/*.jsonl.gz)
# Splits of language $(1) with topics; run_splits keeps those named in SPLIT (all when SPLIT is empty).
topic_splits = $(foreach s,$(SPLITS_$(1)),$(if $(wildcard $(call topics_file,$(1),$(s))),$(s)))
run_splits = $(if $(SPLIT),$(filter $(subst $(comma),$(space),$(SPLIT)),$(call topic_splits,$(1))),$(call topic_splits,$(1)))

# ---------------------------------------------------------------- BM25

# One process per language indexes it (if its corpus changed) and writes the runs of all its splits
# with topics (searching is cheap next to indexing); SPLIT only chooses which runs are asked for.
define bm25_rules
bm25_all_$(1) := $(foreach s,$(call topic_splits,$(1)),$(RUNS)/bm25/run.bm25.$(1).$(s).txt)
ifneq ($$(bm25_all_$(1)),)
$$(bm25_all_$(1)) &: $(call corpus_files,$(1)) $(foreach s,$(call topic_splits,$(1)),$(call topics_file,$(1),$(s))) $(CONFIG)
	$(Q)$(PY) -m stages.bm25 $(CONFIG_ARGS) --lang $(1) --split "$(call topic_splits,$(1))"
endif
endef
$(foreach l,$(ALL_LANGS),$(eval $(call bm25_rules,$(l))))

# RM3 pseudo-relevance feedback over the same index: a second first-stage run to fuse.
define rm3_rules
rm3_all_$(1) := $(foreach s,$(call topic_splits,$(1)),$(RUNS)/bm25-rm3/run.bm25-rm3.$(1).$(s).txt)
ifneq ($$(rm3_all_$(1)),)
$$(rm3_all_$(1)) &: $$(bm25_all_$(1))
	$(Q)$(PY) -m stages.bm25 $(CONFIG_ARGS) --lang $(1) --split "$(call topic_splits,$(1))" --systems bm25-rm3
endif
endef
$(foreach l,$(ALL_LANGS),$(eval $(call rm3_rules,$(l))))

BM25_RUNS := $(foreach l,$(LANGS),$(foreach s,$(call run_splits,$(l)),$(RUNS)/bm25/run.bm25.$(l).$(s).txt))
RM3_RUNS := $(foreach l,$(LANGS),$(foreach s,$(call run_splits,$(l)),$(RUNS)/bm25-rm3/run.bm25-rm3.$(l).$(s).txt))

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
EVAL_RUNS := $(foreach l,$(LANGS),$(if $(filter $(EVAL_ON),$(SPLITS_$(l))),$(RUNS)/bm25/run.bm25.$(l).$(EVAL_ON).txt))

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
# MODELS=<folder>: models trained on another collection (e.g. MODELS=work/miracl-mini/models) rerank and
# retrieve this one. They are inputs then, never rebuilt: their rules lose their prerequisites (`trains`
# keeps them without MODELS), and a missing one stops make with its path.
MODELS_DIR := $(if $(MODELS),$(abspath $(MODELS)),$(WORK_DIR)/models)
trains = $(if $(MODELS),,$(1))
define train_recipe
$(if $(MODELS),@echo "no model at $@: MODELS=$(MODELS) must hold the models trained on another collection (train them there: make train-ce train-bi)" >&2; exit 2,$(Q)$(1))
endef
TINY_MODEL := $(WORK_DIR)/models/tiny-xlmr/config.json
CE_NMT_MODEL := $(MODELS_DIR)/ce-nmt/training.json
CE_MODEL := $(MODELS_DIR)/ce/training.json
CE_NMT_DATA := $(wildcard $(CE_NMT_ROOT)/triples.train.ids.small.tsv $(CE_NMT_ROOT)/*/collections/*.tsv $(CE_NMT_ROOT)/*/queries/train/*.tsv)
CE_TRAIN_RUNS := $(foreach l,$(CE_TRAIN_LANGS),$(if $(filter $(CE_TRAIN_SPLIT),$(call topic_splits,$(l))),$(RUNS)/bm25/run.bm25.$(l).$(CE_TRAIN_SPLIT).txt))
# Reranked splits: all with topics but the one the model was trained on.
rerank_splits = $(filter-out $(CE_TRAIN_SPLIT),$(call topic_splits,$(1)))

$(TINY_MODEL): $(CONFIG)
	$(Q)$(PY) -m stages.tiny_model $(CONFIG_ARGS)

$(CE_NMT_MODEL): $(call trains,$(if $(filter tiny,$(CE_BASE)),$(TINY_MODEL)) $(CE_NMT_DATA) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_ce $(CONFIG_ARGS) --step nmt)

$(CE_MODEL): $(call trains,$(CE_NMT_MODEL) $(CE_TRAIN_RUNS) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_ce $(CONFIG_ARGS) --step miracl)

# One process per model reranks every selected language (torch and the model load once); languages
# outside the selection get a rule of their own, for the pooled fusion tuning that may need them.
RERANK_SPLIT_ARG := $(filter-out $(CE_TRAIN_SPLIT),train dev test-a test-b)
rerank_targets = $(foreach l,$(2),$(foreach s,$(call rerank_splits,$(l)),$(RUNS)/$(1)/run.$(1).$(l).$(s).txt))
# $(1) system (= model folder), $(2) languages, $(3) model file, $(4) stage module.
define rerank_rules
ifneq ($(call rerank_targets,$(1),$(2)),)
$(call rerank_targets,$(1),$(2)) &: $(foreach l,$(2),$$(bm25_all_$(l))) $(3)
	$(Q)$(PY) -m $(4) $(CONFIG_ARGS) --model $(1) --lang "$(2)" --split "$(RERANK_SPLIT_ARG)"
endif
endef
define reranker
$(eval $(call rerank_rules,$(1),$(LANGS),$(2),$(3)))
$(foreach l,$(filter-out $(LANGS),$(ALL_LANGS)),$(eval $(call rerank_rules,$(1),$(l),$(2),$(3))))
endef
$(eval $(call reranker,ce,$(CE_MODEL),stages.rerank_ce))
$(eval $(call reranker,ce-nmt,$(CE_NMT_MODEL),stages.rerank_ce))

CE_RUNS := $(foreach l,$(LANGS),$(foreach s,$(filter $(call rerank_splits,$(l)),$(call run_splits,$(l))),$(RUNS)/ce/run.ce.$(l).$(s).txt $(RUNS)/ce-nmt/run.ce-nmt.$(l).$(s).txt))

train-ce: ## train the cross-encoder: mMARCO step (models/ce-nmt), then MIRACL train (models/ce)
	@$(MAKE) --no-print-directory -j$(JOBS) $(CE_MODEL)

rerank-ce: ## rerank LANG's BM25 runs with the cross-encoder before (ce-nmt) and after (ce) MIRACL fine-tuning
	@$(MAKE) --no-print-directory -j$(JOBS) rerank-ce-runs

rerank-ce-runs: $(CE_RUNS)
	$(call list_files,$^)

# ---------------------------------------------------------------- bi-encoder and dense retrieval

# Student before training (bi-init) -> cross-lingual distillation from the English teacher (bi-kd)
# -> MIRACL fine-tuning (bi). The teacher's scores are cached under work/<collection>/teacher/.
BI_INIT_MODEL := $(MODELS_DIR)/$(BI_NAME)-init/training.json
BI_KD_MODEL := $(MODELS_DIR)/$(BI_NAME)-kd/training.json
BI_MODEL := $(MODELS_DIR)/$(BI_NAME)/training.json
BI_KD_RUNS := $(foreach l,$(ALL_LANGS),$(if $(filter $(BI_KD_SPLIT),$(call topic_splits,$(l))),$(RUNS)/bm25/run.bm25.$(l).$(BI_KD_SPLIT).txt))
BI_KD_TOPICS := $(wildcard $(DATA_ROOT)/miracl-v1.0-*/topics/topics-en.miracl-v1.0-*-$(BI_KD_SPLIT).tsv)
BI_TRAIN_RUNS := $(foreach l,$(BI_TRAIN_LANGS),$(if $(filter $(BI_TRAIN_SPLIT),$(call topic_splits,$(l))),$(RUNS)/bm25/run.bm25.$(l).$(BI_TRAIN_SPLIT).txt))

$(BI_INIT_MODEL): $(call trains,$(if $(filter tiny,$(BI_BASE)),$(TINY_MODEL)) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_bi $(CONFIG_ARGS) --step init)

# A teacher this project trains (teacher.model: trained:<name>) is built first, and so is the query
# alignment task's generator (distillation.query_alignment.generator, when its weight is above 0).
trained_model = $(if $(filter trained:%,$(1)),$(MODELS_DIR)/$(patsubst trained:%,%,$(1))/training.json)
BI_TEACHER_MODEL := $(call trained_model,$(BI_TEACHER))
BI_ALIGN_GENERATOR_MODEL := $(call trained_model,$(BI_ALIGN_GENERATOR))
QGEN_MODEL := $(MODELS_DIR)/qgen/training.json

$(QGEN_MODEL): $(call trains,$(if $(filter tiny,$(QGEN_BASE)),$(TINY_MODEL)) $(CE_TRAIN_RUNS) $(CE_NMT_DATA) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_qgen $(CONFIG_ARGS))

$(BI_KD_MODEL): $(call trains,$(BI_INIT_MODEL) $(BI_TEACHER_MODEL) $(BI_ALIGN_GENERATOR_MODEL) $(BI_PARALLEL_FILES) $(BI_KD_RUNS) $(BI_KD_TOPICS) $(CE_NMT_DATA) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_bi $(CONFIG_ARGS) --step kd)

$(BI_MODEL): $(call trains,$(BI_KD_MODEL) $(BI_TRAIN_RUNS) $(CONFIG))
	$(call train_recipe,$(PY) -m stages.train_bi $(CONFIG_ARGS) --step miracl)

$(eval $(call reranker,$(BI_NAME),$(BI_MODEL),stages.rerank_bi))
$(eval $(call reranker,$(BI_NAME)-kd,$(BI_KD_MODEL),stages.rerank_bi))
$(eval $(call reranker,$(BI_NAME)-init,$(BI_INIT_MODEL),stages.rerank_bi))

BI_RUNS := $(foreach l,$(LANGS),$(foreach s,$(filter $(call rerank_splits,$(l)),$(call run_splits,$(l))),$(foreach m,$(BI_NAME)-init $(BI_NAME)-kd $(BI_NAME),$(RUNS)/$(m)/run.$(m).$(l).$(s).txt)))

# Dense retrieval: each language's whole corpus encoded once (float16 shards under work/<collection>/dense/),
# searched with faiss; one process for the selected languages, one rule per other language.
dense_targets = $(foreach l,$(1),$(foreach s,$(call rerank_splits,$(l)),$(RUNS)/$(DENSE_NAME)/run.$(DENSE_NAME).$(l).$(s).txt))
define dense_rules
ifneq ($(call dense_targets,$(1)),)
$(call dense_targets,$(1)) &: $(MODELS_DIR)/$(DENSE_MODEL)/training.json $(foreach l,$(1),$(call corpus_files,$(l)) $(foreach s,$(call rerank_splits,$(l)),$(call topics_file,$(l),$(s)))) $(CONFIG)
	$(Q)$(PY) -m stages.dense $(CONFIG_ARGS) --lang "$(1)" --split "$(RERANK_SPLIT_ARG)"
endif
endef
$(eval $(call dense_rules,$(LANGS)))
$(foreach l,$(filter-out $(LANGS),$(ALL_LANGS)),$(eval $(call dense_rules,$(l))))
DENSE_RUNS := $(foreach l,$(LANGS),$(foreach s,$(filter $(call rerank_splits,$(l)),$(call run_splits,$(l))),$(RUNS)/$(DENSE_NAME)/run.$(DENSE_NAME).$(l).$(s).txt))

train-bi: ## train the bi-encoder: student built (models/bi-init), distilled from the English teacher (models/bi-kd), MIRACL train (models/bi)
	@$(MAKE) --no-print-directory -j$(JOBS) $(BI_MODEL) $(BI_INIT_MODEL)

train-qgen: ## train the query generator (models/qgen), a teacher for configs/recipes/qgen.yaml
	@$(MAKE) --no-print-directory $(QGEN_MODEL)

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

# Tuning and fusion each run in one process for all selected languages: ranx's numba kernels
# compile anew in every process (~20 s), which would dwarf the work on the sample. Each skips
# languages whose inputs are unchanged. A language with too few judged dev queries
# (FUSION_POOLED_LANGS, from the config) takes the parameters tuned over all languages.
FUSION_DIR := $(WORK_DIR)/fusion/$(FUSION_NAME)
system_run = $(RUNS)/$(1)/run.$(1).$(2).$(3).txt
fusion_inputs = $(foreach sys,$(FUSION_SYSTEMS),$(call system_run,$(sys),$(1),$(2)))
has_dev = $(filter $(EVAL_SPLIT),$(SPLITS_$(1)))
POOLED_PARAMS := $(FUSION_DIR)/params.all.yaml
TUNED_PARAMS := $(foreach l,$(LANGS),$(FUSION_DIR)/params.$(l).yaml)
TUNE_INPUTS := $(foreach l,$(LANGS),$(if $(call has_dev,$(l)),$(call fusion_inputs,$(l),$(EVAL_SPLIT)))) \
	$(if $(filter $(FUSION_POOLED_LANGS),$(LANGS)),$(POOLED_PARAMS))
# Fused splits: those asked for, except the rerankers' training split.
fuse_splits = $(filter-out $(CE_TRAIN_SPLIT),$(call run_splits,$(1)))
FUSED_RUNS := $(foreach l,$(LANGS),$(foreach s,$(call fuse_splits,$(l)),$(call system_run,$(FUSION_NAME),$(l),$(s))))
FUSE_INPUTS := $(foreach l,$(LANGS),$(foreach s,$(call fuse_splits,$(l)),$(call fusion_inputs,$(l),$(s))))

$(POOLED_PARAMS): $(foreach l,$(ALL_LANGS),$(if $(call has_dev,$(l)),$(call fusion_inputs,$(l),$(EVAL_SPLIT)))) $(CONFIG)
	$(Q)$(PY) -m ensemble.tune $(CONFIG_ARGS) --pooled

$(TUNED_PARAMS) &: $(TUNE_INPUTS) $(CONFIG)
	$(Q)$(PY) -m ensemble.tune $(CONFIG_ARGS) --lang "$(LANGS)"

ifneq ($(FUSED_RUNS),)
$(FUSED_RUNS) &: $(FUSE_INPUTS) $(TUNED_PARAMS)
	$(Q)$(PY) -m ensemble.fusion $(CONFIG_ARGS) --lang "$(LANGS)" --split "$(RERANK_SPLIT_ARG)"
endif

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
test_splits = $(filter test-%,$(call topic_splits,$(1)))
SUBMIT_SYSTEMS := $(if $(filter auto,$(SUBMISSION_SYSTEM)),$(FUSION_NAME) $(FUSION_SYSTEMS),$(SUBMISSION_SYSTEM))
SUBMISSION_BUNDLE := $(WORK_DIR)/submissions/$(SUBMISSION_TAG).$(if $(filter-out $(LANGS),$(ALL_LANGS)),$(subst $(space),-,$(strip $(LANGS))),all)
SUBMISSION_ZIP := $(SUBMISSION_BUNDLE).zip
SUBMISSION_INPUTS := $(foreach l,$(LANGS),$(foreach sys,$(SUBMIT_SYSTEMS),$(foreach s,$(call test_splits,$(l)),$(call system_run,$(sys),$(l),$(s))))) \
	$(if $(filter auto,$(SUBMISSION_SYSTEM)),$(TUNED_PARAMS) $(TUNE_INPUTS))

$(SUBMISSION_ZIP): $(SUBMISSION_INPUTS) $(CONFIG)
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
	@$(MAKE) --no-print-directory -j$(JOBS) $(WORK_DIR)/models/$(MODEL)/training.json $(foreach l,$(ALL_LANGS),$(if $(call has_dev,$(l)),$(RUNS)/bm25/run.bm25.$(l).$(EVAL_SPLIT).txt))
	$(Q)$(PY) -m stages.learning_curve $(CONFIG_ARGS) --model $(MODEL) --every $(or $(EVERY),4)

# ---------------------------------------------------------------- diagnostics and benchmarks

doctor: $(VENV_STAMP) ## Java in use, library versions, each language's analyzer on a sample sentence
	$(Q)$(PY) -m stages.doctor $(CONFIG_ARGS) --lang "$(SELECT)"

bench-bm25: ## indexing and retrieval throughput, ours beside Pyserini's command line (synthetic 200k passages)
	$(Q)$(PY) -m stages.benchmarks.bm25 $(CONFIG_ARGS)

bench-encode: ## bi-encoder passages/s (ours beside a plain loop) and faiss queries/s beside brute-force numpy
	$(Q)$(PY) -m stages.benchmarks.encode $(CONFIG_ARGS)

bench-rerank: ## cross-encoder pairs/s, ours beside CrossEncoder.predict, with FLOPs per pair and the matmul peak
	$(Q)$(PY) -m stages.benchmarks.rerank $(CONFIG_ARGS)

# ---------------------------------------------------------------- housekeeping

clean: ## remove what was generated for this collection (indexes, runs, reports)
	rm -rf $(WORK_DIR)

clean-all: ## remove work/ and .venv/
	rm -rf work $(VENV)

help: ## this list
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /  make \1\t/' | expand -t 24

.PHONY: setup test lint format bm25 bm25-runs bm25-rm3 bm25-rm3-runs index eval eval-inputs check check-runs check-tolerance doctor bench-bm25 bench-rerank clean clean-all help \
	tune-fusion tune-fusion-files fuse fused-runs submission validate report compare \
	train-ce rerank-ce rerank-ce-runs train-bi train-qgen teacher-scores rerank-bi rerank-bi-runs dense dense-runs bench-encode
