#!/usr/bin/env bash
# Runs once, as root, when the image is built. gcc and python3 are in
# agh's base image already; a course would apt-get install here.
set -e
gcc --version | head -n 1
python3 --version
