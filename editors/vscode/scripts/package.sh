#!/usr/bin/env bash
# A platform-specific VSIX with the language server inside, as rust-analyzer ships:
#
#   scripts/package.sh TARGET SERVER_BINARY
#
# TARGET is a VS Code target (linux-x64, linux-arm64, darwin-x64, darwin-arm64, win32-x64);
# SERVER_BINARY a claude-lsp built for it (usually `cargo build --release`, on that platform).
# The binary goes into the extension as server/claude-lsp (server/claude-lsp.exe for win32), where
# the extension looks before PATH (src/client.ts), and `vsce package --target TARGET` writes
# dist/claude-lsp-TARGET.vsix. Run `npm ci` first. A binary of the wrong kind for the target
# (ELF, Mach-O, PE) is refused.

set -euo pipefail

usage() {
    echo "usage: $0 <linux-x64|linux-arm64|darwin-x64|darwin-arm64|win32-x64> <claude-lsp binary>" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
target=$1
binary=$2

case $target in
    linux-x64 | linux-arm64) format=ELF name=claude-lsp ;;
    darwin-x64 | darwin-arm64) format=Mach-O name=claude-lsp ;;
    win32-x64) format=PE name=claude-lsp.exe ;;
    *) usage ;;
esac
[[ -f $binary ]] || { echo "$0: no file at $binary" >&2; exit 1; }
binary="$(cd "$(dirname "$binary")" && pwd)/$(basename "$binary")"

# The first four bytes say what kind of executable it is.
magic=$(od -An -tx1 -N4 "$binary" | tr -d ' \n')
case $magic in
    7f454c46) found=ELF ;;
    cffaedfe | cefaedfe | cafebabe) found=Mach-O ;;
    4d5a*) found=PE ;;
    *) found="not an executable ($magic)" ;;
esac
if [[ $found != "$format" ]]; then
    echo "$0: $binary is $found; $target needs $format" >&2
    exit 1
fi

extension_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$extension_dir"
out="$extension_dir/dist/claude-lsp-$target.vsix"

# server/ is packaged only while it holds the binary (.vscodeignore lets it in); never left behind,
# so the universal `npm run package` stays without a server.
rm -rf server
trap 'rm -rf "$extension_dir/server"' EXIT
mkdir server
cp "$binary" "server/$name"
chmod 755 "server/$name"

mkdir -p dist
npx --no-install vsce package --no-dependencies --allow-missing-repository --target "$target" --out "$out"
echo "$out"
