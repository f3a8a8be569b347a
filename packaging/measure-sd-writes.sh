#!/bin/sh
# Measure what edgecollect writes to its storage, the way an SD card sees it: run the agent with a
# config for a while on a fresh ext4 file system on a loop device, and count the sectors the file
# system sent to the device (data, inodes, directories and the ext4 journal; fsync included).
#
#   sudo packaging/measure-sd-writes.sh [CONFIG] [SECONDS]      (defaults: built-in config, 600 s)
#
# With UPSTREAM=HOST:PORT set (a plaintext OTAP receiver, e.g. the tests/interop sink), the config
# gets an [upstream] section for it, so the figures are those of write-behind with a healthy
# upstream: batches acknowledged upstream never touch the card.
#
# Prints sectors, bytes, spool files, the process's own write_bytes (/proc/PID/io) and the
# extrapolation to a day. Needs root (mount -o loop)
# and `edgecollect` on PATH (or EDGECOLLECT="python3 -m edgecollect"). The file system is mounted like Raspberry Pi OS mounts its root:
# ext4, noatime, default 5 s journal commit.
set -eu

config="${1:-}"
agent="${EDGECOLLECT:-edgecollect}"
seconds="${2:-600}"
work=$(mktemp -d)
img="$work/sd.img"
mnt="$work/mnt"
cleanup() {
    [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    umount "$mnt" 2>/dev/null || true
    [ -n "${loop:-}" ] && losetup -d "$loop" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

truncate -s 512M "$img"
# Initialise inode tables and journal now: lazy init would write in the background and be counted.
mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$img"
loop=$(losetup --find --show "$img")
mkdir -p "$mnt"
mount -o noatime "$loop" "$mnt"
dev=$(basename "$loop")
sync
written() { awk '{ print $7 }' "/sys/block/$dev/stat"; }  # field 7: sectors written (512 B)

if [ -n "${UPSTREAM:-}" ]; then
    { [ -n "$config" ] && cat "$config"; printf '\n[upstream]\nendpoint = "%s"\ntls = { insecure = true }\n' "$UPSTREAM"; } >"$work/with-upstream.toml"
    config="$work/with-upstream.toml"
fi
before=$(written)
if [ -n "$config" ]; then
    STATE_DIRECTORY="$mnt/edgecollect" $agent run -c "$config" >"$work/agent.log" 2>&1 &
else
    STATE_DIRECTORY="$mnt/edgecollect" $agent run >"$work/agent.log" 2>&1 &
fi
pid=$!
sleep "$seconds"
process_bytes=$(awk '/^write_bytes:/ { print $2 }' "/proc/$pid/io" 2>/dev/null || echo 0)
kill -TERM "$pid"
wait "$pid" || true
pid=""
sync
after=$(written)

sectors=$((after - before))
files=$(find "$mnt/edgecollect/spool" -maxdepth 1 -name '*.ecb' | wc -l)
spool_bytes=$(find "$mnt/edgecollect/spool" -maxdepth 1 -name '*.ecb' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
echo "run: ${seconds}s, config: ${config:-built-in defaults}, upstream: ${UPSTREAM:-none}"
echo "process: $process_bytes bytes written (write_bytes, before the stop), per day: $((process_bytes * 86400 / seconds))"
echo "spool: $files files, $spool_bytes bytes of batches"
echo "device: $sectors sectors = $((sectors * 512)) bytes written"
echo "per day: $((sectors * 512 * 86400 / seconds)) bytes written, $((files * 86400 / seconds)) files"
echo "per batch file: $((sectors * 512 / (files > 0 ? files : 1))) bytes on the device for $((spool_bytes / (files > 0 ? files : 1))) bytes of batch"
