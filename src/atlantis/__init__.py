"""ATLANTIS: targeted language-guided augmentation for image retrieval."""

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports it
    from atlantis.export.model import load_model


def __getattr__(name: str) -> Any:
    """``atlantis.load_model(DIR)``, imported on first use: ``import atlantis`` stays light
    (load_model needs torch)."""
    if name == "load_model":
        from atlantis.export.model import load_model

        return load_model
    raise AttributeError(f"module 'atlantis' has no attribute {name!r}")


__all__ = ["__version__", "load_model"]
