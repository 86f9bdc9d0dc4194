"""The ``atlantis`` command line."""
