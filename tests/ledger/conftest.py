"""Shared test vectors for the ledger tests, read where they stand in ../shared/testdata."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ci import unavailable, unavailable_mark

# The project root is the parent of tests/; the vectors live beside the project, not in it.
TESTDATA_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "testdata"

VECTOR_FOLDERS = {
    "inclusion_vector": "rfc6962/inclusion",
    "consistency_vector": "rfc6962/consistency",
}


def missing_testdata_reason(folder: Path) -> str:
    return f"shared test vectors not found: {folder} is missing"


@pytest.fixture(scope="session")
def testdata_dir() -> Path:
    if not TESTDATA_DIR.is_dir():
        unavailable(missing_testdata_reason(TESTDATA_DIR))
    return TESTDATA_DIR


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Give each vector file its own test case; a bare clone gets one skipped case instead."""
    for argname, relative in VECTOR_FOLDERS.items():
        if argname not in metafunc.fixturenames:
            continue
        folder = TESTDATA_DIR / relative
        files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
        if files:
            ids = [path.relative_to(folder).as_posix() for path in files]
            metafunc.parametrize(argname, files, ids=ids)
        else:
            skip = unavailable_mark(missing_testdata_reason(folder))
            metafunc.parametrize(argname, [pytest.param(None, marks=skip)], ids=["missing"])
