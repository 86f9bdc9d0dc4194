"""Export a trained arm as a self-contained model folder, and load such a folder back.

``atlantis export RUN --arm ARM --out DIR`` turns ``RUN/train/<arm>/best.pt`` (a training
checkpoint, tied to the run) into a folder that stands on its own: ``model.safetensors``
(weights that cannot run code) and ``atlantis-model.json`` (the architecture, the
preprocessing, the distance, where the model came from and the weights' sha256). Optional
ONNX / TorchScript copies are checked against the PyTorch model when they are written.

Modules: ``source`` finds the trained stage of an arm, ``folder`` is the folder's layout
(writing it atomically, reading and checking it), ``formats`` the ONNX / TorchScript
exports and their verification, ``exporter`` puts them together, and ``model`` is what
``atlantis.load_model(DIR)`` returns. Importing this package imports no torch.
"""
