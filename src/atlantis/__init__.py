"""ATLANTIS: targeted language-guided augmentation for image retrieval."""

__version__ = "0.1.0"
