#!/usr/bin/env bash
# System packages of a shoal image, from Debian's archive only (a build behind a registry mirror
# needs no other download). "browser" adds Debian's Chromium, its fonts, Mesa with the EGL loader
# for real WebGL in the stealth pool (ANGLE on GL/EGL needs libEGL.so.1), and libatomic1, which the
# node binary that Playwright and patchright bundle as their driver needs. .ci/run runs it with
# "browser" on the bare test machine.
set -euo pipefail
packages=(ca-certificates)
if [ "${1:-}" = "browser" ]; then
    packages+=(chromium fonts-liberation fonts-noto-color-emoji libgl1-mesa-dri libegl1 libegl-mesa0 libatomic1)
fi
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    apt-get clean  # the downloaded .deb files: 280 MB of the browser image otherwise
    rm -rf /var/lib/apt/lists/*
fi
