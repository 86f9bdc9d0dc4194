"""Image sources and the generate stage: plan items in, content-addressed images out.

``generate.registry.create_source(spec)`` builds a source (``diffusers:<id or folder>``,
``retrieve``); ``generate.stage.generate`` runs the stage on the local or the Ray executor
and ``generate.stage.load_generated`` reads its records. ``atlantis.config`` imports
``generate.config``, so this package imports nothing here: no torch, no cycle.
"""
