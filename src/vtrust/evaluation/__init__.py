"""Every study vtrust runs — how each figure is measured — in one place.

* ``evaluation.attacks``: extraction thieves (accuracy, fidelity, budget curves), removal
  sweeps, direct stealing; ``run_entry`` is ``vtrust attack run``.
* ``evaluation.defenses``: detectors (queries to detection, false positives on benign
  clients, sybil attackers) and poisoning (defender utility against thief accuracy).
* ``evaluation.watermark``: a watermark after removal, extraction and ambiguity attacks;
  the CI gate and its JUnit XML.
* ``evaluation.enclave``: split execution — stealing the outside part, tamper detection,
  modelled throughput.
* ``evaluation.matrix`` (with ``store``, ``executors``, ``report``): the defense × attack
  × seed matrix, stored cell by cell.
* ``evaluation.audit``: ``vtrust audit`` — one target as deployed: extraction to 90 %
  fidelity, detectors, watermark, proofs, and what was skipped.
* ``evaluation.overhead``: what the oracle adds to a model runtime's own inference.

The experiment scripts in ``experiments/`` call these; proof costs live beside the proofs
(``proofs.costs``) because they time the prover's own stages.
"""
