#!/bin/sh
# A walk through dmctl on the simulated device mapper: no root, no kernel module.
# Everything happens in a temporary directory; the simulator's state is kept there too.
set -eu
DMCTL=${DMCTL:-dmctl}
W=$(mktemp -d "${TMPDIR:-/tmp}/dmctl-walkthrough.XXXXXX")
export DMCTL_SIM_DIR="$W/sim" DMCTL_BACKEND=sim
trap 'rm -rf "$W"' EXIT
say() { printf '\n$ %s\n' "$*"; }
run() { say "$*"; "$@"; }

# Backing files play the part of disks (sparse: they cost no space until written).
truncate -s 16M "$W/disk0"
truncate -s 8M "$W/meta"
truncate -s 64M "$W/origin"
truncate -s 32M "$W/log"

run $DMCTL version
run $DMCTL targets

# --- linear, zero, error: dmsetup's commands, dmsetup's output ---------------------------
run $DMCTL create lin0 --table "0 32768 linear $W/disk0 0"
printf '0 1024 linear /dev/mapper/lin0 2048\n1024 1024 zero\n2048 1024 error\n' > "$W/multi.table"
run $DMCTL create multi "$W/multi.table"
run $DMCTL ls
run $DMCTL ls --tree -o ascii
run $DMCTL table
run $DMCTL status multi
run $DMCTL info lin0
run $DMCTL info -c
run $DMCTL deps multi
run $DMCTL status --json multi

# I/O through the stack: 4 KiB written at sector 2048 of lin0 appears at multi's sector 0
run $DMCTL io write multi 0 --pattern 0x41 --sectors 8
say "$DMCTL io read lin0 2048 --sectors 1 | head -c 16; echo"
$DMCTL io read lin0 2048 --sectors 1 | head -c 16; echo
say "$DMCTL io read multi 2048 --sectors 1   # the error target"
$DMCTL io read multi 2048 --sectors 1 || echo "(exit status $?: the error target returns EIO)"

# A power cut loses what was never flushed
run $DMCTL sim status
run $DMCTL sim crash
run $DMCTL ls
say "od -An -c -N 4 -j $((2048 * 512)) disk0   # the unflushed write is gone"
od -An -c -N 4 -j $((2048 * 512)) "$W/disk0"

# --- era: which blocks changed since a checkpoint? ---------------------------------------
run $DMCTL create era1 --table "0 131072 era $W/meta $W/origin 128"
run $DMCTL status era1
run $DMCTL io write era1 0 --pattern 1 --sectors 256
run $DMCTL message era1 0 checkpoint
run $DMCTL io write era1 12800 --pattern 2 --sectors 128
run $DMCTL message era1 0 take_metadata_snap
run $DMCTL status era1
run $DMCTL era changed-since 2 "$W/meta" --metadata-snapshot
run $DMCTL message era1 0 drop_metadata_snap
run $DMCTL remove era1
run $DMCTL era changed-since 1 "$W/meta"
if command -v era_invalidate >/dev/null 2>&1; then
    run era_invalidate --written-since 1 "$W/meta"
fi

# --- log-writes: record writes in the order they became stable, then replay --------------
run $DMCTL create lw --table "0 32768 log-writes $W/disk0 $W/log"
run $DMCTL io write lw 0 --pattern 0x61 --sectors 8
run $DMCTL io flush lw
run $DMCTL message lw 0 mark first
run $DMCTL io write lw 8 --pattern 0x62 --sectors 8 --fua
run $DMCTL status lw
run $DMCTL remove lw
run $DMCTL replay-log --log "$W/log"
run $DMCTL replay-log --log "$W/log" --find --end-mark first
truncate -s 16M "$W/replay"
run $DMCTL replay-log --log "$W/log" --replay "$W/replay" --end-mark first -v

run $DMCTL remove_all
run $DMCTL ls
echo
echo "Walk-through finished."
