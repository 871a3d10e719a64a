"""The name -> network registry: each model module registers its class with `@register("name")`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from skinseg.errors import UnknownNameError

MODELS: dict[str, type[nn.Module]] = {}  # lists of models read it, sorted by name


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: makes a network available by `name` to `create_model`, configs and benches."""

    def add(model_class: type[nn.Module]) -> type[nn.Module]:
        if name in MODELS:
            raise ValueError(f"model {name!r} is registered twice")
        MODELS[name] = model_class
        return model_class

    return add


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Builds a registered model by name, e.g. `create_model("u2netp", num_classes=1)`.

    Raises:
        UnknownNameError: for an unknown name; the message lists the valid names.
    """
    try:
        model_class = MODELS[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; valid names: {', '.join(sorted(MODELS))}") from None
    return model_class(**kwargs)
