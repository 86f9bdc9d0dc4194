"""Augmentation Protocol Selector (APS): what synthetic images to make, and their text.

``plan.stage.plan`` writes ``RUN/plan/<arm>/plan.jsonl`` (targeted or naive planner),
``plan.stage.replan`` appends a feedback round, ``plan.stage.load_plan`` reads the items.
``atlantis.config`` imports ``plan.config`` (for ``PlanConfig``), so this package imports
nothing here: no cycle.
"""
