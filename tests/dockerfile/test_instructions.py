"""Typed instructions: every instruction's form, flag checks, errors with file:line, stages."""

from __future__ import annotations

import pytest

from strata.dockerfile.ast import Heredoc
from strata.dockerfile.flags import FlagError, parse_duration, parse_flags, suggest
from strata.dockerfile.instructions import (
    Add,
    Arg,
    Cmd,
    Copy,
    Entrypoint,
    Env,
    Expose,
    From,
    Healthcheck,
    Instruction,
    Label,
    Maintainer,
    Onbuild,
    Run,
    Shell,
    Stopsignal,
    User,
    Volume,
    Workdir,
    parse_instruction,
    parse_instructions,
    parse_stages,
)
from strata.dockerfile.parser import parse
from strata.errors import DockerfileError


def _one(line: str) -> Instruction:
    (instruction,) = parse_instructions(parse(line))
    return instruction


def _error(text: str, filename: str = "Dockerfile") -> str:
    with pytest.raises(DockerfileError) as info:
        parse_stages(parse(text, filename=filename))
    message = str(info.value)
    assert "\n" not in message
    return message


# -- each instruction ----------------------------------------------------------------------------


def test_from() -> None:
    plain = _one("FROM debian:bookworm")
    assert plain == From(plain.node, "debian:bookworm")
    got = _one("FROM --platform=$BUILDPLATFORM golang:1.22 as Builder")
    assert isinstance(got, From)
    assert (got.image, got.stage_name, got.platform) == ("golang:1.22", "builder", "$BUILDPLATFORM")
    scratch = _one("FROM scratch")
    assert isinstance(scratch, From)
    assert (scratch.image, scratch.stage_name, scratch.platform) == ("scratch", None, None)


def test_run_both_forms() -> None:
    shell = _one("RUN echo $HOME && ls")
    assert isinstance(shell, Run)
    assert (shell.command, shell.shell_form) == (("echo $HOME && ls",), True)
    assert (shell.network, shell.security, shell.mounts) == ("default", "sandbox", ())
    exec_form = _one('RUN ["ls", "-l"]')
    assert isinstance(exec_form, Run)
    assert (exec_form.command, exec_form.shell_form) == (("ls", "-l"), False)


def test_run_flags() -> None:
    got = _one(
        "RUN --mount=type=cache,target=/root/.cache --mount=type=secret,id=x "
        "--network=host --security=insecure make"
    )
    assert isinstance(got, Run)
    assert got.mounts == ("type=cache,target=/root/.cache", "type=secret,id=x")
    assert (got.network, got.security, got.command) == ("host", "insecure", ("make",))


def test_run_heredoc() -> None:
    got = _one("RUN <<EOF\nset -e\necho $A\nEOF")
    assert isinstance(got, Run)
    assert got.command == ("<<EOF",)
    assert got.heredocs == (Heredoc("EOF", "set -e\necho $A\n", expand=True),)


def test_cmd_and_entrypoint() -> None:
    cmd = _one('CMD ["node", "app.js"]')
    assert isinstance(cmd, Cmd)
    assert (cmd.command, cmd.shell_form) == (("node", "app.js"), False)
    shell = _one("CMD node app.js")
    assert isinstance(shell, Cmd)
    assert (shell.command, shell.shell_form) == (("node app.js",), True)
    entry = _one("ENTRYPOINT []")
    assert isinstance(entry, Entrypoint)
    assert (entry.command, entry.shell_form) == ((), False)


def test_env_and_label_pairs() -> None:
    env = _one('ENV A=1 B="two words" C=')
    assert isinstance(env, Env)
    assert env.pairs == (("A", "1"), ("B", '"two words"'), ("C", ""))
    legacy = _one("ENV PATH /usr/local/bin:$PATH")
    assert isinstance(legacy, Env)
    assert legacy.pairs == (("PATH", "/usr/local/bin:$PATH"),)
    label = _one('LABEL org.opencontainers.image.title="x y" version=1')
    assert isinstance(label, Label)
    assert label.pairs == (("org.opencontainers.image.title", '"x y"'), ("version", "1"))


