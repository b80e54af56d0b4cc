#!/bin/sh
# The gateway's entry point: nginx, plus a loop that keeps its upstreams equal to the live replicas.
#
# nginx 1.22 (Debian bookworm) resolves an upstream's server names once, at start (re-resolving
# `server ... resolve` is NGINX Plus, or open source only from 1.27.3). A `resolver` + variable
# `proxy_pass` would re-resolve, but then there is no upstream block: no keepalive to the replicas,
# and each request goes to the first address of the cached answer rather than being balanced. So
# every second this loop asks Docker's DNS for each service's tasks (tasks.<service> under
# endpoint_mode dnsrr: one address per healthy replica), rewrites upstreams.conf when the answer
# changed and reloads nginx, which finishes requests in flight on the old workers.
#
# UPSTREAMS: "name=dns-name ..." pairs, e.g. "pose-json=tasks.cloudpose_pose-json".
set -eu
: "${UPSTREAMS:?set UPSTREAMS to name=dns-name pairs}"
TARGET_PORT=${TARGET_PORT:-8080}
conf=/etc/nginx/upstreams.conf

render() {
    echo "map \$function \$function_known {  # nginx.conf's /function/<name> routes: the names served here"
    echo "    default 0;"
    for pair in $UPSTREAMS; do
        echo "    ${pair%%=*} 1;"
    done
    echo "}"
    for pair in $UPSTREAMS; do
        echo "upstream ${pair%%=*} {"
        echo "    least_conn;  # each replica runs one inference at a time: send work to the idlest"
        addresses=$(getent ahostsv4 "${pair#*=}" | awk '{print $1}' | sort -u)
        [ -n "$addresses" ] || echo "    server 127.0.0.1:$TARGET_PORT down;  # no replica is ready"
        for address in $addresses; do
            echo "    server $address:$TARGET_PORT max_fails=1 fail_timeout=2s;"
        done
        echo "    keepalive 32;"
        echo "}"
    done
}

render >"$conf"
nginx -t -q
nginx -g 'daemon off;' &
nginx_pid=$!
trap 'kill -QUIT "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" || true; exit 0' TERM INT
while kill -0 "$nginx_pid" 2>/dev/null; do
    sleep 1 &
    wait $! || true
    render >"$conf.new"
    if ! cmp -s "$conf.new" "$conf"; then
        mv "$conf.new" "$conf"
        echo "gateway: replicas now $(grep -c 'server [0-9]' "$conf" || true); reloading nginx" >&2
        nginx -s reload
    fi
done
wait "$nginx_pid"
