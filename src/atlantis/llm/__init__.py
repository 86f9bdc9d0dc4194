"""Language-model backends: one task-based interface, structured (validated) answers.

A DIG or APS function never sends free text: it builds an ``LLMTask`` (a versioned prompt
template, structured input variables, an output schema) and calls ``llm.run(task)``. Model
backends render the template into chat messages; the ``rules`` backend (not a model) answers
the same task deterministically from the structured variables.
"""

from atlantis.llm.base import LLM, LLMOutputError, LLMTask
from atlantis.llm.registry import LLMS, create_llm

__all__ = ["LLM", "LLMS", "LLMOutputError", "LLMTask", "create_llm"]
