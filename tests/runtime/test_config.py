"""The typed container config reads records as every strata has written them."""

from __future__ import annotations

import json

import pytest

from strata.errors import InvalidArgument
from strata.runtime.config import ContainerConfig
from strata.runtime.guard import TIED_LABEL

# A record's ``config`` column as `Containers.create_on` wrote it before the config was typed
# (``run -it --rm --name web -v /srv:/data -e A=1 debian bash``).
TODAY = (
    '{"args": ["bash"], "entrypoint": null, "cmd": ["bash"], "env": ["PATH=/usr/bin:/bin",'
    ' "A=1"], "cwd": "/", "user": "", "hostname": "", "network": "host", "network_mode":'
    ' "default", "volumes": ["/srv:/data"], "tty": true, "interactive": true, "autoremove":'
    ' true, "stop_signal": "", "labels": {"strata.tied-to-owner": "true"}}'
)


def test_reads_todays_record_and_writes_it_back_byte_for_byte() -> None:
    config = ContainerConfig.from_json(json.loads(TODAY))
    assert config == ContainerConfig(
        args=("bash",),
        entrypoint=None,
        cmd=("bash",),
        env=("PATH=/usr/bin:/bin", "A=1"),
        cwd="/",
        user="",
        hostname="",
        network="host",
        network_mode="default",
        volumes=("/srv:/data",),
        tty=True,
        interactive=True,
        autoremove=True,
        stop_signal="",
        labels={TIED_LABEL: "true"},
    )
    assert config.tied
    assert json.dumps(config.to_json()) == TODAY


def test_an_older_record_takes_the_defaults_its_readers_assumed() -> None:
    config = ContainerConfig.from_json({"args": ["true"], "entrypoint": [], "cmd": None})
    assert (config.args, config.entrypoint, config.cmd) == (("true",), (), None)
    assert (config.network, config.network_mode, config.cwd, config.user) == ("host", "", "", "")
    assert (config.tty, config.interactive, config.autoremove, config.tied) == (
        False,
        False,
        False,
        False,
    )
    assert config.labels == {} and config.volumes == () and config.env == ()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected an object, got list"),
        ({"args": "true"}, "args: expected a list of strings"),
        ({"env": [1]}, "env: expected a list of strings"),
        ({"cwd": 3}, "cwd: expected a string, got int"),
        ({"labels": {"a": 1}}, "labels: expected an object of strings"),
    ],
)
def test_a_damaged_record_is_refused(raw: object, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ContainerConfig.from_json(raw)
