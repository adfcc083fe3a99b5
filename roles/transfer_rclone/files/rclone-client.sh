#!/bin/sh
# Transfer client of a client pod (kubeferry.state_transfer, transfer_rclone).
# Runs rclone with the argv it is given (no word splitting, no shell evaluation; rclone
# retries by itself), then touches the done marker for the transport sidecar and exits
# with rclone's exit code.
# The containers of a pod start together: while the transport sidecar may still be starting
# (at most 2 s), a listing of the source is tried every twentieth of a second, so that the
# copy does not begin with a failed attempt and rclone's --retries-sleep (the sidecar listens
# within a few milliseconds; a longer pause would be added to every copy).
# Usage: rclone-client.sh DONE_FILE rclone copy|sync SOURCE DESTINATION [ARG...]
set -u
done_file=$1
shift

config=
for arg in "$@"; do
    case $arg in
        --config=*) config=$arg ;;
    esac
done
tries=0
while [ "$tries" -lt 40 ] && [ "$#" -ge 3 ] &&
    ! "$1" lsf --max-depth=1 --contimeout=1s --low-level-retries=1 --retries=1 \
        ${config:+"$config"} "$3" >/dev/null 2>&1; do
    tries=$((tries + 1))
    sleep 0.05
done

"$@"
rc=$?

touch "$done_file"
exit "$rc"
