"""Image search over a gallery with a trained (or any) embedder: see ``atlantis.search.index``."""
