"""CLI commands of the caption stage (registered on the shared app)."""

from atlantis.cli.app import app  # noqa: F401
