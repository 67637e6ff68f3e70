"""Limits, restart policies and health checks as Docker's client and daemon take them: parsing,
checks, defaults, the OCI spec they make, and the health state's rules (no container runs)."""

from __future__ import annotations

import json

import pytest

from strata.errors import InvalidArgument
from strata.runtime.config import ContainerConfig
from strata.runtime.health import (
    HealthState,
    ProbeResult,
    given_healthcheck,
    merge_healthcheck,
    parse_duration,
    probe_of,
)
from strata.runtime.resources import (
    Resources,
    Ulimit,
    check,
    parse_bytes,
    parse_cpus,
    parse_ulimit,
)
from strata.runtime.restart import backoff, parse_restart, should_restart
from strata.runtime.spec import ProcessSpec, RunSpec, generate_config


def test_sizes_cpus_and_ulimits_parse_as_dockers_client() -> None:
    assert parse_bytes("32m", "-m") == 32 << 20
    assert parse_bytes("1.5g", "-m") == 3 << 29
    assert parse_bytes("64MiB", "-m") == 64 << 20
    assert parse_bytes("4096", "-m") == 4096
    with pytest.raises(
        InvalidArgument, match=r"""invalid argument "12x" for "-m, --memory" flag"""
    ):
        parse_bytes("12x", "-m, --memory")
    assert parse_cpus("1.5") == 1_500_000_000
    with pytest.raises(InvalidArgument, match="failed to parse abc as a rational number"):
        parse_cpus("abc")
    assert parse_ulimit("nofile=1024:2048") == Ulimit("nofile", 1024, 2048)
    assert parse_ulimit("nproc=10") == Ulimit("nproc", 10, 10)
    with pytest.raises(InvalidArgument, match="invalid ulimit type: foo"):
        parse_ulimit("foo=1")
    with pytest.raises(InvalidArgument, match="soft limit must be less than or equal"):
        parse_ulimit("nofile=10:5")


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        (Resources(memory=1024), "Minimum memory limit allowed is 6MB"),
        (
            Resources(memory=32 << 20, memory_swap=16 << 20),
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ),
        (
            Resources(memory_swap=64 << 20),
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ),
        (Resources(memory_reservation=1024), "Minimum memory reservation allowed is 6MB"),
        (Resources(nano_cpus=10_000 * 10**9), "Range of CPUs is from 0.01 to"),
        (Resources(cpuset_cpus="0-x"), "Invalid value 0-x for cpuset cpus"),
        (Resources(cpuset_cpus="4096"), "Requested CPUs are not available - requested 4096"),
        (Resources(cpu_shares=1), "the minimum allowed is 2"),
    ],
)
def test_limits_the_daemon_refuses(resources: Resources, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        check(resources)


def test_dockers_defaults_swap_twice_memory_and_unlimited_pids_as_null() -> None:
    assert check(Resources(memory=32 << 20)).memory_swap == 64 << 20
    assert check(Resources(memory=32 << 20, memory_swap=-1)).memory_swap == -1
    assert check(Resources(pids_limit=0)).pids_limit is None
    assert check(Resources(pids_limit=-1)).pids_limit is None
    assert check(Resources(pids_limit=50)).pids_limit == 50


def test_limits_reach_the_oci_spec(tmp_path: object) -> None:
    from pathlib import Path

    root = Path(str(tmp_path))
    (root / "bin").mkdir()
    resources = check(
        Resources(
            memory=32 << 20,
            memory_reservation=16 << 20,
            nano_cpus=1_500_000_000,
            cpu_shares=512,
            cpuset_cpus="0",
            pids_limit=50,
            ulimits=(Ulimit("nofile", 100, 200), Ulimit("nproc", 10, 20)),
        )
    )
    spec = RunSpec(rootfs=root, process=ProcessSpec(args=("true",)), hostname="h")
    config = generate_config(
        RunSpec(root, spec.process, "h", resources=resources), container_id="c"
    )
    limits = config["linux"]["resources"]
    assert limits["memory"] == {"limit": 32 << 20, "swap": 64 << 20, "reservation": 16 << 20}
    assert limits["cpu"] == {"shares": 512, "period": 100_000, "quota": 150_000, "cpus": "0"}
    assert limits["pids"] == {"limit": 50}
    assert limits["devices"]  # Docker's device rules stay
    assert config["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
        {"type": "RLIMIT_NPROC", "hard": 20, "soft": 10},
    ]
    # Without limits the spec is what it always was.
    plain = generate_config(spec, container_id="c")
    assert set(plain["linux"]["resources"]) == {"devices"}
    assert [r["type"] for r in plain["process"]["rlimits"]] == ["RLIMIT_NOFILE"]


def test_a_config_with_limits_round_trips_and_one_without_stores_no_new_keys() -> None:
    config = ContainerConfig(
        args=("sh",),
        resources=Resources(memory=32 << 20, pids_limit=5, ulimits=(Ulimit("nofile", 1, 2),)),
        restart="on-failure",
        restart_max=3,
        healthcheck={"Test": ["CMD", "true"], "Interval": 10**9},
    )
    assert ContainerConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    keys = set(ContainerConfig(args=("sh",)).to_json())
    assert not keys & {"resources", "restart", "healthcheck"}


def test_restart_policies_and_backoff_as_dockers() -> None:
    assert parse_restart("no") == ("no", 0)
    assert parse_restart("on-failure:2") == ("on-failure", 2)
    assert parse_restart("unless-stopped") == ("unless-stopped", 0)
    for text, message in [
        ("foo", "invalid restart policy 'foo'"),
        ("always:3", "maximum retry count cannot be used with restart policy 'always'"),
        ("on-failure:x", "maximum retry count must be an integer"),
        ("on-failure:-1", "maximum retry count cannot be negative"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            parse_restart(text)
    assert not should_restart("on-failure", 2, 0, 0, False)  # success: done
    assert should_restart("on-failure", 2, 1, 1, False)
    assert not should_restart("on-failure", 2, 1, 2, False)  # its retries are spent
    assert should_restart("always", 0, 0, 99, False)
    assert not should_restart("always", 0, 137, 0, True)  # stopped by the user
    assert backoff(0.0, 0.0) == 0.1
    assert backoff(0.1, 0.5) == 0.2
    assert backoff(40.0, 0.5) == 60.0
    assert backoff(6.4, 12.0) == 0.1  # a run of 10 s starts the back-off over


def test_healthcheck_options_merge_over_the_images() -> None:
    assert parse_duration("1s", "--health-interval") == 10**9
    assert parse_duration("1m30s", "--health-interval") == 90 * 10**9
    assert parse_duration("500ms", "--health-interval") == 5 * 10**8
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration("soon", "--health-interval")
    image = {"Test": ["CMD-SHELL", "curl -f localhost"], "Interval": 5 * 10**9, "Retries": 4}
    given = given_healthcheck(interval=10**9)
    assert merge_healthcheck(image, given) == {
        "Test": ["CMD-SHELL", "curl -f localhost"],
        "Interval": 10**9,
        "Retries": 4,
    }
    disabled = merge_healthcheck(image, given_healthcheck(disable=True))
    assert disabled is not None and disabled["Test"] == ["NONE"]  # the rest merged, as Docker
    assert probe_of(disabled) is None
    with pytest.raises(InvalidArgument, match="--no-healthcheck conflicts with --health-\\*"):
        given_healthcheck(cmd="true", disable=True)
    probe = probe_of(image)
    assert probe is not None
    assert (probe.command, probe.interval, probe.timeout, probe.retries) == (
        ("/bin/sh", "-c", "curl -f localhost"),
        5.0,
        30.0,
        4,
    )


def test_health_turns_healthy_then_unhealthy_after_its_retries() -> None:
    probe = probe_of({"Test": ["CMD", "x"], "Retries": 2})
    assert probe is not None
    ok, bad = ProbeResult("s", "e", 0, "ok"), ProbeResult("s", "e", 1, "no")
    state = HealthState()
    state = state.after(bad, probe, in_start_period=True)
    assert (state.status, state.failing_streak, len(state.log)) == ("starting", 0, 1)
    state = state.after(ok, probe, in_start_period=False)
    assert (state.status, state.failing_streak) == ("healthy", 0)
    state = state.after(bad, probe, in_start_period=False)
    assert (state.status, state.failing_streak) == ("healthy", 1)
    state = state.after(bad, probe, in_start_period=False)
    assert (state.status, state.failing_streak) == ("unhealthy", 2)
    for _ in range(5):
        state = state.after(bad, probe, in_start_period=False)
    assert len(state.log) == 5  # Docker keeps the last five
    assert HealthState.from_json(json.loads(json.dumps(state.to_json()))) == state


def test_update_keeps_a_swap_limit_and_gives_one_where_there_was_none() -> None:
    limited = check(Resources(memory=32 << 20, memory_swap=96 << 20))
    assert limited.updated({"memory": 64 << 20}).memory_swap == 96 << 20
    assert Resources().updated({"memory": 64 << 20}).memory_swap == 128 << 20
    unlimited_swap = check(Resources(memory=32 << 20, memory_swap=-1))
    assert unlimited_swap.updated({"memory": 64 << 20}).memory_swap == -1
    lifted = check(Resources(pids_limit=10).updated({"pids_limit": 0}), update=True)
    assert lifted.pids_limit == 0  # as Docker's update records a lifted limit


@pytest.mark.parametrize(
    "raw",
    [
        {"restart": "always"},
        {"restart": {"name": "always", "max": "3"}},
        {"resources": {"memory": "32m"}},
        {"resources": {"ulimits": [["nofile", "x"]]}},
        {"healthcheck": ["CMD", "true"]},
    ],
)
def test_a_damaged_life_field_is_refused_as_a_damaged_record(raw: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument, match="container config"):
        ContainerConfig.from_json({"args": ["true"], **raw})
