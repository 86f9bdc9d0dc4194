"""Deep metric learning: train the retrieval model on real (+ kept synthetic) images.

Read in this order: ``config`` (the recipe), ``hyperbolic`` (Poincaré-ball maths),
``model`` (backbone + sphere / ball head), ``losses`` (pairwise cross-entropy, pml losses),
``data`` (m-per-class batches), ``runtime`` (devices, precision, several processes),
``checkpoint`` (exact resume), ``loop`` (epochs and validation), ``stage`` (the
``train/<arm>`` stage) and ``feedback`` (Algorithm 2). Nothing is imported here, so
``import atlantis.train.config`` stays cheap.
"""
