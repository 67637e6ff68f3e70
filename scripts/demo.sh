#!/usr/bin/env bash
# The main job, end to end, as a new user would run it: a Debian base image from the mirror,
# then the walkthrough ../shared/walkthroughs/understanding-image-layers.md (a container that
# installs Node.js, committed as node-base; an app container committed as sample-app with a
# CMD; their histories; running both), then save/load of the result.
# The walkthrough types its commands into `-ti` shells; the demo runs them with `sh -c`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
out=demo-out
mkdir -p "$out"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }

# Start clean, so the demo can be run again.
strata rm -f base-container app-container >/dev/null 2>&1 || true
strata rmi hello:v0.1 hello:v0.2 node-base sample-app >/dev/null 2>&1 || true

if strata image inspect debian:bookworm >/dev/null 2>&1; then
  echo "debian:bookworm is already in the store; reusing it"
else
  step strata image bootstrap debian:bookworm
fi
step strata image ls

# Create a base image (walkthrough steps 2-8).
step strata run --name=base-container debian:bookworm sh -c 'apt-get update -qq && apt-get install -y -qq nodejs >/dev/null && node -e "console.log(\"Hello world!\")"'
step strata container commit -m "Add node" base-container node-base
step strata image history node-base
step strata run --rm node-base node -e "console.log('Hello again')"
step strata rm -f base-container

# Build an app image (walkthrough, second part).
step strata run --name=app-container node-base sh -c "echo 'console.log(\"Hello from an app\")' > app.js && node app.js"
step strata container commit -c "CMD node app.js" -m "Add app" app-container sample-app
step strata image history sample-app
step strata image history --files --top 3 sample-app
step strata run --rm sample-app
step strata rm -f app-container

# Build the hello app from a Dockerfile (image-layers-node-v0.2.md, building-images-cache.md):
# a build, a rebuild after editing index.js (the cache says which steps and why), history.
app="$out/hello"
rm -rf "$app" && mkdir -p "$app"
cat > "$app/Dockerfile" <<'DOCKERFILE'
FROM node-base
WORKDIR /app
COPY package.json .
RUN node -e "console.log('installing', require('./package.json').name)"
COPY . .
EXPOSE 8080
CMD ["node", "index.js"]
DOCKERFILE
printf '{"name": "hello", "version": "0.1.0"}\n' > "$app/package.json"
printf 'console.log("Hello from the hello app");\n' > "$app/index.js"
step strata image build -t hello:v0.1 "$app"
step strata run --rm hello:v0.1
echo 'console.log("this is v0.2");' >> "$app/index.js"
step strata image build --explain "$app"
step strata image build -t hello:v0.2 "$app"
step strata run --rm hello:v0.2
step strata image history hello:v0.2

# Share it through a registry: a local one (Debian's docker-registry) on loopback, as
# `docker push localhost:5000/...` in the walkthroughs; push, remove, pull back, run.
reg="$PWD/$out/registry"
port=5055
rm -rf "$reg" && mkdir -p "$reg"
printf 'version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: %s/data\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$reg" "$port" > "$reg/config.yml"
docker-registry serve "$reg/config.yml" > "$reg/log" 2>&1 &
reg_pid=$!
trap 'kill "$reg_pid" 2>/dev/null || true' EXIT
for _ in $(seq 40); do curl -fs "http://127.0.0.1:$port/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
step strata tag hello:v0.2 "localhost:$port/hello:v0.2"
step strata push "localhost:$port/hello:v0.2"
step strata rmi "localhost:$port/hello:v0.2" hello:v0.2
step strata pull "localhost:$port/hello:v0.2"
step strata run --rm "localhost:$port/hello:v0.2"
step strata image ls --digests "localhost:$port/hello"

# Serve the hello app on a published port (issue 12): a bridge network, -p, curl from the host.
web="$out/hello-web"
rm -rf "$web" && mkdir -p "$web"
cat > "$web/Dockerfile" <<'DOCKERFILE'
FROM node-base
WORKDIR /app
COPY server.js .
EXPOSE 8080
CMD ["node", "server.js"]
DOCKERFILE
cat > "$web/server.js" <<'JS'
require("http").createServer((req, res) => res.end("Hello from the hello app\n")).listen(8080);
JS
strata rm -f hello-web >/dev/null 2>&1 || true
step strata image build -q -t hello:web "$web"
step strata run -d --name hello-web -p 8080 hello:web
step strata port hello-web
hostport=$(strata port hello-web 8080 | head -1 | sed 's/.*://')
for _ in $(seq 40); do curl -fs "http://127.0.0.1:$hostport/" >/dev/null 2>&1 && break; sleep 0.25; done
step curl -fsS "http://127.0.0.1:$hostport/"
step strata ps
step strata rm -f hello-web

# Images in and out: archives that Docker, Podman and skopeo read.
step strata image save -o "$out/sample-app.tar" sample-app
step skopeo inspect --format '{{.Digest}} {{.Architecture}} layers={{len .Layers}}' "docker-archive:$out/sample-app.tar"
step strata rmi sample-app
step strata image load -i "$out/sample-app.tar"
step strata run --rm sample-app
step strata system df
echo
echo "demo: done (archives in $out/)"
