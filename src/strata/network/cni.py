"""Calling CNI plugins as the CNI spec (1.0.0) says: a chain of plugins run one by one.

Each plugin is an executable in ``CNI_PATH`` given ``CNI_COMMAND`` (ADD, DEL, CHECK),
``CNI_CONTAINERID``, ``CNI_NETNS``, ``CNI_IFNAME`` and ``CNI_PATH`` in its environment and its
network configuration on stdin; on ADD each plugin after the first gets the previous one's
result as ``prevResult``, and DEL runs the chain backwards. A plugin's error is JSON on stdout
(``{"code", "msg", "details"}``), which becomes one line.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strata.errors import NetworkError

CNI_VERSION = "1.0.0"
PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")


def plugin_path() -> str:
    """``CNI_PATH``: ``STRATA_CNI_PATH`` or the directories Debian and upstream install to."""
    configured = os.environ.get("STRATA_CNI_PATH")
    if configured:
        return configured
    return ":".join(d for d in PLUGIN_DIRS if os.path.isdir(d)) or PLUGIN_DIRS[0]


@dataclass(frozen=True, slots=True)
class Invocation:
    """Who a chain runs for: the container, its namespace and interface."""

    container_id: str
    netns: Path
    ifname: str = "eth0"


def _find(kind: str, path: str) -> str:
    for directory in path.split(":"):
        candidate = os.path.join(directory, kind)
        if os.access(candidate, os.X_OK):
            return candidate
    raise NetworkError(
        f"CNI plugin {kind!r} not found in {path} (install containernetworking-plugins)"
    )


def _call(
    command: str, plugin: Mapping[str, Any], conflist: Mapping[str, Any], who: Invocation
) -> dict[str, Any]:
    path = plugin_path()
    kind = str(plugin["type"])
    executable = _find(kind, path)
    config = {"cniVersion": conflist["cniVersion"], "name": conflist["name"], **plugin}
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CNI_COMMAND": command,
        "CNI_CONTAINERID": who.container_id,
        "CNI_NETNS": str(who.netns),
        "CNI_IFNAME": who.ifname,
        "CNI_PATH": path,
    }
    done = subprocess.run(
        [executable],
        input=json.dumps(config).encode(),
        env=env,
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        raise NetworkError(f"CNI {kind} {command}: {_message(done.stdout, done.stderr)}")
    if command != "ADD" or not done.stdout.strip():
        return {}
    try:
        result = json.loads(done.stdout)
    except ValueError:
        raise NetworkError(f"CNI {kind} {command}: result is not JSON") from None
    if not isinstance(result, dict):
        raise NetworkError(f"CNI {kind} {command}: result is not an object")
    return result


def _message(stdout: bytes, stderr: bytes) -> str:
    try:
        error = json.loads(stdout)
    except ValueError:
        error = None
    if isinstance(error, dict) and error.get("msg"):
        details = f": {error['details']}" if error.get("details") else ""
        return f"{error['msg']}{details}".replace("\n", " ")
    text = (stderr or stdout).decode(errors="replace").strip()
    return " ".join(text.splitlines()) or "failed"


def add(conflist: Mapping[str, Any], who: Invocation) -> dict[str, Any]:
    """Run the chain's ADD; the last plugin's result. A failure undoes what was done."""
    result: dict[str, Any] = {}
    plugins = list(conflist["plugins"])
    try:
        for plugin in plugins:
            step = dict(plugin)
            if result:
                step["prevResult"] = result
            result = _call("ADD", step, conflist, who) or result
    except BaseException:
        delete(conflist, who, result)  # what the plugins before the failure made
        raise
    return result


def delete(
    conflist: Mapping[str, Any], who: Invocation, result: Mapping[str, Any] | None = None
) -> list[str]:
    """Run the chain's DEL, last plugin first, every plugin even if one fails; the failures.

    ``result``: ADD's, given as ``prevResult`` as the spec asks (the firewall plugin finds its
    rules by the addresses in it). DEL must succeed on what ADD never made (the CNI spec), so
    a teardown can always run it.
    """
    failures: list[str] = []
    for plugin in reversed(list(conflist["plugins"])):
        step = dict(plugin)
        if result:
            step["prevResult"] = dict(result)
        try:
            _call("DEL", step, conflist, who)
        except NetworkError as exc:
            failures.append(str(exc))
    return failures
