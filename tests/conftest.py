"""Shared fixtures: real labelled photos from $FACELM_DATA, default ../shared/data (never copied
into the repo)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

# $FACELM_DATA (as `facelm eval make-mcq` reads it), else ../shared/data beside the checkout.
DATA = Path(os.environ.get("FACELM_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests need the shared data (set FACELM_DATA, or put "
                    "it in ../shared/data beside the checkout)")
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return _need(DATA)


@pytest.fixture(scope="session")
def lfw_dir() -> Path:
    return _need(DATA / "lfw-view1")


@pytest.fixture(scope="session")
def lfw_pairs(lfw_dir: Path) -> list[dict]:
    with open(lfw_dir / "pairs.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="session")
def deepface_dir() -> Path:
    return _need(DATA / "deepface-pairs")


@pytest.fixture(scope="session")
def faceapi_dir() -> Path:
    return _need(DATA / "faceapi-samples")


@pytest.fixture(scope="session")
def utk_dir() -> Path:
    return _need(DATA / "utkface-dev")


@pytest.fixture(scope="session")
def portrait_path(lfw_dir: Path) -> Path:
    """A clean frontal LFW photo."""
    return lfw_dir / "images" / "Aaron_Peirsol" / "Aaron_Peirsol_0001.jpg"
