#!/usr/bin/env bash
# Builds the ustack tool and runs its demo: a private network namespace with a TAP,
# the kernel pinging the stack, a pcap and a layer-by-layer trace. Needs root.
# Extra arguments go to `ustack` before the subcommand, e.g. `--pcap /tmp/d.pcap`.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p ustack-tools
exec target/release/ustack "$@" demo
