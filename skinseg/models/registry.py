"""The name -> network registry: each model module registers its class with `@register("name")`."""

from __future__ import annotations

from skinseg.registry import Registry

MODELS = Registry("model")  # lists of models read it, sorted by name
register = MODELS.register  # class decorator: a network available by name to `create_model`, configs, benches
create_model = MODELS.create  # e.g. create_model("u2netp", num_classes=1); an unknown name lists the valid ones
