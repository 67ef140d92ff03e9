# Two commands do all set-up on a fresh machine:
#   make demo   -> creates .venv if missing, installs lookright, runs `lookright demo`
#   make test   -> same set-up, then runs the test suite
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.lookright-installed

.PHONY: demo test install reproduce reproduce-suite reproduce-decoy-cdep reproduce-grid reproduce-rl reproduce-rl-cue reproduce-vlm evaluate bench bench-backbones bench-quantus subset clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lookright demo

test: $(STAMP)
	$(PY) -m pytest

# Long reproduction of the README tables (not run in CI). Needs full MNIST:
#   LOOKRIGHT_DATA=/path/to/data make reproduce                      (full recipe, 60,000 digits)
#   LOOKRIGHT_DATA=/path/to/data make reproduce OVERRIDES="data.max_train=10000" OUT=runs/reduced
SEEDS ?= 5
JOBS ?= 2
OUT ?= runs/reproduce
OVERRIDES ?=
# every ColorMNIST / DecoyMNIST config but those that need a CLIP first (-kl-vlm, -kl-vlm-weclip: a pretrained small
# CLIP; -kl-vlm-vitb16: a downloaded ViT-B/16; docs/vlm-teachers.md)
REPRODUCE_CONFIGS := $(filter-out %-kl-vlm.yaml %-kl-vlm-weclip.yaml %-kl-vlm-vitb16.yaml,$(sort $(wildcard configs/colormnist-*.yaml configs/decoymnist-*.yaml)))
reproduce: $(STAMP)
	for c in $(REPRODUCE_CONFIGS); do \
	  $(VENV)/bin/lookright sweep $$c --seeds $(SEEDS) --jobs $(JOBS) out_dir=$(OUT) $(OVERRIDES) || exit 1; done
	$(VENV)/bin/lookright summarize $(OUT) --out $(OUT)/results.md

# Learning to Look's grid: lambda 100..300 x E_attn 5..25 (121 settings) x SEEDS, trained as ensembles of
# 5 same-seed settings, then the heat maps of shifted-test and validation accuracy (docs/speed.md):
#   LOOKRIGHT_DATA=/path/to/data make reproduce-grid OUT=runs/grid [OVERRIDES="data.max_train=10000"]
LAMBDAS ?= 100,120,140,160,180,200,220,240,260,280,300
ATTN_EPOCHS ?= 5,7,9,11,13,15,17,19,21,23,25
reproduce-grid: $(STAMP)
	$(VENV)/bin/lookright sweep configs/colormnist-kl.yaml --seeds $(SEEDS) --jobs $(JOBS) --ensemble 5 \
	  --grid loss.lambda0=$(LAMBDAS) --grid train.attn_epochs=$(ATTN_EPOCHS) out_dir=$(OUT) $(OVERRIDES)
	$(VENV)/bin/lookright summarize $(OUT) --heatmap loss.lambda0,train.attn_epochs --out $(OUT)/results.md

