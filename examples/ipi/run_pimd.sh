#!/usr/bin/env bash
# i-PI path-integral MD (4 beads) of copper with the shipped HDNNP model and
# two mlpotential workers: i-PI shares each step's four geometries between
# them. Output beside this script (pimd.out, pimd.pos_<bead>.extxyz, RESTART).
set -euo pipefail
cd "$(dirname "$0")"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # never leave i-PI or a worker behind
i-pi pimd.xml > pimd.log &
server=$!
worker="mlpotential worker --ipi unix:mlpotential-pimd --structure copper.extxyz --backend HDNNP --model Cu-EMT --num-threads 1"
$worker 2> worker-1.log &
$worker 2> worker-2.log &
wait "$server"
wait
grep -h "the server said EXIT" worker-*.log
tail -n 3 pimd.out
