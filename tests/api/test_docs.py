"""The examples of docs/api.md, run in order as one program, as a reader would run them.

The page's registry is ``localhost:5000``; here it is the test registry on loopback (the text is
swapped before it runs), already holding ``app:1``. The store is fresh with ``debian:bookworm``
and the working directory has a Dockerfile, as the page says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import strata
from tests.api.conftest import BASE
from tests.registry.conftest import Registry, registry  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.root, pytest.mark.peers]

PAGE = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def examples(text: str) -> list[str]:
    """The page's ``python`` code blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_the_page_has_the_issues_example() -> None:
    first = examples(PAGE.read_text())[0]
    assert first.splitlines()[:2] == ["import strata", 'img = strata.pull("localhost:5000/app:1")']


def test_the_examples_run(
    debian_root: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    registry: Registry,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("STRATA_ROOT", str(debian_root))
    work = tmp_path / "work"
    work.mkdir()
    (work / "Dockerfile").write_text(f"FROM {BASE}\nRUN echo built > /built\n")
    monkeypatch.chdir(work)
    strata.push(BASE, f"{registry.address}/app:1")

    blocks = examples(PAGE.read_text())
    assert len(blocks) >= 8
    scope: dict[str, object] = {}
    for number, block in enumerate(blocks, start=1):
        code = block.replace("localhost:5000", registry.address)
        exec(compile(code, f"{PAGE.name} example {number}", "exec"), scope)
    printed = capsys.readouterr().out
    assert "Step 2/2 : RUN echo built > /built" in printed
    assert "No such image: no-such-image" in printed
    assert (work / "apps.tar").is_file() and (work / "other-store").is_dir()
