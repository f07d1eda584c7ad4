#!/usr/bin/env bash
# The whole pipeline on a fresh machine: venv -> SentencePiece -> train (short budget)
# -> translate test_2016_flickr with beam 5 -> sacreBLEU. Settings via environment:
#   MULTI30K   data root (default ../shared/data/multi30k if present, else the HF hub)
#   MINUTES    training budget in wall-clock minutes (default 10)
#   RUN        run directory (default runs/demo)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/venv.sh
DEFAULT_DATA=bentrevett/multi30k
[ -d ../shared/data/multi30k ] && DEFAULT_DATA=../shared/data/multi30k
DATA="${MULTI30K:-$DEFAULT_DATA}"
MINUTES="${MINUTES:-10}"
RUN="${RUN:-runs/demo}"
echo "== training multi30k_de_en for $MINUTES min on $DATA -> $RUN" >&2
python -m nmt.train experiment=multi30k_de_en data.root="$DATA" \
  train.max_minutes="$MINUTES" train.test_at_end=false hydra.run.dir="$RUN"
echo "== translating test_2016_flickr with beam 5" >&2
python -m nmt.evaluate ckpt="$RUN/checkpoints/best.pt" split=test data.root="$DATA" \
  search.beam_size=5 hydra.run.dir="$RUN/eval_test"
echo "== first translations ($RUN/eval_test/hyp.test_2016_flickr.en):" >&2
head -n 5 "$RUN/eval_test/hyp.test_2016_flickr.en"
