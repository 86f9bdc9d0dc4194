"""The whole loop (``atlantis run``): every stage in order, for every arm, then the report."""
