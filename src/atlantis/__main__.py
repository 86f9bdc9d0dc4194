"""``python -m atlantis`` (and ``torchrun -m atlantis``) runs the CLI."""

from atlantis.cli.main import main

main()
