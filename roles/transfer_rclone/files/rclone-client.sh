#!/bin/sh
# Transfer client of a client pod (kubeferry.state_transfer, transfer_rclone).
# Runs rclone with the argv it is given (no word splitting, no shell evaluation; rclone
# retries by itself), then touches the done marker for the transport sidecar and exits
# with rclone's exit code.
# Usage: rclone-client.sh DONE_FILE rclone [ARG...]
set -u
done_file=$1
shift

"$@"
rc=$?

touch "$done_file"
exit "$rc"
