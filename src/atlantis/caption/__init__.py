"""Captioners: one interface, backends chosen by name, a content-hash caption cache.

``caption.registry.create_captioner(spec)`` builds one (``metadata``, ``tags``,
``transformers:<model>``, ``openai:<model>``); ``caption.stage.caption`` runs the stage and
``caption.stage.load_captioned`` reads its records. This package is imported by
``atlantis.config`` (for ``CaptionConfig``), so it imports nothing here: no torch, no cycle.
"""