def test_arg_pairs() -> None:
    got = _one('ARG VERSION=1.2 TARGET NAME="a b" EMPTY=')
    assert isinstance(got, Arg)
    assert got.pairs == (("VERSION", "1.2"), ("TARGET", None), ("NAME", '"a b"'), ("EMPTY", ""))


def test_copy() -> None:
    got = _one(
        "COPY --from=build --chown=app:app --chmod=0755 --link --parents "
        "--exclude=*.md --exclude=tmp a b/ /dst/"
    )
    assert isinstance(got, Copy)
    assert (got.sources, got.dest) == (("a", "b/"), "/dst/")
    assert (got.from_stage, got.chown, got.chmod) == ("build", "app:app", "0755")
    assert (got.link, got.parents, got.exclude) == (True, True, ("*.md", "tmp"))
    plain = _one('COPY ["my file", "/dst"]')
    assert isinstance(plain, Copy)
    assert (plain.sources, plain.dest, plain.from_stage, plain.chown) == (
        ("my file",),
        "/dst",
        None,
        None,
    )
    assert (plain.link, plain.parents, plain.exclude, plain.heredocs) == (False, False, (), ())


def test_copy_heredocs() -> None:
    got = _one("COPY <<-A <<'B' file /dst/\n\tone $X\nA\ntwo $X\nB")
    assert isinstance(got, Copy)
    assert got.sources == ("file",)
    assert got.heredocs == (
        Heredoc("A", "\tone $X\n", expand=True, chomp=True),
        Heredoc("B", "two $X\n", expand=False),
    )
    assert [doc.body for doc in got.heredocs] == ["one $X\n", "two $X\n"]


def test_add() -> None:
    got = _one(
        "ADD --checksum=sha256:abc --keep-git-dir=true --unpack=false --chown=1 "
        "https://example.com/a.tar.gz /x/"
    )
    assert isinstance(got, Add)
    assert (got.sources, got.dest, got.chown) == (("https://example.com/a.tar.gz",), "/x/", "1")
    assert (got.checksum, got.keep_git_dir, got.unpack) == ("sha256:abc", True, False)
    plain = _one("ADD app.tar /srv")
    assert isinstance(plain, Add)
    assert (plain.checksum, plain.keep_git_dir, plain.unpack, plain.link) == (
        None,
        None,
        None,
        False,
    )


def test_single_value_instructions() -> None:
    workdir = _one("WORKDIR /usr/src/app")
    assert isinstance(workdir, Workdir)
    assert workdir.path == "/usr/src/app"
    user = _one("USER node:node")
    assert isinstance(user, User)
    assert user.user == "node:node"
    signal = _one("STOPSIGNAL SIGQUIT")
    assert isinstance(signal, Stopsignal)
    assert signal.signal == "SIGQUIT"
    maintainer = _one("MAINTAINER Jo Bloggs <jo@example.com>")
    assert isinstance(maintainer, Maintainer)
    assert maintainer.maintainer == "Jo Bloggs <jo@example.com>"


def test_expose_volume_and_sh() -> None:
    expose = _one("EXPOSE 8080 3000/tcp 53/udp")
    assert isinstance(expose, Expose)
    assert expose.ports == ("3000/tcp", "53/udp", "8080")
    volume = _one('VOLUME ["/data", "/logs"]')
    assert isinstance(volume, Volume)
    assert volume.paths == ("/data", "/logs")
    words = _one("VOLUME /a /b")
    assert isinstance(words, Volume)
    assert words.paths == ("/a", "/b")
    shell = _one('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]')
    assert isinstance(shell, Shell)
    assert shell.shell == ("/bin/bash", "-eo", "pipefail", "-c")


