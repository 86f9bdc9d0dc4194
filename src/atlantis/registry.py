"""A tiny name -> factory registry shared by every model role and dataset reader.

Each role (embedder, dataset reader, later captioner / LLM / image source) owns one
``Registry``. Backends register themselves by name with a decorator, and user-facing
configuration only ever holds the *name*. Unknown names fail with the list of valid ones,
so a typo in a YAML file is a one-line fix rather than a stack trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised when a registry has no entry of the requested name."""

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to factories (classes or functions) of one role."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._entries: dict[str, Callable[..., T]] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator registering ``factory`` under ``name`` (names are case-insensitive)."""

        def wrap(factory: Callable[..., T]) -> Callable[..., T]:
            key = name.lower()
            if key in self._entries:
                raise ValueError(f"{self.role} {name!r} is registered twice")
            self._entries[key] = factory
            doc = (factory.__doc__ or "").strip().splitlines()
            self._help[key] = help or (doc[0] if doc else "")
            return factory

        return wrap

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._entries[name.lower()]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.role} {name!r}; valid names: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **kwargs: object) -> T:
        return self.get(name)(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def describe(self) -> dict[str, str]:
        """Name -> one-line help, for ``--help`` texts and error messages."""
        return {n: self._help[n] for n in self.names()}

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
