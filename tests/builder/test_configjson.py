"""The incremental config encoder writes what `ImageConfig.to_json` writes, byte for byte."""

from __future__ import annotations

import random
from dataclasses import replace

from strata.builder.configjson import ConfigEncoder
from strata.oci.config import ContainerConfig, History, ImageConfig


def _steps(rng: random.Random, count: int) -> list[ImageConfig]:
    """Configs as a build's steps make them: ENV (new or changed), LABEL, CMD..."""
    config = ImageConfig("amd64", "linux", config=ContainerConfig(env=("PATH=/bin",)))
    out = []
    for i in range(count):
        env = dict(e.partition("=")[::2] for e in config.config.env)
        kind = rng.choice(["new env", "changed env", "label", "cmd", "odd text"])
        inner = config.config
        if kind == "new env":
            env[f"V{i}"] = f"value {i}"
        elif kind == "changed env" and len(env) > 1:
            env[rng.choice(sorted(env))] = f'changed {i} ü "q" \\'
        elif kind == "label":
            inner = replace(inner, labels={**inner.labels, f"l{i}": "<&>"})
        elif kind == "cmd":
            inner = replace(inner, cmd=("sh", "-c", f"echo {i}"))
        else:
            env[f"S{i}"] = "\u2028 tab\t nul\x00 emoji \U0001f600"
        inner = replace(inner, env=tuple(f"{k}={v}" for k, v in env.items()))
        entry = History(created=f"2026-01-01T00:00:{i % 60:02d}Z", created_by=f"step {i}")
        config = replace(config, config=inner, history=(*config.history, entry))
        if rng.random() < 0.05:  # a history rewritten, not extended
            config = replace(config, history=config.history[1:])
        out.append(config)
    return out


def test_same_bytes_as_to_json() -> None:
    encoder = ConfigEncoder()
    for config in _steps(random.Random(1), 300):
        assert encoder.encode(config) == config.to_json()


def test_a_lone_surrogate_falls_back_to_to_json() -> None:
    encoder = ConfigEncoder()
    configs = _steps(random.Random(2), 60)
    bad = configs[-1]
    bad = replace(bad, config=replace(bad.config, env=(*bad.config.env, "X=\udc80")))
    assert encoder.encode(configs[-2]) == configs[-2].to_json()
    assert encoder.encode(bad) == bad.to_json()
    labelled = replace(configs[-2], config=replace(configs[-2].config, labels={"x": "\udc80"}))
    assert encoder.encode(labelled) == labelled.to_json()
    assert encoder.encode(configs[-1]) == configs[-1].to_json()