def test_healthcheck() -> None:
    got = _one(
        "HEALTHCHECK --interval=30s --timeout=1m30s --start-period=1.5s "
        "--start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1"
    )
    assert isinstance(got, Healthcheck)
    assert got.test == ("CMD-SHELL", "curl -f http://localhost/ || exit 1")
    assert (got.interval, got.timeout) == (30 * 10**9, 90 * 10**9)
    assert (got.start_period, got.start_interval, got.retries) == (1_500_000_000, 500_000_000, 3)
    assert not got.disabled
    exec_form = _one('HEALTHCHECK CMD ["/bin/check", "-q"]')
    assert isinstance(exec_form, Healthcheck)
    assert exec_form.test == ("CMD", "/bin/check", "-q")
    assert exec_form.interval == exec_form.retries == 0
    none = _one("HEALTHCHECK none")
    assert isinstance(none, Healthcheck)
    assert none.test == ("NONE",)
    assert none.disabled


def test_onbuild() -> None:
    got = _one("ONBUILD RUN --network=none make install")
    assert isinstance(got, Onbuild)
    assert got.expression == "RUN --network=none make install"
    assert isinstance(got.trigger, Run)
    assert got.trigger.network == "none"
    heredoc = _one("onbuild copy <<EOF /x\nhi\nEOF")
    assert isinstance(heredoc, Onbuild)
    assert heredoc.expression == "copy <<EOF /x\nhi\nEOF"
    assert isinstance(heredoc.trigger, Copy)
    assert heredoc.trigger.heredocs == (Heredoc("EOF", "hi\n"),)


def test_instructions_keep_their_node() -> None:
    df = parse("FROM a\n\nRUN x \\\n  y\n")
    run = parse_instructions(df)[1]
    assert run.node is df.nodes[1]
    assert (run.node.start_line, run.node.end_line, run.node.original) == (3, 4, "RUN x   y")


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("FOO bar", "unknown instruction: FOO (did you mean FROM?)"),
        ("cpoy a b", "unknown instruction: cpoy (did you mean copy?)"),
        ("BANANAS", "unknown instruction: BANANAS"),
        ("COPY onlyone", "COPY requires at least two arguments, but only one was provided."),
        ("ADD onlyone", "ADD requires at least two arguments"),
        ("COPY a <<EOF\nEOF", "COPY cannot accept a heredoc as a destination"),
        ("ENV", "ENV requires at least one argument"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("ENV =x", "ENV names can not be blank"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ('VOLUME [""]', "VOLUME specified can not be an empty string"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("USER", "USER requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("RUN", "RUN requires at least one argument"),
        ('CMD ["a", ["b"]]', "when using JSON array syntax, arrays must be comprised of strings"),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD MAINTAINER x", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("ONBUILD FROBNICATE x", "unknown instruction: FROBNICATE"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK CONNECT x", 'Unknown type "CONNECT" in HEALTHCHECK (try CMD)'),
        ("HEALTHCHECK --interval=5 CMD x", 'time: missing unit in duration "5"'),
        ("HEALTHCHECK --timeout=abc CMD x", 'time: invalid duration "abc"'),
        ("HEALTHCHECK --timeout=3y CMD x", 'time: unknown unit "y" in duration "3y"'),
        ("HEALTHCHECK --interval=10us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=x CMD x", 'strconv.ParseInt: parsing "x": invalid syntax'),
        ("HEALTHCHECK --retries=-2 CMD x", "--retries cannot be negative (-2)"),
        ("RUN --network=bridge x", 'invalid network mode "bridge"'),
        ("RUN --security=root x", 'security "root" is not valid'),
        ("RUN --mount=type=bind,from=$STAGE x", "'from' doesn't support variable expansion"),
        ("COPY --form=a b c", "unknown flag: --form (did you mean from?)"),
        ("COPY --chown a b", "missing a value on flag: --chown"),
        ("COPY --link= a b", "missing a value on flag: --link"),
        ("COPY --link=yes a b", "expecting boolean value for flag --link, not: yes"),
        ("COPY --from=a --from=b c d", "duplicate flag specified: --from"),
        ("ADD --from=a b c", "unknown flag: --from"),
        ("ENV --x=1 a=b", "unknown flag: --x"),
        ("WORKDIR --foo /x", "unknown flag: --foo"),
    ],
)
def test_instruction_errors(line: str, reason: str) -> None:
    message = _error(f"FROM base\n{line}\n", filename="ctx/Dockerfile.dev")
    assert message.startswith(f"ctx/Dockerfile.dev:2: {reason}")


# Ids without the word "shell": the suite is run with -k "not shell" beside the expander's tests.
@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("SHELL /bin/sh -c", "SHELL requires the arguments to be in JSON form"),
        ("SHELL []", "SHELL requires at least one argument"),
    ],
    ids=["not-json", "empty"],
)
def test_sh_instruction_errors(line: str, reason: str) -> None:
    assert _error(f"FROM base\n{line}\n") == f"Dockerfile:2: {reason}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("FROM", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a b", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS b c", "Dockerfile:1: FROM requires either one or three arguments"),
        (
            "FROM a AS 9lives",
            'Dockerfile:1: invalid name for build stage: "9lives", '
            "name can't start with a number or contain symbols",
        ),
        ("FROM a AS x\nFROM b AS X", 'Dockerfile:2: duplicate stage name "x"'),
        ("FROM --platfrom=x a", "Dockerfile:1: unknown flag: --platfrom (did you mean platform?)"),
        ("ARG A\nRUN x", "Dockerfile:2: no build stage in current context"),
        ("ARG A", "Dockerfile: dockerfile contains no stages to build"),
    ],
)
def test_stage_errors(text: str, message: str) -> None:
    assert _error(text + "\n") == message


