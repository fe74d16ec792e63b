#!/bin/sh
# Starts nginx (the Debian package's /usr/sbin/nginx) as the legacy side, from
# a config rendered into RUN_DIR, on LEGACY_PORT. Stop it with stop-legacy.sh.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
RUN_DIR=${RUN_DIR:-/tmp/strangler-example}
LEGACY_PORT=${LEGACY_PORT:-18080}
NGINX=${NGINX:-/usr/sbin/nginx}
mkdir -p "$RUN_DIR/tmp" "$RUN_DIR/www"
# The workers run as an unprivileged user: they must be able to reach the files.
chmod a+rx "$RUN_DIR"
# A copy the nginx workers (user nobody) can read wherever the repository lives.
cp -R "$HERE/data/." "$RUN_DIR/www/"
chmod -R a+rX "$RUN_DIR/www"
sed -e "s#@PORT@#$LEGACY_PORT#g" -e "s#@ROOT@#$RUN_DIR/www#g" -e "s#@RUN_DIR@#$RUN_DIR#g" "$HERE/nginx.conf.template" > "$RUN_DIR/nginx.conf"
"$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf"
echo "legacy (nginx) on http://127.0.0.1:$LEGACY_PORT, pid $(cat "$RUN_DIR/nginx.pid")"
