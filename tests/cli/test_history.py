"""``strata image history`` / ``strata history`` end to end, against Docker's output."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from strata.image.root import StoreRoot
from strata.image.store import ImageStore
from strata.oci.config import History
from tests.cli.tarballs import rootfs_tar
from tests.conftest import Strata, store_state
from tests.image.test_history import BASE, build_sample, make_image, store_layers

HEADER = (
    "IMAGE          CREATED       CREATED BY                                      SIZE      COMMENT"
)
# Tabs become spaces and CREATED BY stops at 45 characters, the last one "…", as in Docker.
RUN_SHORT = "/bin/sh -c apt-get update && apt-get install…"
ADD_SHORT = "/bin/sh -c #(nop) ADD file:07cdbabf782942af0…"


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def image_id(strata: Strata, now: datetime) -> str:
    return str(build_sample(strata.root, now).id)


def test_table_has_dockers_rows_and_columns(strata: Strata, image_id: str) -> None:
    short = image_id[7:19]
    expected = [
        HEADER,
        # An empty COMMENT keeps the SIZE column's padding, as Docker's tabwriter does.
        f'{short}   2 hours ago   /bin/sh -c #(nop)  CMD ["node", "app.js"]       0B        ',
        f"<missing>      2 hours ago   {RUN_SHORT}   193B      Add app",
        '<missing>      5 weeks ago   /bin/sh -c #(nop)  CMD ["/bin/bash"]            0B        ',
        "<missing>      5 weeks ago   /bin/sh -c #(nop)  LABEL maintainer=x           0B        ",
        f"<missing>      5 weeks ago   {ADD_SHORT}   6.37kB    ",
    ]
    out = strata("image", "history", "sample-app").stdout
    assert out.splitlines() == expected
    # The top-level alias and an ID prefix give the same table.
    assert strata("history", short).stdout == out


def test_no_trunc_shows_full_ids_and_commands(strata: Strata, image_id: str) -> None:
    lines = strata("history", "--no-trunc", "sample-app").stdout.splitlines()
    assert lines[1].startswith(image_id + "   ")
    assert (
        "/bin/sh -c apt-get update && apt-get install -y nodejs && rm -rf /var/cache/apt"
        in (lines[2])
    )
    assert "…" not in "".join(lines)


def test_quiet_prints_ids_only(strata: Strata, image_id: str) -> None:
    out = strata("history", "-q", "sample-app").stdout
    assert out.splitlines() == [image_id[7:19]] + ["<missing>"] * 4
    assert strata("history", "-q", "--no-trunc", "sample-app").stdout.splitlines()[0] == image_id


@pytest.mark.parametrize(
    ("tz", "suffix", "shift"),
    [("UTC", "Z", timedelta(0)), ("Asia/Kolkata", "+05:30", timedelta(hours=5, minutes=30))],
)
def test_human_false_prints_rfc3339_in_local_time_and_bytes(
    strata: Strata,
    image_id: str,
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
    tz: str,
    suffix: str,
    shift: timedelta,
) -> None:
    monkeypatch.setenv("TZ", tz)
    recent = (now - timedelta(hours=2) + shift).strftime("%Y-%m-%dT%H:%M:%S") + suffix
    for flag in ("-H=false", "--human=false"):
        lines = strata("history", flag, "sample-app").stdout.splitlines()
        assert re.split(r"\s{2,}", lines[0]) == [
            "IMAGE",
            "CREATED AT",
            "CREATED BY",
            "SIZE",
            "COMMENT",
        ]
        row = lines[2].split()
        assert row[:2] == ["<missing>", recent]
        assert row[-3:] == ["193", "Add", "app"]
        assert lines[-1].split()[-1] == "6372"


def test_json_lines_have_dockers_keys_and_escaping(strata: Strata, image_id: str) -> None:
    lines = strata("history", "--format", "json", "sample-app").stdout.splitlines()
    assert len(lines) == 5
    # Go's encoder: keys sorted, HTML characters escaped, "…" kept as UTF-8.
    assert '"ID":"\\u003cmissing\\u003e"' in lines[1]
    assert "\\u0026\\u0026" in lines[1]
    docs = [json.loads(line) for line in lines]
    assert [list(doc) for doc in docs] == [
        ["Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"]
    ] * 5
    assert docs[1]["ID"] == "<missing>"
    assert docs[1]["CreatedBy"] == RUN_SHORT
    assert docs[1]["CreatedSince"] == "2 hours ago"
    assert (docs[0]["ID"], docs[0]["Size"], docs[1]["Size"]) == (image_id[7:19], "0B", "193B")
    assert docs[1]["Comment"] == "Add app"
    assert strata("history", "--format", "{{json .}}", "sample-app").stdout.splitlines() == lines
    out = strata("history", "--format", "json", "-H=false", "--no-trunc", "sample-app").stdout
    raw = json.loads(out.splitlines()[4])
    assert raw["Size"] == "6372" and raw["CreatedAt"] == raw["CreatedSince"]
    assert raw["CreatedBy"].endswith("file:07cdbabf782942af0fa2e9c5ef6b6e8ad1d2de8a4b2c in / ")


def test_templates_plain_and_table(strata: Strata, image_id: str) -> None:
    out = strata("history", "--format", "{{.ID}}|{{.Size}}|{{.Comment}}", "sample-app").stdout
    assert out.splitlines() == [
        f"{image_id[7:19]}|0B|",
        "<missing>|193B|Add app",
        "<missing>|0B|",
        "<missing>|0B|",
        "<missing>|6.37kB|",
    ]
    table = strata("history", "--format", "table {{.ID}}\\t{{.CreatedBy}}", "sample-app").stdout
    lines = table.splitlines()
    assert lines[0] == "IMAGE          CREATED BY"
    assert lines[2] == f"<missing>      {RUN_SHORT}"


def test_files_lists_what_each_layer_did(strata: Strata, image_id: str) -> None:
    out = strata("image", "history", "--files", "sample-app").stdout
    short = image_id[7:19]
    assert out.splitlines() == [
        HEADER,
        # An empty COMMENT keeps the SIZE column's padding, as Docker's tabwriter does.
        f'{short}   2 hours ago   /bin/sh -c #(nop)  CMD ["node", "app.js"]       0B        ',
        f"<missing>      2 hours ago   {RUN_SHORT}   193B      Add app",
        "    added 2 files (43B), changed 1 (150B), deleted 3; hides 6.35kB from lower layers",
        "      A   33B  /app/app.js",
        "      A   10B  /tmp/new",
        "      C  150B  /etc/passwd (was 100B)",
        "      D   5kB  /var/cache/apt/ (2 files)",
        "      D 1.2kB  /tmp/* (2 files)",
        "      D   50B  /app/old",
        '<missing>      5 weeks ago   /bin/sh -c #(nop)  CMD ["/bin/bash"]            0B        ',
        "<missing>      5 weeks ago   /bin/sh -c #(nop)  LABEL maintainer=x           0B        ",
        f"<missing>      5 weeks ago   {ADD_SHORT}   6.37kB    ",
        "    added 7 files (6.37kB)",
        "      A  3kB  /var/cache/apt/a.bin",
        "      A  2kB  /var/cache/apt/b.bin",
        "      A 700B  /tmp/sub/y",
        "      A 500B  /tmp/x",
        "      A 100B  /etc/passwd",
        "",
        "Hidden by upper layers: 6.35kB of 6.57kB (shipped in the image, seen by no container)",
    ]


def test_files_top_and_exact_bytes(strata: Strata, image_id: str) -> None:
    out = strata("history", "--files", "--top", "1", "-H=false", "sample-app").stdout
    lines = out.splitlines()
    at = lines.index(
        "    added 2 files (43), changed 1 (150), deleted 3; hides 6350 from lower layers"
    )
    assert lines[at + 1 : at + 4] == [
        "      A   33  /app/app.js",
        "      C  150  /etc/passwd (was 100)",
        "      D 5000  /var/cache/apt/ (2 files)",
    ]
    assert lines[-1].startswith("Hidden by upper layers: 6350 of 6565 ")


def test_files_as_json(strata: Strata, image_id: str) -> None:
    lines = strata("history", "--files", "--format", "json", "sample-app").stdout.splitlines()
    docs = [json.loads(line) for line in lines]
    assert [("Files" in doc) for doc in docs] == [False, True, False, False, True]
    files = docs[1]["Files"]
    assert (files["Hides"], files["ContentSize"]) == (6350, 193)
    assert files["Added"]["Count"] == 2 and files["Added"]["Size"] == 43
    assert files["Changed"]["Largest"] == [
        {"Path": "/etc/passwd", "Size": 150, "LowerSize": 100, "Files": 1}
    ]
    assert files["Deleted"]["Largest"][1] == {
        "Path": "/tmp/*",
        "Size": 0,
        "LowerSize": 1200,
        "Files": 2,
    }


def test_imported_image_has_one_row_with_its_comment(strata: Strata, tmp_path: Path) -> None:
    rootfs = rootfs_tar(tmp_path / "rootfs.tar")
    new_id = strata("import", "-m", "from a tarball", str(rootfs), "plain:v1").stdout.strip()
    lines = strata("history", "plain:v1").stdout.splitlines()
    assert len(lines) == 2
    # Docker counts file bytes only: os-release (26) and hello (21).
    assert lines[1].startswith(new_id[7:19] + "   ")
    assert lines[1].endswith("   47B       from a tarball")


def test_unknown_and_old_times_show_as_na(strata: Strata, monkeypatch: pytest.MonkeyPatch) -> None:
    with StoreRoot(strata.root) as root:
        images = ImageStore(root)
        entries = [
            History(created_by="no time"),
            History(created="1970-01-01T00:00:00Z", created_by="epoch", empty_layer=True),
        ]
        make_image(images, store_layers(images, BASE), entries, name="old")
    monkeypatch.setenv("TZ", "UTC")
    rows = [re.split(r"\s{2,}", line) for line in strata("history", "old").stdout.splitlines()]
    assert [row[1:3] for row in rows[1:]] == [["N/A", "epoch"], ["N/A", "no time"]]
    rows = [
        re.split(r"\s{2,}", line)
        for line in strata("history", "-H=false", "old").stdout.split("\n")
    ]
    assert [row[1] for row in rows[1:3]] == ["1970-01-01T00:00:00Z", "0001-01-01T00:00:00Z"]


def test_history_changes_nothing(strata: Strata, image_id: str) -> None:
    before = store_state(strata.root)
    strata("history", "--files", "sample-app")
    assert store_state(strata.root) == before


def test_bad_input_is_one_line(strata: Strata, image_id: str) -> None:
    assert strata.fail("history", "x") == "Error: No such image: x"
    assert strata.fail("image", "history", "nope:1") == "Error: No such image: nope:1"
    # As Docker: a template that parses is run only on an image that exists.
    assert strata.fail("history", "--format", "{{.Nope}}", "x") == "Error: No such image: x"
    assert strata.fail("history", "--format", "{{.Nope}}", "sample-app") == (
        'Error: template parsing error: template: :1:2: executing "" at <.Nope>: '
        "can't evaluate field Nope in type *image.historyContext"
    )
    assert "template parsing error" in strata.fail("history", "--format", "{{.ID", "sample-app")
    assert strata.fail("history", "--files", "--top", "0", "sample-app") == (
        "Error: invalid --top '0': must be a whole number of at least 1"
    )
    assert "at least 1" in strata.fail("history", "--files", "--top", "many", "sample-app")
    assert "only applies with --files" in strata.fail("history", "--top", "3", "sample-app")
    assert "expected true or false" in strata.fail("history", "-H=maybe", "sample-app")
    assert "not -q or a template" in strata.fail("history", "--files", "-q", "sample-app")
