"""Choosing a backend: by name, and the default that works here (probe cached)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from strata.errors import InvalidArgument
from strata.runtime import ChrootBackend, RuncBackend, backend_by_name, default_backend
from strata.runtime.select import PROBE_NAME, probe


def test_by_name(tmp_path: Path) -> None:
    runc = backend_by_name("runc", tmp_path)
    assert isinstance(runc, RuncBackend) and runc.name == "runc"
    assert runc.state_root == tmp_path / "runc"
    crun = backend_by_name("crun", tmp_path)
    assert isinstance(crun, RuncBackend) and crun.name == "crun"
    chroot = backend_by_name("chroot", tmp_path)
    assert isinstance(chroot, ChrootBackend) and chroot.state_root == tmp_path / "chroot"


def test_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as err:
        backend_by_name("kata", tmp_path)
    assert str(err.value) == "unknown runtime 'kata' (choose from runc, crun, chroot)"


def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    assert not RuncBackend(tmp_path, binary="/nonexistent/runc").available()


@pytest.mark.root
@pytest.mark.peers
def test_default_is_runc_here_and_the_probe_is_cached(tmp_path: Path) -> None:
    if shutil.which("runc") is None:
        pytest.skip("needs runc")
    backend = default_backend(tmp_path)
    assert backend.name == "runc"
    cache = json.loads((tmp_path / PROBE_NAME).read_text())
    assert cache["runc"]["works"] is True
    cache["runc"]["works"] = False  # a cached verdict is trusted while the binary is unchanged
    (tmp_path / PROBE_NAME).write_text(json.dumps(cache))
    assert default_backend(tmp_path).name == "chroot"
    assert probe(RuncBackend(tmp_path / "runc"))


@pytest.mark.root
def test_default_falls_back_to_chroot(tmp_path: Path) -> None:
    backend = default_backend(tmp_path, runc_binary="/nonexistent/runc")
    assert backend.name == "chroot"
    assert backend.available()
