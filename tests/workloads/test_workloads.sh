#!/bin/bash
# Synthetic workloads at the tiny scale under the system malloc and tinymalloc; see
# check_workloads.py.
exec /usr/bin/python3 "$(dirname "$0")/check_workloads.py" "$@"
