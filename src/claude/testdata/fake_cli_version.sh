#!/bin/sh
# Test double for CLI discovery (see discover.rs tests). Invoked through symlinks: `$0` is the
# symlink, and `$0.behaviour` says what to do. Invoked as `npm`, it prints `$0.prefix`.
if [ "$(basename "$0")" = npm ]; then
  cat "$0.prefix"
  exit 0
fi
behaviour=$(cat "$0.behaviour")
case "$behaviour" in
  hang) exec sleep 30 ;;
  fail) echo broken >&2; exit 2 ;;
  *) echo "$behaviour" ;;
esac