def test_parse_instruction_uses_given_filename() -> None:
    node = parse("FROM a\nCOPY x\n").nodes[1]
    with pytest.raises(DockerfileError, match=r"^sub/Containerfile:2: COPY requires"):
        parse_instruction(node, filename="sub/Containerfile")


# -- stages --------------------------------------------------------------------------------------


def test_parse_stages() -> None:
    text = (
        "ARG BASE=debian:bookworm\n"
        "ARG VERSION\n"
        "FROM $BASE AS build\n"
        "ARG VERSION\n"
        "RUN make\n"
        "FROM scratch\n"
        "COPY --from=build /out /\n"
        'CMD ["/app"]\n'
    )
    meta, stages = parse_stages(parse(text))
    assert [arg.pairs for arg in meta] == [(("BASE", "debian:bookworm"),), (("VERSION", None),)]
    assert [(s.index, s.name, s.from_.image) for s in stages] == [
        (0, "build", "$BASE"),
        (1, None, "scratch"),
    ]
    assert [type(i).__name__ for i in stages[0].instructions] == ["Arg", "Run"]
    assert [type(i).__name__ for i in stages[1].instructions] == ["Copy", "Cmd"]


# -- flags and durations -------------------------------------------------------------------------


def test_flags_end_at_double_dash() -> None:
    flags = parse_flags(["--link", "--", "--from=x"], {"link": "bool", "from": "string"})
    assert flags.boolean("link")
    assert not flags.used("from")


def test_flag_kinds() -> None:
    flags = parse_flags(
        ["--a=FALSE", "--b=v", "--c=1", "--c=2"], {"a": "bool", "b": "string", "c": "strings"}
    )
    assert (flags.boolean("a"), flags.used("a")) == (False, True)
    assert (flags.string("b"), flags.strings("c")) == ("v", ("1", "2"))
    assert (flags.string("missing"), flags.strings("missing")) == (None, ())


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("0", 0),
        ("1ns", 1),
        ("1.5h", 5_400_000_000_000),
        ("2h45m", 9_900_000_000_000),
        ("300ms", 300_000_000),
        ("-1m", -60_000_000_000),
        ("+.5s", 500_000_000),
        ("1µs", 1_000),
        ("3us", 3_000),
    ],
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "1", ".s", "s", "1x", "-", "9999999999h", "1.2.3s"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(FlagError, match="^time: "):
        parse_duration(text)


def test_suggest() -> None:
    assert suggest("RUNN", ["RUN", "ENV"], case_sensitive=False) == "RUN"
    assert suggest("Runn", ["RUN", "ENV"], case_sensitive=False) == "run"
    assert suggest("xyzzy", ["RUN", "ENV"], case_sensitive=False) is None
    assert suggest("run", ["RUN"], case_sensitive=False) is None
