#!/bin/sh
# Docker images and container start-up, measured on this machine.
#
#   bench/docker_images.sh            everything (cold builds take minutes)
#   bench/docker_images.sh --no-cold  sizes, cached builds and start-up only
#   RUNS=20 bench/docker_images.sh    start-up samples (default 10)
#
# Prints its figures; never fails on a timing.  Cold builds use their own
# image names (and an empty debootstrap cache), so the images in use stay.
# Needs an engine (scripts/docker-up) and the images (make images).
set -eu
cd "$(dirname "$0")/.."

RUNS=${RUNS:-10}
COLD=1
[ "${1:-}" = --no-cold ] && COLD=0

docker version >/dev/null 2>&1 || { echo "docker_images: no Docker engine (scripts/docker-up)" >&2; exit 1; }
docker image inspect sandpit/sandbox:latest >/dev/null 2>&1 || { echo "docker_images: no sandpit/sandbox (make images)" >&2; exit 1; }

now_ms() { date +%s%3N; }
elapsed() { # command...: prints milliseconds
  t0=$(now_ms)
  "$@" >/dev/null 2>&1
  echo $(( $(now_ms) - t0 ))
}
mib() { docker image inspect -f '{{.Size}}' "$1" 2>/dev/null | awk '{printf "%.0f MiB", $1 / 1048576}'; }
# median, min and max of numbers, one a line
stats() { sort -n | awk '{v[NR] = $1} END {printf "median %d ms, min %d ms, max %d ms (n=%d)", v[int((NR + 1) / 2)], v[1], v[NR], NR}'; }

echo "== docker_images: $(docker version -f 'engine {{.Server.Version}}, API {{.Server.APIVersion}}' 2>/dev/null), $(nproc) cores, $(date -u +%F)"

echo "-- image sizes"
for i in sandpit/base:bookworm sandpit/sandbox:latest sandpit/deployer:latest sandpit/manager:latest; do
  if docker image inspect "$i" >/dev/null 2>&1; then
    printf '  %-26s %s\n' "$i" "$(mib "$i")"
  fi
done

echo "-- builds"
printf '  %-44s %6d ms\n' "base, cached (recipe unchanged)" "$(elapsed scripts/build-base-image)"
printf '  %-44s %6d ms\n' "sandbox, cached (docker build, all layers)" \
  "$(elapsed env DOCKER_BUILDKIT=0 docker build -f dockerfiles/SandboxDockerfile -t sandpit/sandbox:latest .)"
if [ "$COLD" = 1 ]; then
  cache=$(mktemp -d /var/tmp/sandpit-bench-dbs.XXXXXX)
  printf '  %-44s %6d ms\n' "base, cold (debootstrap, empty cache)" \
    "$(elapsed env SANDPIT_BASE_IMAGE=sandpit/bench-base:cold SANDPIT_DEBOOTSTRAP_CACHE="$cache" scripts/build-base-image --force)"
  printf '  %-44s %6d ms\n' "base, debootstrap cache warm" \
    "$(elapsed env SANDPIT_BASE_IMAGE=sandpit/bench-base:cold SANDPIT_DEBOOTSTRAP_CACHE="$cache" scripts/build-base-image --force)"
  rm -rf "$cache"
  docker rmi -f sandpit/bench-base:cold >/dev/null 2>&1 || true
  printf '  %-44s %6d ms\n' "sandbox, cold (--no-cache: apt-get inside)" \
    "$(elapsed env DOCKER_BUILDKIT=0 docker build --no-cache -f dockerfiles/SandboxDockerfile -t sandpit/bench-sandbox:cold .)"
  docker rmi -f sandpit/bench-sandbox:cold >/dev/null 2>&1 || true
fi

