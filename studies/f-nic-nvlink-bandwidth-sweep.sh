#!/usr/bin/env bash
# Study f: NIC bandwidth (200/400/800 Gb/s) x NVLink bandwidth (160/320/450/900 GB/s) for an EP64 MoE
# dispatch + combine (forward path) on deepseek-v3.yaml.
# Writes docs/studies/f-nic-nvlink-bandwidth-sweep.{csv,svg,md}. Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study f "$@"
