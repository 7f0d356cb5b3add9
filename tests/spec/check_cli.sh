#!/bin/sh
# check_cli.sh HERD MODELS - herd generate with --draft / --lookup prints the same greedy ids
# as without (tiny random models, several prompts and K), and refuses a draft whose
# vocabulary differs, naming the tokenizer.
set -u
herd=$1
models=$2
fail=0
for target in gqa2_untied_f32 gqa8_untied_f16; do
  for prompt in 1,2,3,4,5 7,8,7,8,7,8,7,8 100,200,300; do
    m=$models/$target/model.gguf
    want=$("$herd" generate -m "$m" --tokens $prompt -n 48 --temp 0 --ids -t 1 2>/dev/null)
    for extra in "--draft $models/gqa1_tied_f32/model.gguf" "--draft $m --draft-max 4" \
                 "--lookup 3" "--draft lookup --draft-max 2 --draft-min 2"; do
      got=$("$herd" generate -m "$m" --tokens $prompt -n 48 --temp 0 --ids -t 1 $extra 2>/dev/null)
      if [ "$got" != "$want" ] || [ -z "$got" ]; then
        echo "FAIL $target $prompt $extra: $got != $want"
        fail=1
      fi
    done
  done
done
if [ -d "$models/realvocab_tied_bf16" ]; then
  msg=$("$herd" generate -m "$models/gqa2_untied_f32/model.gguf" --tokens 1,2 -n 4 --ids -t 1 \
        --draft "$models/realvocab_tied_bf16/model.gguf" 2>&1)
  rc=$?
  case "$msg" in
    *tokenizer*) [ $rc -ne 0 ] || { echo "FAIL: mismatch exit code 0"; fail=1; } ;;
    *) echo "FAIL: vocabulary mismatch not refused clearly: $msg"; fail=1 ;;
  esac
fi
[ $fail -eq 0 ] && echo "check_cli: all passed"
exit $fail
