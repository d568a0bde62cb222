"""What the suite may do without something it needs: skip on a developer's machine, fail in CI."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def _fail_in_ci(message: str) -> None:
    # .ci/run installs every tool and CI always has ../shared: there, a missing piece is a failure.
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"{message} (CI must run every test)", pytrace=False)


def unavailable(message: str) -> NoReturn:
    """Skip the running test locally; fail it under CI=true."""
    _fail_in_ci(message)
    pytest.skip(message)


def unavailable_mark(message: str) -> pytest.MarkDecorator:
    """The same for a parameter, at collection: a skip mark locally, a collection error in CI."""
    _fail_in_ci(message)
    return pytest.mark.skip(reason=message)
