"""Image embedders: one interface, backends chosen by name, a content-hash cache."""
