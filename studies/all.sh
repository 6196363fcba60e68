#!/usr/bin/env bash
# Every implemented study, then the index docs/studies/README.md (pending studies are listed as such).
# Options go to copro-study (e.g. --quick, --jobs 1).
source "$(dirname "$0")/lib.sh"
build_copro_study
run_study all "$@"
