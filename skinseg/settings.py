"""Config values checked against the types their constructors declare, before anything is built.

`python train.py trainer.max_epochs=abc` must end in one line naming the setting, not in a
TypeError deep inside Lightning. Every `_target_` config node's top-level values are matched
against the type hints of its target's constructor; hints this check cannot judge (classes,
callables, forward references) let the value pass, so it never refuses a valid setting.
"""

from __future__ import annotations

import argparse
import collections.abc
import inspect
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from skinseg.errors import UsageError

__all__ = ["RUN_RULES", "TRAINER_RULES", "check_setting_ranges", "check_setting_types", "set_command_defaults"]

_SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.Iterable)
_MAPPINGS = (dict, collections.abc.Mapping)


def _constructor_hints(target: str) -> dict[str, Any]:
    """Type hints of the arguments of `target` (a class's __init__ or a function); {} if unknown."""
    from hydra.utils import get_object

    try:
        obj = get_object(target)
        function = obj.__init__ if inspect.isclass(obj) else obj
        return typing.get_type_hints(function)
    except Exception:  # noqa: BLE001 - an unresolvable hint only means this check cannot help
        return {}


def _matches(value: Any, hint: Any) -> bool:
    """Whether `value` (a plain config value) can be an argument of type `hint`; True where unsure."""
    if hint is Any:
        return True
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arm) for arm in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    container = origin or hint
    if container in _SEQUENCES:
        return isinstance(value, (list, tuple))
    if container in _MAPPINGS:
        return isinstance(value, dict)
    return True


def _arms(hint: Any) -> list[Any]:
    """The alternatives of a Union (nested ones flattened), else [hint]."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return [arm for part in typing.get_args(hint) for arm in _arms(part)]
    return [hint]


def _describe(hint: Any) -> str:
    """'an integer or null', "one of 'a', 'b'", ... for the error message."""
    names = {bool: "true/false", int: "an integer", float: "a number", str: "a string", type(None): "null"}
    choices = [choice for arm in _arms(hint) if typing.get_origin(arm) is typing.Literal
               for choice in typing.get_args(arm)]
    kinds = []
    for arm in _arms(hint):
        if typing.get_origin(arm) is typing.Literal:
            continue
        container = typing.get_origin(arm) or arm
        kinds.append("a list" if container in _SEQUENCES else "a mapping" if container in _MAPPINGS
                     else names.get(arm, getattr(arm, "__name__", str(arm))))
    if choices:
        kinds.insert(0, "one of " + ", ".join(repr(choice) for choice in dict.fromkeys(choices)))
    return " or ".join(dict.fromkeys(kinds))


def check_setting_types(settings: Mapping[str, Any], prefix: str) -> None:
    """Refuses a value whose type its `_target_`'s constructor argument does not accept.

    Args:
        settings: a config node as plain containers (resolved), with `_target_`.
        prefix: its name in the config ("trainer", "data", "model"), for the message.

    Raises:
        UsageError: e.g. "trainer.max_epochs must be an integer or null, got 'abc'".
    """
    target = settings.get("_target_")
    if not isinstance(target, str):
        return
    hints = _constructor_hints(target)
    for key, value in settings.items():
        if key.startswith("_") or key not in hints or _matches(value, hints[key]):
            continue
        raise UsageError(f"{prefix}.{key} must be {_describe(hints[key])}, got {value!r}")


def _none_or(test: typing.Callable[[float], bool]) -> typing.Callable[[Any], bool]:
    return lambda value: value is None or test(value)


# Lightning Trainer arguments whose bad values would fail mid-run (a modulo by zero at the
# first validation) or be ignored without a word (a negative clip value).
TRAINER_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "max_epochs": (_none_or(lambda n: n == -1 or n >= 0), "-1 (no limit), null or >= 0"),
    "max_steps": (_none_or(lambda n: n == -1 or n >= 0), "-1 (no limit) or >= 0"),
    "min_epochs": (_none_or(lambda n: n >= 0), ">= 0 or null"),
    "check_val_every_n_epoch": (_none_or(lambda n: n >= 1), ">= 1 or null"),
    "log_every_n_steps": (_none_or(lambda n: n >= 1), ">= 1 or null"),
    "accumulate_grad_batches": (lambda n: n >= 1, ">= 1"),
    "gradient_clip_val": (_none_or(lambda x: x >= 0), ">= 0 or null"),
    "val_check_interval": (_none_or(lambda x: x > 0), "> 0 or null"),
    "limit_train_batches": (_none_or(lambda x: x > 0), "> 0 or null"),
    "limit_val_batches": (_none_or(lambda x: x >= 0), ">= 0 or null"),
    "limit_test_batches": (_none_or(lambda x: x >= 0), ">= 0 or null"),
    "num_sanity_val_steps": (_none_or(lambda n: n >= -1), ">= -1 or null"),
}

# train.py's own top-level settings (Lightning would replace an out-of-range seed with a random one)
RUN_RULES: dict[str, tuple[typing.Callable[[Any], bool], str]] = {
    "seed": (lambda n: n is None or (type(n) is int and 0 <= n < 2**32), "a whole number from 0 to 2**32 - 1, or null"),
    "test": (lambda flag: isinstance(flag, bool), "true or false"),
}


def check_setting_ranges(settings: Mapping[str, Any], prefix: str,
                         rules: Mapping[str, tuple[typing.Callable[[Any], bool], str]]) -> None:
    """Refuses a value outside its rule (call after `check_setting_types`, so values have their types).

    Raises:
        UsageError: e.g. "trainer.check_val_every_n_epoch must be >= 1 or null, got 0".
    """
    for key, (valid, rule) in rules.items():
        if key in settings and not valid(settings[key]):
            raise UsageError(f"{prefix + '.' if prefix else ''}{key} must be {rule}, got {settings[key]!r}")


COMMAND_CONFIGS = Path(__file__).resolve().parent / "configs" / "commands"


def set_command_defaults(parser: argparse.ArgumentParser, command: str, section: str) -> None:
    """Sets `parser`'s defaults from configs/commands/COMMAND.yaml's `section`: the defaults a user may
    tune live in configs/, beside the training configs, not in code.

    Raises:
        ValueError: the section names an option the parser does not have (a typo in the file).
    """
    from omegaconf import OmegaConf

    values = OmegaConf.to_container(OmegaConf.load(COMMAND_CONFIGS / f"{command}.yaml"))[section]
    unknown = sorted(set(values) - {action.dest for action in parser._actions})
    if unknown:
        raise ValueError(f"configs/commands/{command}.yaml: {section}: {unknown} are not options of {parser.prog}")
    parser.set_defaults(**values)
