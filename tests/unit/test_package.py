"""The top-level package: every public name resolves, and importing it stays cheap."""

from __future__ import annotations

import subprocess
import sys

import pytest

import appservice
import appservice.api


@pytest.mark.parametrize("name", sorted(appservice.__all__))
def test_every_exported_name_resolves(name: str) -> None:
    assert getattr(appservice, name) is not None


def test_request_and_response_types_are_importable_from_the_top() -> None:
    for name in appservice.api.__all__:
        assert getattr(appservice, name) is getattr(appservice.api, name)
    assert "ReqCreateRoom" in dir(appservice)
    assert "RespSync" in dir(appservice)


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = appservice.NoSuchThing  # type: ignore[attr-defined]


def test_importing_the_package_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, appservice; "
        "heavy = [m for m in ('sqlalchemy', 'starlette', 'httpx', 'uvicorn') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
