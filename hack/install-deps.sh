#!/usr/bin/env bash
# Installs what berth needs on a fresh machine and makes sure a Docker
# engine answers: Debian's docker.io, debootstrap (node image base),
# libseccomp-dev and gcc (runc is built with seccomp), tmux (terminal
# tests), make/bzip2/curl (the conformance suite's busybox, built from
# source). Root on Debian/Ubuntu only; elsewhere it says what to install.
set -euo pipefail

need=()
command -v docker >/dev/null 2>&1 || need+=(docker.io)
command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
command -v tmux >/dev/null 2>&1 || need+=(tmux)
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v bc >/dev/null 2>&1 || need+=(bc)
# The conformance suite's busybox image is built from upstream's source.
command -v make >/dev/null 2>&1 || need+=(make)
command -v bzip2 >/dev/null 2>&1 || need+=(bzip2)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
[ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || need+=(debian-archive-keyring)

if ! command -v go >/dev/null 2>&1; then
  echo "berth needs Go 1.26 or newer on PATH (https://go.dev/doc/install)." >&2
  exit 1
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "berth needs: ${need[*]} (Debian package names)." >&2
    echo "Install them with your package manager (or run this script as root on Debian/Ubuntu)," >&2
    echo "and make sure a Docker engine is running." >&2
    exit 1
  fi
  echo "Installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

if ! docker info >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "No Docker engine answers. Start one (e.g. sudo systemctl start docker) and retry." >&2
    exit 1
  fi
  echo "Starting dockerd"
  mkdir -p /var/log
  nohup dockerd >/var/log/berth-dockerd.log 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  if ! docker info >/dev/null 2>&1; then
    echo "dockerd did not come up; its log:" >&2
    tail -n 30 /var/log/berth-dockerd.log >&2
    exit 1
  fi
fi
echo "Docker $(docker version --format '{{.Server.Version}}') is ready."
