#!/usr/bin/env bash
# Runs once, as root, when the image is built. The JDK and JUnit 4 are in
# agh's Java image (scripts/images/java.recipe) already; a course would
# apt-get install more here.
set -e
javac -version
test -r /usr/share/java/junit4.jar
