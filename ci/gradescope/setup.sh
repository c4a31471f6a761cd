#!/usr/bin/env bash
# Gradescope's image setup (runs once, as root, on Ubuntu, with the autograder zip unpacked in
# /autograder/source). The zip holds: setup.sh, run_autograder, ASSIGNMENT (one line, e.g.
# ci/assignments/webserver.yaml) and wirecheck/ (this repository, or at least Cargo.toml, src/,
# reference-servers/, suites/, fixtures/ and ci/assignments/). A prebuilt Linux binary at
# bin/wirecheck is used as is; otherwise wirecheck is built here with a minimal Rust toolchain.
set -euo pipefail

SOURCE="${AUTOGRADER_ROOT:-/autograder}/source"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# python3: the labs are Python; build-essential: crates with C parts; curl: rustup.
apt-get install -y -qq python3 build-essential curl ca-certificates >/dev/null

if [ ! -x "$SOURCE/bin/wirecheck" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
  fi
  cargo build --release --locked --manifest-path "$SOURCE/wirecheck/Cargo.toml"
  mkdir -p "$SOURCE/bin"
  cp "$SOURCE/wirecheck/target/release/wirecheck" "$SOURCE/bin/wirecheck"
fi

# Submissions run as this unprivileged user (the assignment's `user:`); Ubuntu has it already.
id nobody >/dev/null 2>&1 || useradd --system --no-create-home nobody

# Fail the image build now, not at the first submission, if the assignment does not load: with a
# submission that does not exist, a loadable assignment gets as far as "no submission at".
cd "$SOURCE/wirecheck"
check=$("$SOURCE/bin/wirecheck" grade "$(head -n 1 "$SOURCE/ASSIGNMENT")" --submission /nonexistent/submission 2>&1) || true
case "$check" in
  *"no submission at"*) ;;
  *) echo "setup.sh: the assignment in ASSIGNMENT does not load:"; echo "$check"; exit 1 ;;
esac
# Gradescope runs /autograder/run_autograder (it copies the zip's one there too).
install -m 0755 "$SOURCE/run_autograder" "${AUTOGRADER_ROOT:-/autograder}/run_autograder"