echo "-- start-up"
docker run --rm --entrypoint true sandpit/sandbox:latest >/dev/null 2>&1 || true # warm the page cache
i=0
: >/tmp/sandpit-bench-run.$$
while [ "$i" -lt "$RUNS" ]; do
  elapsed docker run --rm --network none --entrypoint true sandpit/sandbox:latest >>/tmp/sandpit-bench-run.$$
  i=$((i + 1))
done
echo "  docker run --rm --entrypoint true sandpit/sandbox: $(stats </tmp/sandpit-bench-run.$$)"

# An instance as the docker backend makes it (the same limits and mounts),
# from docker run to the monitor's answer to its first command.
: >/tmp/sandpit-bench-ping.$$
: >/tmp/sandpit-bench-exec.$$
i=0
while [ "$i" -lt "$RUNS" ]; do
  dir=$(mktemp -d /tmp/sandpit-bench-inst.XXXXXX)
  mkdir -p "$dir/run" "$dir/data" "$dir/workspace"
  t0=$(now_ms)
  id=$(docker run -d --network none --read-only --tmpfs /tmp:size=512m,mode=1777 --tmpfs /run:size=16m \
         --cap-drop ALL --cap-add SETUID --cap-add SETGID --cap-add CHOWN --cap-add FOWNER --cap-add KILL \
         --security-opt no-new-privileges --pids-limit 2048 --memory 4g --memory-swap 4g --cpus 1 \
         -v "$dir/run:/run/sandpit" -v "$dir/data:/var/lib/sandpit" -v "$dir/workspace:/workspace" \
         sandpit/sandbox:latest)
  n=0
  until curl -sf --unix-socket "$dir/run/monitor.sock" http://m/api/ping >/dev/null 2>&1; do
    n=$((n + 1))
    [ "$n" -gt 3000 ] && break
    sleep 0.01
  done
  echo $(( $(now_ms) - t0 )) >>/tmp/sandpit-bench-ping.$$
  curl -sf --unix-socket "$dir/run/monitor.sock" -H 'X-Sandpit-Sandbox: bench' \
    -d '{"command":"true"}' http://m/api/execute >/dev/null
  echo $(( $(now_ms) - t0 )) >>/tmp/sandpit-bench-exec.$$
  docker rm -f "$id" >/dev/null
  rm -rf "$dir"
  i=$((i + 1))
done
echo "  docker run -d (hardened, as the backend) to monitor ping:  $(stats </tmp/sandpit-bench-ping.$$)"
echo "  docker run -d (hardened, as the backend) to first exec:    $(stats </tmp/sandpit-bench-exec.$$)"

# docker exec of true in a running instance, for the exec comparisons of issue 5
dir=$(mktemp -d /tmp/sandpit-bench-inst.XXXXXX)
mkdir -p "$dir/run" "$dir/data" "$dir/workspace"
id=$(docker run -d --network none -v "$dir/run:/run/sandpit" -v "$dir/data:/var/lib/sandpit" \
       -v "$dir/workspace:/workspace" sandpit/sandbox:latest)
until curl -sf --unix-socket "$dir/run/monitor.sock" http://m/api/ping >/dev/null 2>&1; do sleep 0.01; done
: >/tmp/sandpit-bench-dexec.$$
: >/tmp/sandpit-bench-mexec.$$
i=0
while [ "$i" -lt "$RUNS" ]; do
  elapsed docker exec "$id" true >>/tmp/sandpit-bench-dexec.$$
  elapsed curl -sf --unix-socket "$dir/run/monitor.sock" -H 'X-Sandpit-Sandbox: bench' \
    -d '{"command":"true"}' http://m/api/execute >>/tmp/sandpit-bench-mexec.$$
  i=$((i + 1))
done
docker rm -f "$id" >/dev/null
rm -rf "$dir"
echo "  docker exec true (running instance):                       $(stats </tmp/sandpit-bench-dexec.$$)"
echo "  monitor /api/execute true over its socket (curl):          $(stats </tmp/sandpit-bench-mexec.$$)"
rm -f /tmp/sandpit-bench-*.$$
