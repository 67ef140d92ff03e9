"""A tiny name -> factory registry, so that configs name models, extractors, losses and teachers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from lookright.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories: ``@reg.register("name")`` then ``reg.create("name", **kw)``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def names(self) -> list[str]:
        return sorted(self._factories)

    def describe(self) -> dict[str, str]:
        """Each name with the first line of its factory's docstring ("" without one)."""
        return {n: ((self._factories[n].__doc__ or "").strip().splitlines() or [""])[0] for n in self.names()}

    def get(self, name: str) -> Callable[..., T]:
        try:
            return self._factories[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> T:
        factory = self.get(name)
        try:
            return factory(**kwargs)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"invalid options for {self.kind} {name!r}: {exc}") from exc

    def __contains__(self, name: str) -> bool:
        return name in self._factories
