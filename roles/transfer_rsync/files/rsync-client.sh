#!/bin/sh
# Transfer client of a client pod (kubeferry.state_transfer, transfer_rsync).
# Runs rsync with the argv it is given (no word splitting, no shell evaluation), retries
# connection failures a bounded number of times with backoff, then touches the done marker
# for the transport sidecar and exits with rsync's exit code. The containers of a pod start
# together: while the transport sidecar may still be starting (the first 2 s), a refused
# connection is tried again every twentieth of a second, without counting as a retry (the
# sidecar listens within a few milliseconds; a longer pause would be added to every copy).
# A second command may follow the first after the token ::kubeferry-then:: (restricted
# mode's delete pass); it runs, with the same retries, only if the first one succeeded.
# The last line says how many retries it took, when any did (the run's summary reports them).
# Usage: rsync-client.sh RETRIES DONE_FILE rsync ARG... [::kubeferry-then:: rsync ARG...]
set -u
retries=$1
done_file=$2
shift 2
separator=::kubeferry-then::
retried=0

# run_part PART ARG...: run the words of part 1 (before the separator) or 2 (after it).
# The words are rotated through "$@", so each stays one argv item whatever it contains.
run_part() {
    which=$1
    shift
    count=$#
    part=1
    while [ "$count" -gt 0 ]; do
        word=$1
        shift
        count=$((count - 1))
        if [ "$part" = 1 ] && [ "$word" = "$separator" ]; then
            part=2
        elif [ "$part" = "$which" ]; then
            set -- "$@" "$word"
        fi
    done
    [ "$#" -eq 0 ] && return 0
    attempt=0
    quick=0
    while :; do
        "$@"
        rc=$?
        case $rc in
            5 | 10 | 12 | 30 | 35) ;; # the daemon was not reachable or the connection broke
            *) return "$rc" ;;
        esac
        # Refused while the sidecar starts (exit code 10, nothing moved yet): not a retry.
        if [ "$rc" = 10 ] && [ "$which" = 1 ] && [ "$attempt" -eq 0 ] && [ "$quick" -lt 40 ]; then
            quick=$((quick + 1))
            sleep 0.05
            continue
        fi
        if [ "$attempt" -ge "$retries" ]; then
            echo "kubeferry: rsync failed with exit code $rc after $attempt retries" >&2
            return "$rc"
        fi
        attempt=$((attempt + 1))
        retried=$((retried + 1))
        case $attempt in
            1) delay=2 ;;
            2) delay=4 ;;
            3) delay=8 ;;
            4) delay=16 ;;
            *) delay=30 ;;
        esac
        echo "kubeferry: rsync exit code $rc (connection); retry $attempt of $retries in ${delay}s" >&2
        sleep "$delay"
    done
}

run_part 1 "$@"
rc=$?
if [ "$rc" -eq 0 ]; then
    run_part 2 "$@"
    rc=$?
fi

[ "$retried" -gt 0 ] && echo "kubeferry: retries: $retried" >&2
touch "$done_file"
exit "$rc"
