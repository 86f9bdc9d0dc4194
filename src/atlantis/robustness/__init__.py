"""Adversarial robustness of a trained retrieval model (supplement H of the paper).

* ``robustness.pgd``: ``pgd_attack``, white-box PGD in embedding space, in [0, 1] pixels;
* ``robustness.config``: ``AttackConfig``, the ``attack`` section of a run's config;
* ``robustness.stage``: the ``attack`` stage, adversarial R@1 of each trained arm.

This package is imported by ``atlantis.config`` (for ``AttackConfig``), so it imports
nothing here: no torch, no cycle.
"""
