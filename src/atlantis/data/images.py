"""Opening image files the user gave us: decompression-bomb limits that name the file, and a
check that decodes the pixels.

Two PIL behaviours make bad images hard to trace back to their file:

* ``Image.open`` warns (``DecompressionBombWarning``) above ``Image.MAX_IMAGE_PIXELS`` and
  raises ``DecompressionBombError`` above twice that, with a message that gives the pixel
  count but not the file. In a dataset of 100,000 images that message is useless, so
  :func:`open_image` re-issues the warning, and turns the error into a ``DataError``, with
  the path in front.
* ``Image.verify()`` only parses headers (and PNG chunk checksums): a JPEG cut short passes
  it and fails hours later when a model decodes it. :func:`check_decodes` also loads the
  pixels; large JPEGs are decoded in draft mode (DCT scaling, about 3x faster at 4000 x 3000),
  which still reads every byte of the entropy-coded data, so truncation is found all the same.

Truncation is only an error while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES`` is False (PIL's
default). ATLANTIS never sets it; :func:`check_decodes` refuses to vouch for an image while
something else has set it, rather than passing cut-short files silently.
"""

from __future__ import annotations

import threading
import warnings
from pathlib import Path

from PIL import Image, ImageFile

from atlantis.errors import DataError

# ``warnings.catch_warnings`` swaps process-wide state; one lock keeps this module's own
# callers (e.g. the embedder's decoding threads) from interleaving it.
_OPEN_LOCK = threading.Lock()


def open_image(path: Path | str, *, warn: bool = True) -> Image.Image:
    """``Image.open(path)``, with PIL's decompression-bomb warning and error naming the file.

    The warning is re-issued (same category, so filters on it keep working) as
    ``"<path>: <PIL's message> ..."``; ``warn=False`` drops it, for a second open of a file
    whose first open already warned. Above twice the limit PIL refuses the file: that
    becomes a ``DataError`` naming it and saying what to do. Any other failure propagates
    unchanged for the caller to word. Other warnings raised meanwhile are passed on as they
    were.
    """
    with _OPEN_LOCK, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        try:
            image = Image.open(path)
        except Image.DecompressionBombError as exc:
            raise DataError(
                f"refused as a possible decompression bomb ({str(exc).rstrip('.')}); shrink "
                "the image or remove it (PIL.Image.MAX_IMAGE_PIXELS sets the limit)",
                path,
            ) from None
    try:
        for w in caught:
            if not issubclass(w.category, Image.DecompressionBombWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno, source=w.source)
            elif warn:
                message = f"{path}: {w.message} It is read anyway; if the image is not meant "
                message += "to be this large, shrink it or remove it"
                warnings.warn(Image.DecompressionBombWarning(message), stacklevel=2)
    except BaseException:  # a filter that turns warnings into errors: do not leak the file
        image.close()
        raise
    return image


def check_decodes(path: Path | str) -> None:
    """Raise unless ``path`` parses and its pixels decode to the end.

    Raises ``DataError`` (naming the file) for a decompression bomb or while truncated images
    are tolerated process-wide; PIL's own exception (``OSError``, ``SyntaxError``, ...) for a
    file that is not an image, is corrupt or is cut short, for the caller to word in its
    context (a manifest line, a pool file).
    """
    require_strict_decoding(path)
    with open_image(path) as image:
        image.verify()  # chunk structure and PNG checksums, which load() does not check
    # verify() leaves the image unusable: the pixels need a fresh open.
    with open_image(path, warn=False) as image:
        if image.format == "JPEG":
            image.draft(None, (1, 1))  # decode at 1/8 scale: every byte is still read
        image.load()


def require_strict_decoding(path: Path | str | None = None) -> None:
    """Raise ``DataError`` while PIL tolerates truncated images: no check could then be trusted.

    ``path`` is the file that was to be checked, for the message.
    """
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise DataError(
            "cannot check images: PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set to True in this "
            "process (by a plugin or library), which makes cut-short images load without an "
            "error; unset it",
            path,
        )
