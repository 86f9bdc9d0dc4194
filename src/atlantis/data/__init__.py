"""Datasets: the record model, native-layout readers, split rules and the ingest stage."""
