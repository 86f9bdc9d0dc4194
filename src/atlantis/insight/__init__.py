"""Data Insight Generator (DIG): what the training data over- and under-represents."""
