#!/bin/sh
# A stand-in for the stompica binary in the unit tests: logs the broker's
# listening line (its port from FAKE_PORT, default 4321), records its
# arguments, and on SIGTERM logs "shutting down" and exits 0.
# FAKE_FAIL=1 makes it fail at once, as a busy port would.
if [ "${FAKE_FAIL:-}" = 1 ]; then
  echo 'time=t level=ERROR msg="cannot start" err="listen tcp :4321: bind: address already in use"' >&2
  exit 1
fi
[ -n "${FAKE_ARGS_FILE:-}" ] && printf '%s\n' "$@" > "$FAKE_ARGS_FILE"
trap 'echo "time=t level=INFO msg=\"shutting down\"" >&2; exit 0' TERM
echo "time=t level=INFO msg=\"stompica listening\" addr=127.0.0.1:${FAKE_PORT:-4321} tls=false" >&2
while :; do sleep 0.05; done
