#!/usr/bin/env bash
# run_tmux.sh HERD WORKDIR - end-to-end test of `herd run` in a real terminal: a tmux pane
# is driven with send-keys and read with capture-pane, on the tiny random-weight model with
# the real Llama 3 tokenizer (tests/models/make_model.py --config realvocab_tied_bf16).
# Checks: one-shot -p and piped stdin answer once and exit 0; interactively: the banner,
# an answer with its tokens/s line, /help, /system, /reset, a multi-line message, Ctrl-C
# stopping a long answer without ending the program, the context-overflow notice, /exit.
# Exits 77 (skip) without tmux, python3+numpy, or the shared tokenizer.json.
set -u
HERD=$1
WORK=$2
HERE=$(cd "$(dirname "$0")/.." && pwd)
TMUX_BIN=${TMUX_BIN:-$(command -v tmux || true)}
SHARED=${HERD_SHARED_DATA:-$HERE/../../shared/data}

skip() { echo "SKIP: $*"; exit 77; }
SOCK=herd_run_test_$$
T() { "$TMUX_BIN" -L "$SOCK" "$@"; }
fail() { echo "FAIL: $*"; [ -x "${TMUX_BIN:-}" ] && T kill-server 2>/dev/null; exit 1; }

[ -n "$TMUX_BIN" ] && [ -x "$TMUX_BIN" ] || skip "tmux not installed (Debian package tmux)"
python3 -c "import numpy, gguf" 2>/dev/null || skip "python3 with numpy and gguf needed to make the tiny model"
[ -f "$SHARED/llama3/tokenizer.json" ] || skip "$SHARED/llama3/tokenizer.json missing (Llama 3 tokenizer)"
mkdir -p "$WORK"
MODEL=$WORK/realvocab_tied_bf16/model.gguf
if [ ! -f "$MODEL" ]; then
  HERD_SHARED_DATA=$SHARED python3 "$HERE/models/make_model.py" "$WORK" --config realvocab_tied_bf16 \
    >/dev/null 2>&1 || skip "make_model.py could not write the tiny model"
fi
[ -f "$MODEL" ] || skip "make_model.py wrote no $MODEL"

# --- one-shot use
out=$("$HERD" run -m "$MODEL" -p "Hello" -n 8 --seed 1 2>"$WORK/run_p.err") || fail "run -p: $(cat "$WORK/run_p.err")"
grep -q "tokens/s" "$WORK/run_p.err" || fail "run -p: no tokens/s line on stderr"
[ -n "$out" ] || fail "run -p: empty answer"
out2=$("$HERD" run -m "$MODEL" -p "Hello" -n 8 --seed 1 2>/dev/null)
[ "$out" = "$out2" ] || fail "run -p: same seed, different answers"
echo "piped question" | "$HERD" run -m "$MODEL" -n 8 --seed 2 >"$WORK/run_pipe.out" 2>&1 || fail "run with piped stdin"

# --- interactive, in tmux
SESSION=chat1
PANE_LOG=$WORK/pane.txt
T kill-session -t "$SESSION" 2>/dev/null
T new-session -d -s "$SESSION" -x 160 -y 50 \
  "$HERD run -m $MODEL --ctx 200 -n 24 --seed 3; echo HERD-EXITED-\$?; sleep 60" || skip "tmux cannot start a session"
pane() { T capture-pane -p -S -2000 -t "$SESSION" > "$PANE_LOG"; }
# wait_for PATTERN SECONDS: until the pane shows PATTERN (grep -E) more often than before
wait_for() {
  local pat=$1 secs=$2 before after
  before=${3:-0}
  for _ in $(seq $((secs * 5))); do
    pane
    after=$(grep -cE -- "$pat" "$PANE_LOG")
    [ "$after" -gt "$before" ] && return 0
    sleep 0.2
  done
  echo "---- pane ----"; cat "$PANE_LOG"; echo "--------------"
  fail "timed out waiting for '$pat'"
}
count() { pane; grep -cE -- "$1" "$PANE_LOG"; }
send() { T send-keys -t "$SESSION" -l -- "$1"; T send-keys -t "$SESSION" Enter; }

wait_for "chatting with" 60
wait_for "^>>>" 30
n=$(count "tokens/s")
send "Hello, who are you?"
wait_for "tokens/s" 60 "$n"
n=$(count "/reset ")
send "/help"
wait_for "/reset " 30 "$n"
send "/system You are a pirate."
wait_for "system prompt set" 30
send "/reset"
wait_for "conversation cleared\)" 30
# multi-line: a continued line, then a """ block
n=$(count "tokens/s")
send 'first line \'
wait_for '^\.\.\.' 30
send "second line"
wait_for "tokens/s" 60 "$n"
n=$(count "tokens/s")
send '"""'
send "block one"
send "block two"
send '"""'
wait_for "tokens/s" 60 "$n"
# Ctrl-C stops a long answer, not the program
T kill-session -t "$SESSION"
SESSION=chat2
T new-session -d -s "$SESSION" -x 160 -y 50 \
  "$HERD run -m $MODEL --ctx 4096 -n 0 --seed 4; echo HERD-EXITED-\$?; sleep 60"
wait_for "^>>>" 60
send "Write a very long story."
sleep 1
T send-keys -t "$SESSION" C-c
wait_for "stopped \(Ctrl-C\)" 30
wait_for "^>>>" 30 1
[ "$(count HERD-EXITED)" -eq 0 ] || fail "Ctrl-C ended the program"
# Ctrl-C at the prompt does not end it either
T send-keys -t "$SESSION" C-c
sleep 0.5
[ "$(count HERD-EXITED)" -eq 0 ] || fail "Ctrl-C at the prompt ended the program"
T kill-session -t "$SESSION"
SESSION=chat3
# the context overflows: oldest turns are dropped, and stderr says so
T new-session -d -s "$SESSION" -x 160 -y 50 \
  "$HERD run -m $MODEL --ctx 160 -n 16 --seed 5 --system 'Short system prompt.'; echo HERD-EXITED-\$?; sleep 60"
wait_for "^>>>" 60
long="Please tell me about the history of the city of Rome, its emperors, its roads, its aqueducts and its art."
for i in 1 2 3 4; do
  n=$(count "tokens/s")
  send "$long"
  wait_for "tokens/s" 60 "$n"
done
[ "$(count 'outgrew the context')" -gt 0 ] || { cat "$PANE_LOG"; fail "no context-overflow notice after 4 long turns in 160 positions"; }
send "/exit"
wait_for "HERD-EXITED-0" 30
T kill-server 2>/dev/null
echo "run_tmux: all checks passed"
exit 0
