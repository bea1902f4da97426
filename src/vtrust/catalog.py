"""Catalogs: named configurations of attacks, defenses and circuits, one TOML file each.

A catalog entry names a built-in implementation (its *kind*) and that kind's parameters::

    # defenses/round-2.toml
    kind = "rounding"
    description = "Round returned probabilities to 2 decimals."
    [params]
    decimals = 2

Each kind registers a frozen dataclass of parameters; loading checks every key and type
against it, and any error names the file, the key and what was expected. The entries live
in the repository's top-level ``attacks/``, ``defenses/`` and ``circuits/`` folders; an
installed wheel carries those same files (mapped in at build time), so there is one
source of truth.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from vtrust.errors import CatalogError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

SECTIONS = ("attacks", "defenses", "circuits")

# Modules that register the built-in kinds of each section (imported on first use).
_PROVIDERS: dict[str, tuple[str, ...]] = {
    "attacks": (
        "vtrust.attacks.extraction.equation",
        "vtrust.attacks.extraction.sampling",
        "vtrust.attacks.extraction.jbda",
        "vtrust.attacks.extraction.knockoff",
        "vtrust.attacks.extraction.activethief",
        "vtrust.attacks.direct",
        "vtrust.attacks.removal.finetune",
        "vtrust.attacks.removal.pruning",
        "vtrust.attacks.removal.quantization",
        "vtrust.attacks.removal.noise",
        "vtrust.attacks.removal.distill",
        "vtrust.attacks.removal.overwrite",
        "vtrust.attacks.ambiguity",
        "vtrust.attacks.statement",
    ),
    "defenses": (
        "vtrust.defenses.poisoning",
        "vtrust.defenses.limits",
        "vtrust.defenses.prada",
        "vtrust.defenses.shift",
        "vtrust.defenses.mad",
    ),
    "circuits": ("vtrust.proofs.compiler",),
}


@dataclass(frozen=True)
class Kind:
    """A built-in implementation that catalog entries can name."""

    section: str
    name: str
    params: type  # a frozen dataclass of the implementation's parameters
    build: Callable[[Any], Any]
    summary: str


_KINDS: dict[str, dict[str, Kind]] = {section: {} for section in SECTIONS}


def register(section: str, name: str, params: type, summary: str):
    """Decorator registering ``build(params) -> object`` as kind ``name`` of ``section``."""
    if section not in SECTIONS or not dataclasses.is_dataclass(params):
        raise ValueError(f"cannot register {name!r} in {section!r}")

    def decorate(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _KINDS[section][name] = Kind(section, name, params, build, summary)
        return build

    return decorate


def kinds(section: str) -> dict[str, Kind]:
    """The registered kinds of ``section``, by name."""
    _check_section(section)
    for module in _PROVIDERS[section]:
        importlib.import_module(module)
    return dict(_KINDS[section])


@dataclass(frozen=True)
class Entry:
    """One validated catalog entry."""

    name: str
    section: str
    kind: str
    params: Any  # an instance of the kind's parameter dataclass
    description: str
    source: Path

    def build(self) -> Any:
        """Instantiate the implementation this entry configures."""
        return kinds(self.section)[self.kind].build(self.params)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "section": self.section,
            "kind": self.kind,
            "description": self.description,
            "params": dataclasses.asdict(self.params),
        }


def _check_section(section: str) -> None:
    if section not in SECTIONS:
        raise CatalogError(f"unknown catalog section {section!r}; expected one of {SECTIONS}")


def catalog_dir(section: str) -> Path:
    """The folder holding ``section``'s entries: inside an installed wheel, or the source
    tree's top-level folder for an editable install or a checkout."""
    _check_section(section)
    packaged = Path(str(resources.files("vtrust"))) / "_catalog" / section
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / section


