#!/usr/bin/env bash
# Walk through the admin API against a running PromptPipe (bash scripts/serve.sh).
# Usage: examples/walkthrough.sh [BASE_URL]; set API_TOKEN when the service has one.
set -euo pipefail
BASE="${1:-http://127.0.0.1:8080}"
AUTH=()
if [ -n "${API_TOKEN:-}" ]; then
    AUTH=(-H "Authorization: Bearer $API_TOKEN")
fi
# A different number on each run, so a second run does not hit "already enrolled".
DIGITS="1555$(date +%s | tail -c 8)"
PHONE="+${DIGITS:0:1} ${DIGITS:1:3} ${DIGITS:4}"

call() {
    local method="$1" path="$2" body="${3:-}"
    echo "== $method $path" >&2
    if [ -n "$body" ]; then
        curl -sS -X "$method" "${AUTH[@]}" -H 'Content-Type: application/json' \
            -d "$body" "$BASE$path"
    else
        curl -sS -X "$method" "${AUTH[@]}" "$BASE$path"
    fi
    echo
}

call GET /health
participant=$(call POST /conversation/participants \
    "{\"phone_number\": \"$PHONE\", \"name\": \"Ana\", \"timezone\": \"America/Toronto\"}")
echo "$participant"
participant_id=$(printf '%s' "$participant" | python3 -c 'import json,sys; print(json.load(sys.stdin)["result"]["id"])')

call POST /schedule "{\"to\": \"+$DIGITS\", \"body\": \"Time for your one-minute stretch!\",
  \"schedule\": {\"hour\": 9, \"minute\": 30, \"timezone\": \"America/Toronto\"}}"
call GET /timers

call POST /console/inbound "{\"from\": \"+$DIGITS\", \"text\": \"Hi! I want to move more.\"}"
sleep 1
call GET /responses
call GET /receipts
call GET /stats
call GET "/conversation/participants/$participant_id"
