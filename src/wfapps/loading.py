"""Loading definitions (JSON or YAML files) and example folders from disk."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from wfdomain.actions import ActionRegistry
from wfdomain.definition import Definition, parse_definition
from wfdomain.errors import DefinitionError

__all__ = ["WorkflowPackage", "load_definition_file", "load_package"]


def _read_document(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            return yaml.safe_load(text)
        return json.loads(text)
    except (yaml.YAMLError, json.JSONDecodeError) as e:
        raise DefinitionError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None


def load_definition_file(path: Path) -> Definition:
    """Parse and validate a definition file (``.json``, ``.yaml`` or ``.yml``).

    Raises:
        DefinitionError, ExpressionError: with the step path of the problem.
    """
    document = _read_document(path)
    if not isinstance(document, dict):
        raise DefinitionError(f"{path}: a definition must be a mapping, got "
                              f"{type(document).__name__}")
    return parse_definition(document)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowPackage:
    """A folder holding a workflow: its definitions, actions and a sample input.

    Layout: ``definition.yaml`` (the main workflow), any other ``*.yaml`` definitions it
    starts as child runs, ``actions.py`` exposing ``actions: ActionRegistry``, and an
    optional ``input.json``.
    """

    main: Definition
    definitions: tuple[Definition, ...]
    actions: ActionRegistry
    sample_input: Any


def _load_actions(path: Path) -> ActionRegistry:
    if not path.exists():
        return ActionRegistry()
    name = f"wf_actions_{abs(hash(path.resolve()))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DefinitionError(f"{path}: cannot be imported")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    registry = getattr(module, "actions", None)
    if not isinstance(registry, ActionRegistry):
        raise DefinitionError(f"{path}: must define `actions = ActionRegistry()`")
    return registry


def load_package(folder: Path) -> WorkflowPackage:
    """Load a workflow folder (or a single definition file, with no actions)."""
    if folder.is_file():
        main = load_definition_file(folder)
        return WorkflowPackage(main=main, definitions=(main,), actions=ActionRegistry(),
                               sample_input=None)
    main_path = next((folder / n for n in ("definition.yaml", "definition.yml",
                                           "definition.json") if (folder / n).exists()), None)
    if main_path is None:
        raise DefinitionError(f"{folder}: no definition.yaml or definition.json")
    main = load_definition_file(main_path)
    others = tuple(
        load_definition_file(p) for p in sorted(folder.iterdir())
        if p.suffix in (".yaml", ".yml") and p != main_path
    )
    input_path = folder / "input.json"
    sample = json.loads(input_path.read_text(encoding="utf-8")) if input_path.exists() else None
    return WorkflowPackage(main=main, definitions=(main, *others),
                           actions=_load_actions(folder / "actions.py"), sample_input=sample)