# --- parameter validation --------------------------------------------------------------


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        return (
            f"a list of {_describe(typing.get_args(tp)[0]).removeprefix('an ').removeprefix('a ')}s"
        )
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp) if a is not type(None))
    return str(tp)


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` converted to type ``tp``, or raise ``TypeError``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            if option is type(None):
                continue
            try:
                return _coerce(value, option)
            except TypeError:
                pass
        raise TypeError
    if origin is typing.Literal:
        if value in typing.get_args(tp) and type(value) is not bool:
            return value
        raise TypeError
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise TypeError
        items = [_coerce(v, typing.get_args(tp)[0]) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise TypeError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise TypeError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise TypeError
    if tp is str:
        if isinstance(value, str):
            return value
        raise TypeError
    raise TypeError


def parse_params(params_cls: type, raw: dict[str, Any], source: str) -> Any:
    """Build ``params_cls`` from the TOML table ``raw``, checking every key and type."""
    hints = typing.get_type_hints(params_cls)
    fields = {f.name: f for f in dataclasses.fields(params_cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise CatalogError(
                f"{source}: unknown key 'params.{key}'; expected one of {sorted(fields)}"
            )
        try:
            values[key] = _coerce(value, hints[key])
        except TypeError:
            raise CatalogError(
                f"{source}: key 'params.{key}' must be {_describe(hints[key])}, got {value!r}"
            ) from None
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise CatalogError(f"{source}: missing key 'params.{missing[0]}'")
    try:
        return params_cls(**values)
    except (ValueError, TypeError) as exc:
        raise CatalogError(f"{source}: invalid parameters: {exc}") from None


# --- loading ---------------------------------------------------------------------------

_TOP_KEYS = {"kind", "description", "params"}


def parse_entry(section: str, text: str, *, name: str, source: str) -> Entry:
    """Validate the TOML ``text`` of one entry of ``section``."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise CatalogError(
            f"{source}: unknown key {unknown[0]!r}; expected kind, description and [params]"
        )
    kind = doc.get("kind")
    available = kinds(section)
    if not isinstance(kind, str):
        raise CatalogError(
            f"{source}: key 'kind' must be a string naming one of {sorted(available)}"
        )
    if kind not in available:
        raise CatalogError(f"{source}: key 'kind' is {kind!r}; expected one of {sorted(available)}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise CatalogError(f"{source}: key 'description' must be a string")
    raw_params = doc.get("params", {})
    if not isinstance(raw_params, dict):
        raise CatalogError(f"{source}: key 'params' must be a table")
    params = parse_params(available[kind].params, raw_params, source)
    return Entry(name, section, kind, params, description, Path(source))


def load_entry(section: str, name_or_path: str | Path) -> Entry:
    """Load an entry by catalog name (``prada``) or by the path of a TOML file."""
    _check_section(section)
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = catalog_dir(section) / f"{name_or_path}.toml"
        if not path.is_file():
            known = ", ".join(e.name for e in list_entries(section)) or "none"
            raise CatalogError(f"no {section} entry named {name_or_path!r} (known: {known})")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read catalog file {path}: {exc}") from None
    return parse_entry(section, text, name=path.stem, source=str(path))


def entry_from_json(section: str, doc: Any, *, source: str) -> Entry:
    """Rebuild an entry from its :meth:`Entry.to_json` record (e.g. one kept in a model
    file's metadata), checking it like a TOML file."""
    if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
        raise CatalogError(f"{source}: not a catalog entry record")
    available = kinds(section)
    kind = doc.get("kind")
    if kind not in available:
        raise CatalogError(f"{source}: unknown {section} kind {kind!r}")
    params = doc.get("params")
    if not isinstance(params, dict):
        raise CatalogError(f"{source}: the entry record has no parameters")
    description = doc.get("description", "")
    return Entry(
        doc["name"], section, kind, parse_params(available[kind].params, params, source),
        description if isinstance(description, str) else "", Path(source),
    )  # fmt: skip


def list_entries(section: str) -> list[Entry]:
    """Every entry of ``section``, validated, in name order."""
    folder = catalog_dir(section)
    if not folder.is_dir():
        return []
    return [load_entry(section, p) for p in sorted(folder.glob("*.toml"))]
