"""Visual reliability of CLIP-style models: conflicting-text evaluation and LoRA tuning.

* :mod:`.conflicts` - the four strategies that turn a true caption into a conflicting one;
* :mod:`.pairs` - a shapes test set with its true, conflicting and distractor captions;
* :mod:`.protocols` - the matching and text-conditioned classification protocols, Drop, TDI;
* :mod:`.head` - the attribute classifier on joint image-text embeddings;
* :mod:`.tune` - LoRA (``peft``) or full fine-tuning with the optimisation suite;
* :mod:`.run` - one run folder per (config, seed); :mod:`.summary` - tables over seeds;
* :mod:`.figures` - Pareto frontier, t-SNE, attention maps.
"""
