#!/usr/bin/env bash
# Start, stop or check Luigi's central scheduler (luigid) on 127.0.0.1, state and logs in var/luigid/.
#   scripts/scheduler.sh start|stop|status   (make scheduler / make scheduler-stop)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${PORT:-8082}
DIR="$ROOT/var/luigid"
PIDFILE="$DIR/luigid.pid"
LUIGID="$ROOT/.venv/bin/luigid"

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case "${1:-status}" in
  start)
    if running; then echo "luigid already running (pid $(cat "$PIDFILE")): http://127.0.0.1:$PORT/"; exit 0; fi
    mkdir -p "$DIR/log"
    rm -f "$PIDFILE"  # `luigid --background` leaves its pidfile behind when it stops; a stale one blocks a start
    LUIGI_CONFIG_PATH="$ROOT/luigi.cfg" "$LUIGID" --background --address 127.0.0.1 --port "$PORT" \
      --pidfile "$PIDFILE" --logdir "$DIR/log" --state-path "$DIR/state.pickle"
    for _ in $(seq 1 300); do
      if curl -s -o /dev/null "http://127.0.0.1:$PORT/api/ping"; then  # any HTTP answer: it is up
        echo "luigid running (pid $(cat "$PIDFILE")): visualiser at http://127.0.0.1:$PORT/"
        echo "Run against it:  .venv/bin/luigi --module tasks RunAll --workers 2"
        exit 0
      fi
      sleep 0.1
    done
    echo "luigid did not answer on 127.0.0.1:$PORT; see $DIR/log" >&2; exit 1 ;;
  stop)
    if running; then kill "$(cat "$PIDFILE")"; echo "luigid stopped"; else echo "luigid was not running"; fi
    rm -f "$PIDFILE" ;;
  status)
    if running; then echo "luigid running (pid $(cat "$PIDFILE")): http://127.0.0.1:$PORT/"; else echo "luigid not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
