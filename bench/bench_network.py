"""Bridge networks, side by side: `run --rm -p 8080:80 IMAGE true`, and a published port's
throughput.

    python bench/bench_network.py [--runs 10] [--requests 2000] [--only run,throughput]

* run:        `strata run --rm -p 8080:80 debian:bookworm true` (default bridge: CNI ADD+DEL)
              against strata with `--network host` (the cost of the bridge), `docker run` on a
              network made with `docker network create` (the anchors' Docker has no default
              bridge) and `podman run` (netavark, runc).
* throughput: a small HTTP/1.0 server (perl, one connection per request) in a container
              published on a host port; a Python client on the host makes --requests requests
              to 127.0.0.1:PORT one after another; requests per second, for each tool.

Medians of --runs; ratios strata/peer.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import STRATA, markdown_table, median, peers_env, run

HTTPD = """\
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalPort => 80, Listen => 128, ReuseAddr => 1) or die "$!";
while (my $c = $s->accept) {
  while (my $l = <$c>) { last if $l =~ /^\\r?\\n$/; }
  print $c "HTTP/1.0 200 OK\\r\\nContent-Length: 6\\r\\n\\r\\nhello\\n";
  close $c;
}
"""
DOCKER_NET = "strata-bench-net"
PODMAN = ["podman", "run", "--runtime", "runc", "--ulimit", "nproc=1024:1024",
          "--ulimit", "nofile=1024:1024"]  # fmt: skip
PODMAN_IMAGE = "localhost/debian:bookworm"


def bench_run(env: dict[str, str], runs: int) -> list[list[str]]:
    argv = {
        "strata (bridge, -p)": [*STRATA, "run", "--rm", "-p", "8080:80", "debian:bookworm", "true"],
        "strata (host)": [*STRATA, "run", "--rm", "--network", "host", "debian:bookworm", "true"],
        "docker (bridge, -p)": ["docker", "run", "--rm", "--network", DOCKER_NET, "-p", "8080:80",
                                "debian:bookworm", "true"],
        "podman (bridge, -p)": [*PODMAN, "--rm", "-p", "8080:80", PODMAN_IMAGE, "true"],
    }  # fmt: skip
    for command in argv.values():  # warm every path once
        run(command, env)
    times: dict[str, list[float]] = {name: [] for name in argv}
    for _ in range(runs):
        for name, command in argv.items():
            times[name].append(run(command, env))
    s = median(times["strata (bridge, -p)"])
    return [
        [name, f"{median(v) * 1000:.0f} ms", f"{s / median(v):.2f}"] for name, v in times.items()
    ]


def _requests(port: int, count: int) -> float:
    """Requests per second of ``count`` sequential HTTP/1.0 requests to 127.0.0.1:port."""
    deadline = time.monotonic() + 30
    while True:  # the server may still be starting
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if conn.recv(64).startswith(b"HTTP/1.0 200"):
                    break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"no answer on port {port}")
        time.sleep(0.1)
    start = time.perf_counter()
    for _ in range(count):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            while conn.recv(4096):
                pass
    return count / (time.perf_counter() - start)


def bench_throughput(env: dict[str, str], requests: int, work: Path) -> list[list[str]]:
    script = work / "httpd.pl"
    script.write_text(HTTPD)
    mount = f"{script}:/httpd.pl:ro"
    tools = {
        "strata": ([*STRATA, "run", "-d", "--name", "bench-httpd", "-p", "18080:80", "-v",
                    mount, "debian:bookworm", "perl", "/httpd.pl"],
                   [*STRATA, "rm", "-f", "bench-httpd"], 18080),
        "docker": (["docker", "run", "-d", "--name", "bench-httpd", "--network", DOCKER_NET,
                    "-p", "18081:80", "-v", mount, "debian:bookworm", "perl", "/httpd.pl"],
                   ["docker", "rm", "-f", "bench-httpd"], 18081),
        "podman": ([*PODMAN, "-d", "--name", "bench-httpd", "-p", "18082:80", "-v", mount,
                    PODMAN_IMAGE, "perl", "/httpd.pl"],
                   ["podman", "rm", "-f", "bench-httpd"], 18082),
    }  # fmt: skip
    rates: dict[str, float] = {}
    for name, (start, stop, port) in tools.items():
        subprocess.run(stop, env=env, capture_output=True, check=False)
        run(start, env)
        try:
            rates[name] = _requests(port, requests)
        finally:
            subprocess.run(stop, env=env, capture_output=True, check=False)
    s = rates["strata"]
    return [[name, f"{rate:.0f} req/s", f"{s / rate:.2f}"] for name, rate in rates.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--only", default="run,throughput")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/strata-bench/network"))
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    env = peers_env()
    env["STRATA_ROOT"] = str(work / "store")
    if not (work / "store").exists():
        run([*STRATA, "import", env["ANCHOR_BASE_TAR"], "debian:bookworm"], env)
    subprocess.run(
        ["docker", "network", "create", DOCKER_NET], env=env, capture_output=True, check=False
    )
    if (
        subprocess.run(["podman", "image", "exists", PODMAN_IMAGE], env=env, check=False).returncode
        != 0
    ):
        run(["podman", "import", env["ANCHOR_BASE_TAR"], PODMAN_IMAGE], env)
    only = set(args.only.split(","))
    if "run" in only:
        rows = bench_run(env, args.runs)
        print(markdown_table(["run --rm -p 8080:80 IMAGE true", "median", "strata / this"], rows))
    if "throughput" in only:
        rows = bench_throughput(env, args.requests, work)
        print(markdown_table(["published port, sequential requests", "rate", "strata / this"],
                             rows))  # fmt: skip


if __name__ == "__main__":
    main()
