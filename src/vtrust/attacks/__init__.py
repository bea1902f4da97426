"""Attacks every defense is evaluated against.

* black-box extraction (:mod:`vtrust.attacks.extraction`): equation solving, random
  queries, JBDA (+ JB-self, JB-top3), Knockoff Nets, CopycatCNN, ActiveThief;
* white-box: direct stealing (:mod:`vtrust.attacks.direct`) and removal attacks
  (:mod:`vtrust.attacks.removal`): fine-tuning, pruning, fine-pruning, quantization,
  weight noise/shifting, distillation.

Named configurations live in the top-level ``attacks/`` catalog.
"""
