"""Configs of every pipeline: a YAML file (``inherit:`` merges a parent underneath) plus
``key=value`` overrides, validated by a pydantic schema. Every problem is a ConfigError.
"""

from __future__ import annotations

import difflib
import importlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import core_schema

from lookright.errors import ConfigError


class Strict(BaseModel):
    """A config section that rejects unknown keys."""

    model_config = ConfigDict(extra="forbid")


class LazySection:
    """Marks a config field whose schema lives in a heavy module (``"package.module:Class"``):
    the module is imported only when the field is given, so that validating any other config
    stays free of torch. Use as ``Annotated[Any, LazySection("pkg.mod:Class")] = None``."""

    def __init__(self, target: str) -> None:
        self.target = target

    def schema(self) -> type[BaseModel]:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def validate(self, value: Any) -> Any:
        if value is None or isinstance(value, BaseModel):
            return value
        return self.schema().model_validate(value)  # a ValidationError is expanded by build_config

    def __get_pydantic_core_schema__(self, _source, _handler):
        return core_schema.no_info_plain_validator_function(self.validate)


class RunConfigBase(Strict):
    """What every pipeline's config starts with: its run's name, seed and output folder
    (run folders are ``OUT_DIR/NAME/seedS``)."""

    name: str = "run"
    seed: int = Field(0, ge=0)
    out_dir: str = "runs"

    @field_validator("name")
    @classmethod
    def _one_folder(cls, v: str) -> str:
        """The run name is one folder name: ``OUT_DIR/NAME/seedS`` never leaves ``out_dir``."""
        if not v or v.startswith(".") or any(c in v for c in '/\\|') or v != v.strip():
            raise ValueError(f"name {v!r} must be one folder name: not empty, not starting with '.', without "
                             "'/', '\\', '|' or surrounding spaces")
        return v


def check_fractions(v: list[float], include_one: bool) -> list[float]:
    """A non-empty list of numbers in (0, 1] (or (0, 1) without ``include_one``)."""
    if not v or any(not (0 < f <= 1 if include_one else 0 < f < 1) for f in v):
        raise ValueError(f"fractions must be a non-empty list of numbers in (0, 1{']' if include_one else ')'}, got {v}")
    return v


def check_choices(values: list[str], allowed, what: str) -> list[str]:
    """A non-empty list whose every item is one of ``allowed``."""
    bad = [v for v in values if v not in allowed]
    if bad or not values:
        raise ValueError(f"unknown {what} {bad}; choose from {', '.join(allowed)}")
    return values


def split_assignment(item: str, what: str = "override", example: str = "train.epochs=5") -> tuple[str, str]:
    """``"a.b=v"`` -> ``("a.b", "v")``; anything else is a ConfigError naming ``what``."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{what} {item!r} must look like key=value, e.g. {example}")
    return key.strip(), raw


def parse_value(key: str, raw: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(f"the value of {key}={raw!r} is not valid YAML ({reason}); "
                          f"quote it, e.g. {key}='\"{raw}\"', or close its brackets") from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> dict:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values parsed as YAML).

    A ``key=`` override whose value is a mapping replaces that section instead of merging into it
    (``env.options={}`` clears inherited options); see :func:`merge_trees`."""
    tree: dict = {}
    for item in overrides:
        key, raw = split_assignment(item)
        value = parse_value(key, raw)
        _set_dotted(tree, key, Replace(value) if isinstance(value, dict) else value)
    return tree


class Replace(dict):
    """A mapping from an override that replaces the section under it instead of merging."""


def merge_trees(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Replace):
            out[key] = dict(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_trees(out[key], value)
        else:
            out[key] = value
    return out


def build_config(tree: dict, origin: str, schema: type[BaseModel]):
    """Validate ``tree`` against ``schema``; the error lists every bad field, with a
    "did you mean" for an unknown key close to a known one."""
    try:
        return schema.model_validate(tree)
    except ValidationError as exc:
        problems = "; ".join(_problems(exc, schema, ()))
        raise ConfigError(f"invalid {origin}: {problems}") from None


def _problems(exc: ValidationError, schema: type[BaseModel] | None, prefix: tuple) -> list[str]:
    out = []
    for err in exc.errors():
        loc = (*prefix, *err["loc"])
        nested = (err.get("ctx") or {}).get("error")
        if isinstance(nested, ValidationError):  # a LazySection's own errors
            out += _problems(nested, _section(schema, err["loc"]), loc)
            continue
        where = ".".join(str(p) for p in loc) or "(top)"
        if err["type"] == "extra_forbidden":
            out.append(f"{where}: unknown key{_suggestion(schema, err['loc'])}")
        else:
            out.append(f"{where}: {err['msg']}")
    return out


def _section(schema: type[BaseModel] | None, loc: tuple) -> type[BaseModel] | None:
    """The config model at ``loc`` under ``schema`` (None where it is not a model)."""
    for key in loc:
        field = schema.model_fields.get(key) if isinstance(key, str) and schema is not None else None
        if field is None:
            return None
        schema = _model_of(field)
    return schema


def _model_of(field) -> type[BaseModel] | None:
    for meta in field.metadata:
        if isinstance(meta, LazySection):
            return meta.schema()
    candidates = [field.annotation, *getattr(field.annotation, "__args__", ())]
    return next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)


def _suggestion(schema: type[BaseModel] | None, loc: tuple) -> str:
    """`` (did you mean train.epochs?)`` or a list of the section's keys."""
    section = _section(schema, loc[:-1])
    if section is None:
        return ""
    known = list(section.model_fields)
    parent = "".join(f"{p}." for p in loc[:-1])
    close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {parent}{close[0]}?)"
    return f"; {parent.rstrip('.') or 'the top level'} takes {', '.join(known)}"


def read_tree(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML mapping; ``inherit: other.yaml`` (relative to this file) is merged underneath."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}" + (" (it is a folder)" if path.is_dir() else ""))
    if path.resolve() in _seen:
        raise ConfigError(f"config {path} inherits from itself")
    try:
        tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 YAML") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise ConfigError(f"{path} must hold a mapping at the top level")
    parent = tree.pop("inherit", None)
    if parent is not None:
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"{path}: inherit must be one file name (a string, relative to {path.parent}), "
                              f"got {parent!r}")
        tree = merge_trees(read_tree(path.parent / parent, (*_seen, path.resolve())), tree)
    return tree


def load_config(path: str | Path | None, overrides: list[str] | None, schema: type[BaseModel]):
    """Read a YAML config (or start from defaults), apply ``key=value`` overrides, validate."""
    tree = read_tree(Path(path)) if path is not None else {}
    origin = str(path) if path is not None else "defaults"
    return build_config(merge_trees(tree, parse_overrides(overrides or [])), origin, schema)


def config_tree(cfg: BaseModel) -> dict:
    return cfg.model_dump(mode="json")


def dump_config(cfg: BaseModel) -> str:
    return yaml.safe_dump(config_tree(cfg), sort_keys=False)
