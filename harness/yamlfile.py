"""Reading a YAML document field by field, collecting every problem with its path.

A rig file is written by hand in a lab; the person who wrote it wants all its mistakes at once,
each named by where it is (``evse.ocpp.security_profile: must be 1, 2 or 3``), and never a
traceback.
"""

from __future__ import annotations

import builtins
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

_MISSING = object()


class FileProblems(ValueError):
    """A hand-written file (rig, profile, catalogue, command map) that cannot be used;
    ``problems`` lists each problem as "path: message"."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = Path(path)
        self.problems = problems
        super().__init__(f"{path}: {len(problems)} problem{'s' if len(problems) != 1 else ''}\n  "
                         + "\n  ".join(problems))


def read_yaml(path: Path | str, error: type[FileProblems] = FileProblems) -> Any:
    """The parsed YAML document at ``path``; ``error`` names the file, and the line and column
    of a syntax error, when it cannot be read."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(path, [f"cannot read the file: {exc.strerror or exc}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise error(path, [f"{where}not valid YAML ({getattr(exc, 'problem', None) or exc})"]) from None


@dataclass
class Problems:
    items: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(f"{path}: {message}" if path else message)

    def __bool__(self) -> bool:
        return bool(self.items)


class Reader:
    """A view of one mapping at ``path``. Each accessor returns the value (or the default) and
    records a problem instead of raising; :meth:`done` reports keys nobody asked for."""

    def __init__(self, data: Any, path: str, problems: Problems) -> None:
        self.path = path
        self.problems = problems
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            problems.add(path, f"must be a mapping of fields, not {_kind(data)}")
            data = {}
        self.data = data
        self._seen: set[str] = set()

    def _where(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def has(self, key: str) -> bool:
        return key in self.data

    def _get(self, key: str, required: bool) -> Any:
        self._seen.add(key)
        if key in self.data and self.data[key] is not None:
            return self.data[key]
        if required:
            self.problems.add(self._where(key), "is required")
        return _MISSING

    def str(self, key: str, default: Any = None, *, required: bool = False,
            choices: Iterable[str] | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # YAML reads 2.1 or 16 as numbers; a field that wants text takes them
        if not isinstance(value, str):
            self.problems.add(self._where(key), f"must be text, not {_kind(value)}")
            return default
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                self.problems.add(self._where(key), f"must be one of {', '.join(allowed)} (got {value!r})")
                return default
        return value

    # Inside the class body ``str``, ``int``, ``float`` and ``bool`` name the accessors below,
    # so annotations after them spell the built-in types as ``builtins.*``.
    def int(self, key: builtins.str, default: Any = None, *, required: builtins.bool = False,
            minimum: builtins.int | None = None, maximum: builtins.int | None = None,
            choices: Iterable[builtins.int] | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            self.problems.add(self._where(key), f"must be a whole number, not {_kind(value)}")
            return default
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                listed = ", ".join(str(c) for c in allowed[:-1]) + f" or {allowed[-1]}"
                self.problems.add(self._where(key), f"must be {listed}")
                return default
        return self._bounded(key, value, minimum, maximum, default)

    def float(self, key: builtins.str, default: Any = None, *, required: builtins.bool = False,
              minimum: builtins.float | None = None, maximum: builtins.float | None = None,
              exclusive_minimum: builtins.float | None = None) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.problems.add(self._where(key), f"must be a number, not {_kind(value)}")
            return default
        if exclusive_minimum is not None and value <= exclusive_minimum:
            self.problems.add(self._where(key), f"must be greater than {exclusive_minimum:g}")
            return default
        bounded = self._bounded(key, value, minimum, maximum, default)
        return None if bounded is None else float(bounded)  # out of bounds with no default: None

    def bool(self, key: builtins.str, default: Any = None, *, required: builtins.bool = False) -> Any:
        value = self._get(key, required)
        if value is _MISSING:
            return default
        if not isinstance(value, bool):
            self.problems.add(self._where(key), f"must be true or false, not {_kind(value)}")
            return default
        return value

    def str_list(self, key: builtins.str, default: Any = None, *,
                 choices: Iterable[builtins.str] | None = None) -> Any:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            self.problems.add(self._where(key), f"must be a list, not {_kind(value)}")
            return default
        allowed = list(choices) if choices is not None else None
        result = []
        for index, item in enumerate(value):
            if isinstance(item, (int, float)) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str):
                self.problems.add(f"{self._where(key)}[{index}]", f"must be text, not {_kind(item)}")
            elif allowed is not None and item not in allowed:
                self.problems.add(f"{self._where(key)}[{index}]", f"must be one of {', '.join(allowed)} (got {item!r})")
            else:
                result.append(item)
        return result

    def str_map(self, key: builtins.str, default: Any = None) -> Any:
        value = self._get(key, False)
        if value is _MISSING:
            return default
        if not isinstance(value, Mapping):
            self.problems.add(self._where(key), f"must be a mapping, not {_kind(value)}")
            return default
        result = {}
        for k, v in value.items():
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                self.problems.add(f"{self._where(key)}.{k}", f"must be text, not {_kind(v)}")
            else:
                result[str(k)] = str(v)
        return result

    def section(self, key: builtins.str, *, required: builtins.bool = False) -> "Reader":
        value = self._get(key, required)
        return Reader(None if value is _MISSING else value, self._where(key), self.problems)

    def sections(self, key: builtins.str, *, required: builtins.bool = False) -> list["Reader"]:
        """A list of mappings: one reader per item, at ``key[i]``."""
        value = self._get(key, required)
        if value is _MISSING:
            return []
        if not isinstance(value, list) or not value:
            self.problems.add(self._where(key), f"must be a non-empty list of mappings, not {_kind(value)}")
            return []
        return [Reader(item, f"{self._where(key)}[{index}]", self.problems) for index, item in enumerate(value)]

    def done(self) -> None:
        for key in self.data:
            if key in self._seen:
                continue
            close = difflib.get_close_matches(str(key), sorted(self._seen), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.problems.add(self._where(str(key)), f"unknown field{hint}")

    def _bounded(self, key: builtins.str, value: Any, minimum: Any, maximum: Any, default: Any) -> Any:
        if minimum is not None and value < minimum:
            self.problems.add(self._where(key), f"must be at least {minimum}")
            return default
        if maximum is not None and value > maximum:
            self.problems.add(self._where(key), f"must be at most {maximum}")
            return default
        return value


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    return type(value).__name__
