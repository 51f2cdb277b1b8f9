"""Every training loss as a module-level class: importable, picklable (multi-process training pickles the
loss), documented; each constructed from explicit arguments, with the function that builds it from a model
and its settings.

bi_encoder (cross-lingual distillation, single- and multi-vector; the contrastive loss), tokens (token-level
distillation), weighted (a loss times its weight, for a task of its own), cross_encoder (softmax over a
query's own group). These modules import torch and sentence-transformers when imported: the training code
imports them where it trains, so a step that is up to date never loads sentence-transformers.
"""
