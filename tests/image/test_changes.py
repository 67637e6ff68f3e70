"""Dockerfile-syntax config changes (import -c, commit -c)."""

from __future__ import annotations

import pytest

from strata.errors import InvalidArgument
from strata.image.changes import apply_change
from strata.oci.config import ContainerConfig

BASE = ContainerConfig(env=("PATH=/usr/bin:/bin", "LANG=C"), working_dir="/srv")


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


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ("", "empty"),
        ("RUN make", "RUN is not a valid change command"),
        ("FROM debian", "FROM is not a valid change command"),
        ("CMD", "CMD requires an argument"),
        ("ENV =x", "is not KEY=VALUE"),
        ("ENV A", "needs a value"),
        ("EXPOSE http", "invalid port"),
        ("EXPOSE 80/xyz", "invalid proto"),
        ("EXPOSE 70000", "invalid port range"),
        ('LABEL "a=b', "unterminated quote"),
        ("ONBUILD ONBUILD RUN x", "isn't allowed as an ONBUILD trigger"),
    ],
)
def test_bad_changes_name_the_change_and_reason(change: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_change(BASE, change)
    message = str(info.value)
    assert reason in message
    assert repr(change) in message
    assert "\n" not in message
