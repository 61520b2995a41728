#!/usr/bin/env bash
# The one command that runs every pier test: installs what the tests need, checks format
# and lints, builds the `pier` binary the end-to-end tests drive, then runs all tests.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-test-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast
