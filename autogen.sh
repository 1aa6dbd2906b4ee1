#!/bin/sh
# SPDX-License-Identifier: MIT
# Regenerate the build system: ./autogen.sh && ./configure && make
set -e
cd "$(dirname "$0")"
autoreconf --install --warnings=all
