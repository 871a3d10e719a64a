"""Name -> class tables filled by a class decorator: networks, classical methods, augmentation steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from skinseg.errors import UnknownNameError

T = TypeVar("T", bound=type)


class Registry(dict[str, type]):
    """Classes by name, in registration order; `register(name)` adds one, `create(name)` builds one.

    Args:
        kind: what the classes are, for messages ("model", "classical method", ...).
        names_classes: also set each class's `name` attribute to its registry name.
    """

    def __init__(self, kind: str, names_classes: bool = False) -> None:
        super().__init__()
        self.kind, self.names_classes = kind, names_classes

    def register(self, name: str) -> Callable[[T], T]:
        """Class decorator: makes the class available by `name`.

        Raises:
            ValueError: `name` is registered already.
        """

        def add(cls: T) -> T:
            if name in self:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            if self.names_classes:
                cls.name = name
            self[name] = cls
            return cls

        return add

    def create(self, name: str, **kwargs: Any) -> Any:
        """Builds the class registered as `name` with `kwargs`.

        Raises:
            UnknownNameError: for an unknown name; the message lists the valid names.
        """
        if name not in self:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid names: {', '.join(sorted(self))}")
        return self[name](**kwargs)
