#!/usr/bin/env bash
# i-PI NVT of copper with the shipped HDNNP model: i-PI is the server, one
# mlpotential worker the force provider. Run from anywhere; the output lands
# beside this script (nvt.out, nvt.pos_0.extxyz, RESTART).
set -euo pipefail
cd "$(dirname "$0")"
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT  # never leave i-PI behind
i-pi nvt.xml > nvt.log &
# The worker keeps trying to connect while i-PI starts (--connect-timeout, 60 s).
mlpotential worker --ipi unix:mlpotential-nvt --structure copper.extxyz --backend HDNNP --model Cu-EMT --num-threads 1
wait
tail -n 3 nvt.out
