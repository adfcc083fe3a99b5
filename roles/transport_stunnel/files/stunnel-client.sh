#!/bin/sh
# Transport sidecar of a client pod (kubeferry.state_transfer, transport_stunnel).
# Runs stunnel in the foreground as a child and stops it once the transfer client has
# touched the done marker, so that the pod completes: exits 0 then. If stunnel ends first,
# exits with stunnel's code. Polls 5 times a second, for at most MAX_SECONDS: the pod ends,
# and the next client pod of the run may start, only once this sidecar has stopped.
# Usage: stunnel-client.sh DONE_FILE MAX_SECONDS COMMAND [ARG...]
set -u
done_file=$1
max_seconds=$2
shift 2

"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT

polls=0
max_polls=$((max_seconds * 5))
while [ ! -e "$done_file" ]; do
    if ! kill -0 "$child" 2>/dev/null; then
        wait "$child"
        exit $?
    fi
    if [ "$polls" -ge "$max_polls" ]; then
        echo "kubeferry: the transfer did not finish within ${max_seconds}s; stopping stunnel" >&2
        kill -TERM "$child" 2>/dev/null
        wait "$child"
        exit 1
    fi
    sleep 0.2
    polls=$((polls + 1))
done

kill -TERM "$child" 2>/dev/null
wait "$child"
exit 0
