"""Reading user-supplied ``.npy`` arrays with errors that name the file."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from atlantis.errors import DataError


def load_npy(path: Path | str, what: str) -> np.ndarray:
    """Load a ``.npy`` file without pickles (object arrays are refused: they can run code)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} file not found", path)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as e:
        raise DataError(
            f"cannot read {what}: {e}. Save plain numeric/string arrays with numpy.save", path
        ) from None
    except OSError as e:
        raise DataError(f"not a .npy file ({e}); save it with numpy.save", path) from None
