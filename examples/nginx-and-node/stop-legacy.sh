#!/bin/sh
# Stops the nginx that start-legacy.sh started.
set -eu
RUN_DIR=${RUN_DIR:-/tmp/strangler-example}
NGINX=${NGINX:-/usr/sbin/nginx}
if [ -f "$RUN_DIR/nginx.pid" ]; then "$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" -s quit; fi