# The shortcut suite (docs/shortcut-removal.md): every method on every suite benchmark, 5 seeds,
# then the table and the selection study (about 40 minutes on 2 cores):
#   LOOKRIGHT_DATA=/path/to/data make reproduce-suite
SUITE_METHODS ?= vanilla counterfactual camal rrr rrr-class kl eg
reproduce-suite: $(STAMP)
	for m in $(SUITE_METHODS); do for c in configs/suite/*-$$m.yaml; do \
	  $(VENV)/bin/lookright sweep $$c --seeds $(SEEDS) --jobs $(JOBS) || exit 1; done; done
	$(VENV)/bin/lookright summarize runs/suite --paired -vanilla --out runs/suite/results.md
	$(VENV)/bin/lookright selection-study runs/suite --out runs/suite/selection.md

# Both DecoyMNIST variants under CDEP's own recipe (raw pixels, Adam, <= 5 epochs, early stopping), 5 seeds:
reproduce-decoy-cdep: $(STAMP)
	for c in configs/decoymnist-cdep-recipe-*.yaml configs/decoymnist-rrr-recipe-*.yaml; do \
	  $(VENV)/bin/lookright sweep $$c --seeds $(SEEDS) --jobs $(JOBS) || exit 1; done
	$(VENV)/bin/lookright summarize runs/recipe --paired -vanilla --out runs/recipe/results.md

# Agents where the cue decides the outcome (docs/results.md): trap-dot CueGrid and the moving cue, PPO
# vanilla / counterfactual term / CAMAL; on trap-dot also PPO + CAMAL + the term and A2C vanilla / term;
# one table per environment and one for A2C (about 75 minutes on 2 cores):
reproduce-rl-cue: $(STAMP)
	for e in dot moving; do for m in vanilla counterfactual camal; do \
	  $(VENV)/bin/lookright rl train configs/rl/cuegrid-$$e-$$m.yaml --seeds $(SEEDS) --jobs $(JOBS) out_dir=runs/rl-cue/$$e || exit 1; done; done
	for m in camal-counterfactual a2c-vanilla a2c-counterfactual; do \
	  $(VENV)/bin/lookright rl train configs/rl/cuegrid-dot-$$m.yaml --seeds $(SEEDS) --jobs $(JOBS) out_dir=runs/rl-cue/dot || exit 1; done
	for e in dot moving; do \
	  $(VENV)/bin/lookright rl summarize runs/rl-cue/$$e --reference cuegrid-$$e-vanilla --out runs/rl-cue/$$e/results.md || exit 1; done
	$(VENV)/bin/lookright rl summarize runs/rl-cue/dot --reference cuegrid-dot-a2c-vanilla --out runs/rl-cue/dot/a2c.md

reproduce-rl: $(STAMP)
	for m in vanilla camal kl; do \
	  $(VENV)/bin/lookright rl train configs/rl/cuegrid-$$m.yaml --seeds $(SEEDS) --jobs $(JOBS) out_dir=runs/rl || exit 1; done
	$(VENV)/bin/lookright rl summarize runs/rl --out runs/rl/results.md

# Every metric for every run under OUT, then one comparison report per benchmark:
#   LOOKRIGHT_DATA=/path/to/data make evaluate OUT=runs/reduced      -> report/<benchmark>/index.html
evaluate: $(STAMP)
	$(VENV)/bin/lookright eval $$(dirname $$(find $(OUT) -name config.yaml | sort))
	for b in colormnist decoymnist-cdep decoymnist-rrr; do \
	  $(VENV)/bin/lookright compare $$(ls -d $(OUT)/$$b-vanilla $(OUT)/$$b-rrr $(OUT)/$$b-kl $(OUT)/$$b-camal 2>/dev/null) \
	    --out report/$$b || exit 1; done

bench: $(STAMP)
	$(PY) benchmarks/step_cost.py --rounds 11

# ResNet-50 at 224 px: CAM / Grad-CAM alignment step over a CE step, and decode throughput (docs/speed.md)
bench-backbones: $(STAMP)
	$(PY) benchmarks/backbone_step_cost.py --rounds 5

bench-quantus: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/quantus_compare.py

subset: $(STAMP)
	$(PY) scripts/build_mnist_subset.py

clean:
	rm -rf $(VENV) runs build *.egg-info

# Visual reliability of the self-pretrained small CLIP: baseline, LoRA, LoRA optimised and the
# ablation (each technique off alone), 3 seeds each, then the table and Pareto plots.
# Needs models/small-clip (`lookright vlm pretrain --out models/small-clip`, about 10 minutes; the results in docs/results.md used `--objective cls`).
VLM_OUT ?= runs/vlm
VLM_SEEDS ?= 3
reproduce-vlm: $(STAMP)
	$(VENV)/bin/lookright vlm eval configs/vlm/shapes-baseline.yaml --seeds $(VLM_SEEDS) --jobs $(JOBS) out_dir=$(VLM_OUT)
	$(VENV)/bin/lookright vlm tune configs/vlm/shapes-lora.yaml --seeds $(VLM_SEEDS) --jobs $(JOBS) out_dir=$(VLM_OUT)
	$(VENV)/bin/lookright vlm tune configs/vlm/shapes-lora-optimised.yaml --seeds $(VLM_SEEDS) --jobs $(JOBS) out_dir=$(VLM_OUT)
	for ab in "tune.hard_negatives=false name=no-hard-negatives" "tune.label_smoothing=0 name=no-label-smoothing" \
	          "tune.layerwise_lr_decay=1 name=no-layerwise-lr" "tune.cosine_restarts=false name=no-cosine-restarts" \
	          "tune.curriculum=false name=no-curriculum" "tune.augmentation=false name=no-augmentation" \
	          "tune.conflict_share=0 tune.hard_negatives=false name=no-conflicting-text"; do \
	  $(VENV)/bin/lookright vlm tune configs/vlm/shapes-lora-optimised.yaml --seeds $(VLM_SEEDS) --jobs $(JOBS) \
	    out_dir=$(VLM_OUT) $$ab || exit 1; done
	$(VENV)/bin/lookright vlm summarize $(VLM_OUT) --out $(VLM_OUT)/results.md
