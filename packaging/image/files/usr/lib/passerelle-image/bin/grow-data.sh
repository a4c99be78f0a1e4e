#!/bin/sh
# Grow the data partition (the last one) to the end of the card, then its filesystem,
# online. growpart only ever moves a partition's end, never its start: a power cut in the
# middle leaves the old, smaller partition, and the next boot tries again.
set -eu
source=$(findmnt -no SOURCE /var/lib/passerelle)
disk=/dev/$(lsblk -no PKNAME "$source")
number=$(cat "/sys/class/block/$(basename "$source")/partition")
if growpart "$disk" "$number"; then
    echo "passerelle: data partition grown to the end of $disk"
fi
resize2fs "$source"
touch /var/lib/passerelle/.grown
