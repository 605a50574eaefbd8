#!/usr/bin/env bash
# A throwaway Docker engine for the Docker runner tests: `start DIR` runs dockerd with everything under DIR
# (no bridge, no iptables, vfs storage, so it works on a bare CI machine) and prints the DOCKER_HOST to export;
# `stop DIR` stops it. Installs nothing.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
sock="$dir/docker.sock"
pidfile="$dir/dockerd.pid"
wait_seconds=${TERN_DOCKERD_WAIT_SECONDS:-30}

running() { [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

answers() {  # the engine's /_ping, through the docker CLI when there is one, else curl
  if command -v docker >/dev/null 2>&1; then
    DOCKER_HOST="unix://$sock" docker version --format '{{.Server.Version}}' >/dev/null 2>&1
  else
    curl -sf --unix-socket "$sock" http://localhost/_ping >/dev/null 2>&1
  fi
}

case "$action" in
  start)
    if ! command -v dockerd >/dev/null 2>&1; then
      echo "dockerd is not on PATH: install Debian's docker.io and busybox-static (apt-get install docker.io busybox-static)" >&2
      exit 1
    fi
    if running && answers; then
      echo "export DOCKER_HOST=unix://$sock"
      exit 0
    fi
    mkdir -p "$dir/data" "$dir/exec"
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$pidfile" \
      --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
      --host "unix://$sock" >"$dir/dockerd.log" 2>&1 &
    started=$!
    give_up=$((SECONDS + wait_seconds))
    until answers; do
      if ! kill -0 "$started" 2>/dev/null; then
        echo "dockerd exited while starting; its log ($dir/dockerd.log) ends with:" >&2
        tail -n 20 "$dir/dockerd.log" >&2
        exit 1
      fi
      if [ "$SECONDS" -ge "$give_up" ]; then
        echo "dockerd did not answer on $sock within ${wait_seconds}s; see $dir/dockerd.log" >&2
        kill "$started" 2>/dev/null || true
        exit 1
      fi
      sleep 0.2
    done
    echo "export DOCKER_HOST=unix://$sock"
    ;;
  stop)
    if ! [ -s "$pidfile" ]; then
      echo "no dockerd pidfile in $dir: nothing to stop" >&2
      exit 0
    fi
    pid=$(cat "$pidfile")
    kill "$pid" 2>/dev/null || true
    give_up=$((SECONDS + wait_seconds))
    while kill -0 "$pid" 2>/dev/null; do  # dockerd stops its containers first, then removes the pidfile
      if [ "$SECONDS" -ge "$give_up" ]; then
        echo "dockerd ($pid) still running after ${wait_seconds}s: killing it" >&2
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 0.2
    done
    rm -f "$pidfile"
    ;;
  *) usage ;;
esac
