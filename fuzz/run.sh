#!/usr/bin/env bash
# Runs every fuzz target for a while: `fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]`.
#
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 lets the stable toolchain accept
# them, so no nightly toolchain has to be installed. Seeds come from fuzz/corpus/<target>
# (read only); what libFuzzer learns goes to fuzz/target/corpus/<target>, crashes to
# fuzz/artifacts/<target>.
set -euo pipefail

cd "$(dirname "$0")"
secs="${1:-60}"
shift || true
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    targets=(normalize host headers spiffe_id config jsonrpc)
fi

export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

status=0
for t in "${targets[@]}"; do
    mkdir -p "target/corpus/$t"
    echo "== fuzz target $t for ${secs}s"
    if ! cargo fuzz run "$t" "target/corpus/$t" "corpus/$t" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1; then
        echo "== fuzz target $t FAILED (see artifacts/$t)"
        status=1
    fi
done
exit "$status"
