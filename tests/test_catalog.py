from dataclasses import dataclass
from typing import Literal

import pytest

from vtrust.catalog import (
    KIND_MODULES,
    SECTIONS,
    catalog_dir,
    kinds,
    list_entries,
    listing,
    load_entry,
    parse_entry,
    parse_params,
    register,
)
from vtrust.errors import CatalogError


def test_every_shipped_entry_validates_and_builds():
    for section in SECTIONS:
        for entry in list_entries(section):
            assert entry.kind in kinds(section)
            assert entry.build() is not None
            assert entry.description
    assert {e.name for e in list_entries("defenses")} >= {"round-2", "top-1", "limit-1k"}


def test_every_declared_kind_registers_in_its_module_and_listings_agree():
    for section in SECTIONS:
        registered = kinds(section)
        assert sorted(registered) == sorted(KIND_MODULES[section])
        for name, module in KIND_MODULES[section].items():
            assert registered[name].build.__module__ == module
        full = [(e.name, e.kind, e.description) for e in list_entries(section)]
        assert [(e.name, e.kind, e.description) for e in listing(section)] == full


def test_an_undeclared_kind_cannot_register():
    @dataclass(frozen=True)
    class P:
        x: int = 1

    with pytest.raises(ValueError, match="not declared"):
        register("defenses", "lasers", P, "pew")(lambda p: p)


def test_catalog_is_the_top_level_folder_in_a_checkout():
    assert catalog_dir("defenses").name == "defenses"
    assert (catalog_dir("defenses") / "round-2.toml").is_file()


def test_load_by_name_and_by_path(tmp_path):
    by_name = load_entry("defenses", "round-2")
    by_path = load_entry("defenses", catalog_dir("defenses") / "round-2.toml")
    assert by_name.params == by_path.params and by_name.params.decimals == 2
    with pytest.raises(CatalogError, match="no defenses entry named 'nope'"):
        load_entry("defenses", "nope")
    with pytest.raises(CatalogError, match="cannot read"):
        load_entry("defenses", tmp_path / "missing.toml")
    with pytest.raises(CatalogError, match="unknown catalog section"):
        load_entry("weapons", "x")


@pytest.mark.parametrize(
    "text, message",
    [
        ("kind = ", "not valid TOML"),
        ("description = 'x'", "key 'kind' must be a string"),
        ("kind = 'lasers'", "key 'kind' is 'lasers'; expected one of"),
        ("kind = 'rounding'\ncolour = 'red'", "unknown key 'colour'"),
        ("kind = 'rounding'\nparams = 3", "key 'params' must be a table"),
        ("kind = 'rounding'\ndescription = 4", "key 'description' must be a string"),
        ("kind = 'rounding'\n[params]\ndigits = 2", "unknown key 'params.digits'"),
        (
            "kind = 'rounding'\n[params]\ndecimals = 'two'",
            "key 'params.decimals' must be an integer, got 'two'",
        ),
        ("kind = 'rounding'\n[params]\ndecimals = 2.5", "must be an integer"),
        ("kind = 'rounding'\n[params]\ndecimals = true", "must be an integer"),
        ("kind = 'rounding'\n[params]\ndecimals = -1", "invalid parameters: decimals must be"),
    ],
)
def test_validation_errors_name_file_and_key(text, message):
    with pytest.raises(CatalogError, match=message) as info:
        parse_entry("defenses", text, name="bad", source="defenses/bad.toml")
    assert str(info.value).startswith("defenses/bad.toml")


@dataclass(frozen=True)
class Sample:
    rate: float
    mode: Literal["soft", "hard"] = "soft"
    sizes: list[int] | None = None
    flag: bool = False


def test_parse_params_types():
    p = parse_params(Sample, {"rate": 1, "mode": "hard", "sizes": [1, 2], "flag": True}, "s")
    assert p == Sample(1.0, "hard", [1, 2], True) and isinstance(p.rate, float)
    with pytest.raises(CatalogError, match="missing key 'params.rate'"):
        parse_params(Sample, {}, "s")
    with pytest.raises(CatalogError, match="one of 'soft', 'hard'"):
        parse_params(Sample, {"rate": 1, "mode": "medium"}, "s")
    with pytest.raises(CatalogError, match="list of integers"):
        parse_params(Sample, {"rate": 1, "sizes": [1, "x"]}, "s")
    with pytest.raises(CatalogError, match="true or false"):
        parse_params(Sample, {"rate": 1, "flag": 1}, "s")
