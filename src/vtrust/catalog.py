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

# Every built-in kind and the module that registers it (imported only when the kind is
# used): listing a catalog needs neither torch nor numba; a module registering a kind
# not declared here is refused, and a test checks that every declared kind registers.
KIND_MODULES: dict[str, dict[str, str]] = {
    "attacks": {
        "equation-solving": "vtrust.attacks.extraction.equation",
        "random-queries": "vtrust.attacks.extraction.sampling",
        "line-search": "vtrust.attacks.extraction.sampling",
        "copycat": "vtrust.attacks.extraction.sampling",
        "jbda": "vtrust.attacks.extraction.jbda",
        "knockoff": "vtrust.attacks.extraction.knockoff",
        "activethief": "vtrust.attacks.extraction.activethief",
        "cloudleak": "vtrust.attacks.extraction.cloudleak",
        "data-free": "vtrust.attacks.extraction.datafree",
        "density-knockoff": "vtrust.attacks.extraction.evasive",
        "refusal-aware": "vtrust.attacks.extraction.evasive",
        "direct-stealing": "vtrust.attacks.direct",
        "fine-tune": "vtrust.attacks.removal.finetune",
        "prune": "vtrust.attacks.removal.pruning",
        "fine-prune": "vtrust.attacks.removal.pruning",
        "quantize": "vtrust.attacks.removal.quantization",
        "weight-noise": "vtrust.attacks.removal.noise",
        "weight-shift": "vtrust.attacks.removal.noise",
        "distill": "vtrust.attacks.removal.distill",
        "overwrite": "vtrust.attacks.removal.overwrite",
        "ambiguity": "vtrust.attacks.ambiguity",
        "statement-substitution": "vtrust.attacks.statement",
        "int8-dishonest-prover": "vtrust.attacks.int8_cheats",
    },
    "defenses": {
        "rounding": "vtrust.defenses.poisoning",
        "top-k": "vtrust.defenses.poisoning",
        "reverse-sigmoid": "vtrust.defenses.poisoning",
        "random-noise": "vtrust.defenses.poisoning",
        "query-limit": "vtrust.defenses.limits",
        "prada": "vtrust.defenses.prada",
        "shift": "vtrust.defenses.shift",
        "extraction-warning": "vtrust.defenses.coverage",
        "mad": "vtrust.defenses.mad",
        "answer-watermark": "vtrust.defenses.answer_marks",
        "preset": "vtrust.defenses.preset",
        "adaptive-misinformation": "vtrust.defenses.misinformation",
    },
    "circuits": {"quantized": "vtrust.proofs.compiler"},
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
    if name not in KIND_MODULES[section]:
        raise ValueError(f"kind {name!r} is not declared in catalog.KIND_MODULES[{section!r}]")

    def decorate(build: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _KINDS[section][name] = Kind(section, name, params, build, summary)
        return build

    return decorate


def kinds(section: str) -> dict[str, Kind]:
    """The registered kinds of ``section``, by name (importing every one's module)."""
    _check_section(section)
    for module in dict.fromkeys(KIND_MODULES[section].values()):
        importlib.import_module(module)
    return dict(_KINDS[section])


def kind(section: str, name: str) -> Kind:
    """One declared kind of ``section``, importing only the module that implements it."""
    _check_section(section)
    if name not in KIND_MODULES[section]:
        raise CatalogError(f"unknown {section} kind {name!r}; expected one of "
                           f"{sorted(KIND_MODULES[section])}")  # fmt: skip
    importlib.import_module(KIND_MODULES[section][name])
    return _KINDS[section][name]


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
        return kind(self.section, self.kind).build(self.params)

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


def _read_toml(section: str, text: str, source: str) -> tuple[str, str, dict[str, Any]]:
    """The ``kind``, ``description`` and raw ``params`` of one entry's TOML, checked for
    structure and a declared kind (no implementation imported)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{source}: not valid TOML ({exc})") from None
    unknown = sorted(set(doc) - _TOP_KEYS)
    if unknown:
        raise CatalogError(
            f"{source}: unknown key {unknown[0]!r}; expected kind, description and [params]"
        )
    kind_name = doc.get("kind")
    declared = sorted(KIND_MODULES[section])
    if not isinstance(kind_name, str):
        raise CatalogError(f"{source}: key 'kind' must be a string naming one of {declared}")
    if kind_name not in KIND_MODULES[section]:
        raise CatalogError(f"{source}: key 'kind' is {kind_name!r}; expected one of {declared}")
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise CatalogError(f"{source}: key 'description' must be a string")
    raw_params = doc.get("params", {})
    if not isinstance(raw_params, dict):
        raise CatalogError(f"{source}: key 'params' must be a table")
    return kind_name, description, raw_params


def parse_entry(section: str, text: str, *, name: str, source: str) -> Entry:
    """Validate the TOML ``text`` of one entry of ``section``."""
    kind_name, description, raw_params = _read_toml(section, text, source)
    params = parse_params(kind(section, kind_name).params, raw_params, source)
    return Entry(name, section, kind_name, params, description, Path(source))


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
    kind_name = doc.get("kind")
    if kind_name not in KIND_MODULES[section]:
        raise CatalogError(f"{source}: unknown {section} kind {kind_name!r}")
    params = doc.get("params")
    if not isinstance(params, dict):
        raise CatalogError(f"{source}: the entry record has no parameters")
    description = doc.get("description", "")
    return Entry(
        doc["name"], section, kind_name,
        parse_params(kind(section, kind_name).params, params, source),
        description if isinstance(description, str) else "", Path(source),
    )  # fmt: skip


def list_entries(section: str) -> list[Entry]:
    """Every entry of ``section``, validated, in name order."""
    folder = catalog_dir(section)
    if not folder.is_dir():
        return []
    return [load_entry(section, p) for p in sorted(folder.glob("*.toml"))]


@dataclass(frozen=True)
class Listing:
    """One entry as a listing shows it, read without importing its implementation:
    ``settings`` are the parameters its file sets (its kind's defaults fill the rest, and
    :func:`load_entry` checks them all)."""

    name: str
    section: str
    kind: str
    description: str
    settings: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def listing(section: str) -> list[Listing]:
    """Every entry of ``section`` in name order, checked for structure and a declared kind
    only — for listings, which must not import torch. Use :func:`list_entries` for
    entries whose parameters are validated."""
    folder = catalog_dir(section)
    if not folder.is_dir():
        return []
    listed = []
    for path in sorted(folder.glob("*.toml")):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise CatalogError(f"cannot read catalog file {path}: {exc}") from None
        kind_name, description, settings = _read_toml(section, text, str(path))
        listed.append(Listing(path.stem, section, kind_name, description, settings))
    return listed
