#!/usr/bin/env bash
# Study d: IBGDA (device) vs CPU proxy initiation for a decode-size all-to-all (128 tokens x 7168 B FP8 per
# rank), EP 8 to 256 on deepseek-v3.yaml. Writes docs/studies/d-ibgda-vs-proxy-decode.{csv,svg,md}.
# A few seconds. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study d "$@"
