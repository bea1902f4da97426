"""Shared fixtures."""

import pytest


@pytest.fixture(scope="session")
def byom(tmp_path_factory):
    """A user's own (non-zoo) model in every format vtrust reads, and its RGB data."""
    from byom_model import build

    return build(tmp_path_factory.mktemp("byom"))
