"""Dockerfile-syntax config changes (import -c, commit -c)."""

from __future__ import annotations

import pytest

from strata.errors import InvalidArgument
from strata.image.changes import apply_change, apply_changes
from strata.oci.config import ContainerConfig, ImageConfig

BASE = ContainerConfig(env=("PATH=/usr/bin:/bin", "LANG=C"), working_dir="/srv")
IMAGE = ImageConfig(architecture="amd64", os="linux", config=BASE)


def test_cmd_shell_and_exec_forms() -> None:
    assert apply_change(BASE, "CMD node app.js").cmd == ("/bin/sh", "-c", "node app.js")
    assert apply_change(BASE, 'CMD ["node", "app.js"]').cmd == ("node", "app.js")
    # Not valid JSON: shell form, as Docker does.
    assert apply_change(BASE, "CMD [node").cmd == ("/bin/sh", "-c", "[node")


def test_entrypoint_resets_cmd() -> None:
    config = apply_change(apply_change(BASE, "CMD x"), 'ENTRYPOINT ["/init"]')
    assert config.entrypoint == ("/init",)
    assert config.cmd is None


def test_env_forms_and_expansion() -> None:
    config = apply_change(BASE, 'ENV A=1 B="two words" PATH=$PATH:/opt/bin')
    assert config.env == ("PATH=/usr/bin:/bin:/opt/bin", "LANG=C", "A=1", "B=two words")
    assert apply_change(BASE, "ENV GREETING hello world").env[-1] == "GREETING=hello world"
    assert apply_change(BASE, "env LANG=C.UTF-8").env == ("PATH=/usr/bin:/bin", "LANG=C.UTF-8")


def test_label_expose_user_workdir_volume_onbuild() -> None:
    assert apply_change(BASE, 'LABEL a=b "c d"=e').labels == {"a": "b", "c d": "e"}
    # A JSON map in the config, so the order is the sorted one (as Go writes it).
    assert apply_change(BASE, "EXPOSE 80 53/udp 8000-8001").exposed_ports == (
        "53/udp",
        "80/tcp",
        "8000/tcp",
        "8001/tcp",
    )
    assert apply_change(BASE, "USER node").user == "node"
    assert apply_change(BASE, "WORKDIR app").working_dir == "/srv/app"
    assert apply_change(BASE, "WORKDIR /abs").working_dir == "/abs"
    assert apply_change(BASE, 'VOLUME ["/data", "/logs"]').volumes == ("/data", "/logs")
    assert apply_change(BASE, "VOLUME /data").volumes == ("/data",)
    assert apply_change(BASE, "ONBUILD RUN make").on_build == ("RUN make",)
    # The trigger is kept as written, unexpanded.
    assert apply_change(BASE, "onbuild  run  make $X").on_build == ("run  make $X",)


def test_words_expand_as_in_a_dockerfile() -> None:
    """The Dockerfile's shell-word rules, against Env as it is before each instruction."""
    config = apply_changes(
        IMAGE,
        [
            "ENV A=1",
            "ENV B=$A C=${A:-z} D=${NOPE:-dflt} E=\\$A F='$A' G=${LANG}x",
            "ENV H=1 I=$H",  # H is not set yet when I expands
            'ENV P="80 443/udp" W=../w',
            "EXPOSE $P",
            "WORKDIR $W",
            "LABEL $A=$A",
            "USER ${A}:${A}",
            "VOLUME $W /x",
        ],
    ).config
    assert config.env == (
        *BASE.env,
        "A=1",
        "B=1",
        "C=1",
        "D=dflt",
        "E=$A",
        "F=$A",
        "G=Cx",
        "H=1",
        "I=",
        "P=80 443/udp",
        "W=../w",
    )
    assert config.exposed_ports == ("443/udp", "80/tcp")
    assert config.working_dir == "/w"
    assert config.labels == {"1": "1"}
    assert config.user == "1:1"
    assert config.volumes == ("../w", "/x")
    # CMD and ENTRYPOINT are not expanded: the shell does that when the container runs.
    assert apply_change(BASE, "CMD echo $A").cmd == ("/bin/sh", "-c", "echo $A")
    assert apply_change(BASE, 'CMD ["$A"]').cmd == ("$A",)


def test_entrypoint_keeps_a_cmd_set_by_an_earlier_change() -> None:
    """moby's ``cmdSet``: within one commit, ``-c CMD`` then ``-c ENTRYPOINT`` keeps the CMD."""
    changes = ["CMD x", 'ENTRYPOINT ["/init"]']
    config = apply_changes(IMAGE, changes).config
    assert (config.entrypoint, config.cmd) == (("/init",), ("/bin/sh", "-c", "x"))


def test_one_change_may_hold_several_lines_and_a_healthcheck() -> None:
    config = apply_change(BASE, "ENV A=1 \\\n  B=2\nLABEL x=y")
    assert config.env[-2:] == ("A=1", "B=2") and config.labels == {"x": "y"}
    check = apply_change(BASE, 'HEALTHCHECK --interval=5s --retries=2 CMD ["curl", "x"]')
    assert check.healthcheck == {
        "Test": ["CMD", "curl", "x"],
        "Interval": 5_000_000_000,
        "Retries": 2,
    }
    assert apply_change(BASE, "HEALTHCHECK NONE").healthcheck == {"Test": ["NONE"]}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("", "empty"),
        ("RUN make", "RUN is not a valid change command"),
        ("FROM debian", "FROM is not a valid change command"),
        ("CMD", "CMD requires an argument"),
        # The parser's and the shell-word expansion's own reasons, as Docker gives them.
        ("ENV =x", "ENV names can not be blank"),
        ("ENV A", "ENV must have two arguments"),
        ("LABEL a", "LABEL must have two arguments"),
        ("EXPOSE http", "invalid port"),
        ("EXPOSE 80/xyz", "invalid proto"),
        ("EXPOSE 70000", "invalid port range"),
        ('LABEL "a=b', "unexpected end of statement while looking for matching double-quote"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ('VOLUME ""', "VOLUME specified can not be an empty string"),
        ("ENV A=${B:?unset}", "B: unset"),
        ("# a comment", "file with no instructions"),
        ("ENV A=1\nRUN x", "RUN is not a valid change command"),
    ],
)
def test_bad_changes_name_the_change_and_reason(change: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_change(BASE, change)
    message = str(info.value)
    assert reason in message
    assert repr(change) in message
    assert "\n" not in message
