#!/usr/bin/env bash
# Runs once, as root with the network, when the image is built.
apt-get update
apt-get install -y --no-install-recommends python3-pip
pip3 install gradescope-utils==0.5.0
