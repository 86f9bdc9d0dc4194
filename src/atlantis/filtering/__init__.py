"""ORDC: Outlier Removal and Diversity Control of synthetic images, and the filter stage.

* ``filtering.ordc``: the delta rule (``ordc_keep`` mask, ``ordc`` with the details), with
  small-class radius shrinkage;
* ``filtering.consistency``: the class-consistency rule (own class beats every other);
* ``filtering.rules``: the rules by name (``filter.rule``: radius, consistency, both, none);
* ``filtering.diversity``: near-duplicate removal (``diversity_keep``);
* ``filtering.stage``: ``filter_arm`` runs the rule(s) and diversity control on one arm and
  writes ``RUN/filter/<arm>``; ``load_kept`` reads the kept records for training.

This package is imported by ``atlantis.config`` (for ``FilterConfig``), so it imports
nothing here: no torch, no cycle.
"""
