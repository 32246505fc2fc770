#!/bin/sh
# Install the authsvc server into a fresh virtualenv: the Dockerfile's install step, and the one
# tests/deploy/test_image_install.py runs, so the image and the test cannot drift apart.
#
#   deploy/install-server.sh VENV REQUIREMENTS WHEEL
#
# The pinned deployment (requirements.txt) and the wheel with its `server` extra go through one
# resolver run: a pin that contradicts the wheel's own requirements fails here, not at start-up.
# PYTHON chooses the interpreter the virtualenv is made from (default: python3); its own pip
# (22.3 or later) installs into the virtualenv, which so carries no pip of its own.
set -eu

if [ "$#" -ne 3 ]; then
    echo "usage: $0 VENV REQUIREMENTS WHEEL" >&2
    exit 2
fi
venv=$1
requirements=$2
wheel=$3

python=${PYTHON:-python3}
"$python" -m venv --without-pip "$venv"
"$python" -m pip --python "$venv/bin/python" --disable-pip-version-check install --quiet \
    --requirement "$requirements" "$wheel[server]"
"$python" -m pip --python "$venv/bin/python" --disable-pip-version-check check
