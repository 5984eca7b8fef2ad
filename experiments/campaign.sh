#!/usr/bin/env bash
# Re-run every recorded experiment (skipping runs whose metrics.json exists), then regenerate
# experiments/results.csv and RESULTS.md. One training at a time; about 4 h on 2 CPU cores.
#   bash experiments/campaign.sh            # all rows
#   bash experiments/campaign.sh bi_best    # only the named experiments
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
SEEDS=${SEEDS:-"0 1 2"}
only=("$@")

wanted() { [ ${#only[@]} -eq 0 ] || [[ " ${only[*]} " == *" $1 "* ]]; }

run_as() {  # folder experiment seed [extra overrides]: a run recorded under experiments/runs/<folder>
  # (experiment "-": train.py's defaults)
  local name=$1 exp=$2 seed=$3; shift 3
  local dir=experiments/runs/$name/seed$seed recipe=()
  wanted "$name" || return 0
  [ -f "$dir/metrics.json" ] && return 0
  [ "$exp" != "-" ] && recipe=(experiment="$exp")
  mkdir -p "$dir"
  echo "== $name seed $seed"
  $PY train.py "${recipe[@]}" seed="$seed" hydra.run.dir="$dir" trainer.enable_progress_bar=false "$@" > "$dir/train.log" 2>&1 \
    || { echo "FAILED: $name seed $seed (see $dir/train.log)"; return 0; }
  tail -5 "$dir/train.log"
}

run() {  # experiment seed [extra overrides]
  local exp=$1; shift
  run_as "$exp" "$exp" "$@"
}

transfer() {  # experiment seed [data...]: zero-shot transfer of an STS-B model to SICK (train+trial) and MSRP train
  local dir=experiments/runs/$1/seed$2 data
  wanted "$1" || return 0
  shift 2
  local sets=("$@")
  [ ${#sets[@]} -eq 0 ] && sets=(sick msrp)
  for data in "${sets[@]}"; do
    [ -f "$dir/transfer/$data.json" ] && continue
    case $data in
      sick) $PY evaluate.py ckpt="$dir/model.pt" data=sick split=test \
              'data.test=[${sts_resource:sick/SICK_train.txt},${sts_resource:sick/SICK_trial.txt}]' out_dir="$dir/transfer/sick" progress=false > /dev/null || return 0 ;;
      msrp) $PY evaluate.py ckpt="$dir/model.pt" data=msrp split=test \
              'data.test=${sts_resource:msrp/msr_paraphrase_train.txt}' out_dir="$dir/transfer/msrp" progress=false > /dev/null || return 0 ;;
    esac
    cp "$dir/transfer/$data/metrics.json" "$dir/transfer/$data.json"
  done
}

# rows 3-6, then the row-7 candidates (report.py picks each architecture's recipe on dev)
FINETUNED="bi_finetuned_cosine bi_finetuned_cosent cross_finetuned bi_best cross_best bi_cosine_3ep bi_cosent_cosine cross_mean_pool cross_symmetric bi_cosine_cosent_aux bi_augsbert cross_augsbert cross_same_token_types bi_cosine_ema bi_cosine_llrd cross_from_bi cross_from_sick cross_from_sick_ema bi_from_sick bi_soup cross_from_sick_ema_nodrop cross_soup cross_from_sick_msrp cross_distil cross_distil_lr2e-5 cross_distil_soup cross_distil_wide cross_distil_soup_both cross_finetuned_random cross_finetuned_head_lr cross_finetuned_same_types cross_finetuned_random_same_types cross_finetuned_mean_pool"
# the soups average the same seed's models of the recipes they name, so they come after them;
# cross_soup's ingredients share cross_from_sick's first stage (copied into its stage1/ for the time)

start_encoder() {  # experiment seed stage1-experiment [overrides]: a two-stage recipe's first stage, trained
  # into experiments/runs/<experiment>/seed<k>/stage1 and exported as the transformers folder that
  # the experiment's encoder.name_or_path names (start_encoder/)
  local exp=$1 seed=$2 first=$3; shift 3
  local stage=experiments/runs/$exp/seed$seed/stage1 out=experiments/runs/$exp/seed$seed/start_encoder
  wanted "$exp" || return 0
  [ -f "$out/config.json" ] || [ -f "experiments/runs/$exp/seed$seed/metrics.json" ] && return 0
  mkdir -p "$stage"
  [ -f "$stage/model.pt" ] || $PY train.py experiment="$first" seed="$seed" hydra.run.dir="$stage" trainer.enable_progress_bar=false "$@" > "$stage/train.log" 2>&1 \
    || { echo "FAILED: $exp seed $seed stage 1 (see $stage/train.log)"; return 0; }
  $PY export.py ckpt="$stage/model.pt" format=hf out="$out" > /dev/null
}

share_stage() {  # experiment seed metrics-file folder: count a stage (or teacher) trained for another
  # row in <experiment>'s train seconds (report.py adds every stage*/metrics.json)
  local to=experiments/runs/$1/seed$2/$4
  wanted "$1" || return 0
  [ -f "$3" ] && [ ! -f "$to/metrics.json" ] && mkdir -p "$to" && cp "$3" "$to/metrics.json"
  return 0
}

stages() {  # seed: the first stage of every two-stage recipe
  start_encoder cross_from_bi "$1" bi_cosine_3ep
  start_encoder cross_from_sick "$1" cross_best data=sick
  start_encoder cross_from_sick_ema "$1" cross_best data=sick
  start_encoder cross_from_sick_ema_nodrop "$1" cross_best data=sick
  share_stage cross_soup "$1" "experiments/runs/cross_from_sick/seed$1/stage1/metrics.json" stage1
  # second intermediate stage on MSRP, from cross_from_sick's SICK stage (trained just above)
  start_encoder cross_from_sick_msrp "$1" cross_best data=msrp encoder.name_or_path=experiments/runs/cross_from_sick/seed$1/start_encoder
  share_stage cross_from_sick_msrp "$1" "experiments/runs/cross_from_sick/seed$1/stage1/metrics.json" stage0_sick
  start_encoder bi_from_sick "$1" bi_cosine_3ep data=sick
}

distil_stage() {  # experiment seed ranks random-partners: a distilled row's silver pairs (from the
  # same seed's bi_soup neighbours of those ranks plus random partners, labelled by bi_soup) and its
  # third stage on them, from cross_from_sick_msrp's MSRP stage; needs both trained first
  local exp=$1 seed=$2 ranks=$3 partners=$4
  local silver=experiments/silver/stsb-train-bi_soup-$exp-seed$seed.tsv
  [ "$exp" = cross_distil ] && silver=experiments/silver/stsb-train-bi_soup-seed$seed.tsv
  wanted "$exp" || return 0
  share_stage "$exp" "$seed" "experiments/runs/cross_from_sick/seed$seed/stage1/metrics.json" stage0_sick
  share_stage "$exp" "$seed" "experiments/runs/cross_from_sick_msrp/seed$seed/stage1/metrics.json" stage0_msrp
  share_stage "$exp" "$seed" "experiments/runs/bi_soup/seed$seed/metrics.json" stage0_teacher
  [ -f "experiments/runs/$exp/seed$seed/metrics.json" ] && return 0
  [ -f "$silver" ] || $PY augment.py teacher="experiments/runs/bi_soup/seed$seed/model.pt" out="$silver" "ranks=$ranks" random_partners="$partners" seed="$seed" \
    || { echo "FAILED: $exp seed $seed silver pairs"; return 0; }
  start_encoder "$exp" "$seed" cross_best data.train="$silver" trainer.max_epochs=1 \
    encoder.name_or_path="experiments/runs/cross_from_sick_msrp/seed$seed/start_encoder"
}

distil_run() {  # experiment seed: run a $FINETUNED row; cross_distil* rows get their distilled stages first
  case $1 in
    cross_distil) distil_stage cross_distil "$2" '[2,20]' 1; run cross_distil "$2" ;;
    cross_distil_wide) distil_stage cross_distil_wide "$2" '[2,5,10,20,50]' 1; run cross_distil_wide "$2" ;;
    cross_distil_lr2e-5)  # cross_distil's gold stage at row 6's encoder lr, from the same distilled encoder
      share_distil "$1" "$2"; run_as cross_distil_lr2e-5 cross_distil "$2" model.encoder_lr=2e-5 ;;
    cross_distil_soup) share_distil "$1" "$2"; run cross_distil_soup "$2" ;;
    cross_distil_soup_both)  # the same soup, chosen on dev and scored with every pair read in both orders
      share_distil "$1" "$2"; run_as cross_distil_soup_both cross_distil_soup "$2" model.both_orders=true ;;
    cross_finetuned_random)  # row 6 (the peer's settings) with random instead of length-grouped batches
      run_as cross_finetuned_random cross_finetuned "$2" data.group_by_length=false ;;
    cross_finetuned_head_lr)  # row 6 with the new head at the model's default 1e-3 (encoder still 2e-5)
      run_as cross_finetuned_head_lr cross_finetuned "$2" model.head_lr=1e-3 ;;
    cross_finetuned_same_types)  # row 6 with sentence B's token-type embedding started from sentence A's
      run_as cross_finetuned_same_types cross_finetuned "$2" model.same_token_types=true ;;
    cross_finetuned_random_same_types)  # the two row-6 probes that raised dev Spearman, together
      run_as cross_finetuned_random_same_types cross_finetuned "$2" data.group_by_length=false model.same_token_types=true ;;
    cross_finetuned_mean_pool)  # row 6 with the head over the mean of all token states (how the encoder was trained)
      run_as cross_finetuned_mean_pool cross_finetuned "$2" model.pooling=mean ;;
    *) run "$1" "$2" ;;
  esac
}

share_distil() {  # experiment seed: count cross_distil's stages (and teacher) in a row built on them
  local from=experiments/runs/cross_distil/seed$2 stage
  for stage in stage0_sick stage0_msrp stage0_teacher; do
    share_stage "$1" "$2" "$from/$stage/metrics.json" "$stage"
  done
  share_stage "$1" "$2" "$from/stage1/metrics.json" stage0_silver
}

rescore_both() {  # experiment seed: a cross-encoder row's model (trained and recorded scoring pairs as
  # given) scored in both orders on dev and test, for report.py's both-orders table
  local dir=experiments/runs/$1/seed$2 split
  wanted "$1" || return 0
  [ -f "$dir/model.pt" ] || return 0
  for split in val test; do
    [ -f "$dir/both_orders/$split.json" ] && continue
    $PY evaluate.py ckpt="$dir/model.pt" split=$split both_orders=true out_dir="$dir/both_orders/$split" progress=false > /dev/null || return 0
    cp "$dir/both_orders/$split/metrics.json" "$dir/both_orders/$split.json"
  done
}
RESCORED="cross_finetuned cross_finetuned_random cross_finetuned_head_lr cross_finetuned_same_types cross_finetuned_random_same_types cross_finetuned_mean_pool cross_best cross_from_sick_msrp cross_distil cross_distil_lr2e-5 cross_distil_soup"

teacher() {  # architecture seed: the all-mpnet-base-v2 teacher (issue 23), when MPNET names its folder
  [ -n "${MPNET:-}" ] || { wanted "teacher_mpnet_$1" && echo "skipped teacher_mpnet_$1: set MPNET=<all-mpnet-base-v2 folder> (README, Experiments)"; return 0; }
  run "teacher_mpnet_$1" "$2" encoder.name_or_path="$MPNET"
}

mpnet_distil() {  # seed: bi_distil_mpnet's stages: teacher, silver pairs it labels, silver stage; then the row
  local seed=$1 exp=bi_distil_mpnet silver=experiments/silver/stsb-train-mpnet_bi-seed$1.tsv
  local teacher_dir=experiments/runs/teacher_mpnet_bi/seed$1
  wanted "$exp" || return 0
  [ -f "experiments/runs/$exp/seed$seed/metrics.json" ] && return 0
  if [ ! -f "$silver" ]; then
    [ -f "$teacher_dir/model.pt" ] || { echo "skipped $exp seed $seed: needs $teacher_dir/model.pt (bash experiments/campaign.sh teacher_mpnet_bi with MPNET=...)"; return 0; }
    $PY augment.py teacher="$teacher_dir/model.pt" out="$silver" 'ranks=[2,5,10,20,50]' random_partners=1 seed="$seed" \
      || { echo "FAILED: $exp seed $seed silver pairs"; return 0; }
  fi
  share_stage "$exp" "$seed" "$teacher_dir/metrics.json" stage0_teacher
  start_encoder "$exp" "$seed" bi_cosine_3ep data.train="$silver" trainer.max_epochs=1
  run "$exp" "$seed"
}

silver() {  # AugSBERT pairs for bi_augsbert / cross_augsbert, labelled by two seed-0 bi-encoders
  local out=experiments/silver/stsb-train-neighbours1.tsv
  [ -f "$out" ] && return 0
  wanted bi_augsbert || wanted cross_augsbert || return 0
  run bi_cosine_3ep 0; run bi_best 0
  $PY augment.py 'teacher=[experiments/runs/bi_cosine_3ep/seed0/model.pt,experiments/runs/bi_best/seed0/model.pt]' out="$out"
}
silver

# seed 0 of every row first, so an interrupted campaign still has one of each
run zero_shot 0
stages 0
for exp in $FINETUNED bi_frozen_mlp cross_frozen_cls; do
  distil_run "$exp" 0
done
# ablation: row 4 with length-grouped batches (the default for losses that do not rank within a batch)
run_as bi_finetuned_cosent_length_grouped bi_finetuned_cosent 0 data.group_by_length=true
# learning-rate probes of the two bi-encoder loss families (seed 0)
run_as bi_cosine_lr8e-5 bi_cosine_3ep 0 model.encoder_lr=8e-5
run_as bi_cosent_lr8e-5 bi_best 0 model.encoder_lr=8e-5
run_as bi_cosine_batch32 bi_cosine_3ep 0 data.batch_size=32
# more epochs, no encoder dropout, random (not length-grouped) batches for the cosine-MSE recipe
run_as bi_cosine_ema_5ep bi_cosine_ema 0 trainer.max_epochs=5
run_as bi_cosine_nodrop bi_cosine_3ep 0 encoder.dropout=0.0
run_as bi_cosine_random bi_cosine_3ep 0 data.group_by_length=false
# cross-encoder probes from cross_from_sick_msrp's MSRP stage (seed 0): CoSENT ranking of the logits
# added to BCE, 5 instead of 3 epochs, and cross_soup with the MSRP model as a fourth ingredient
run_as cross_msrp_bce_cosent cross_from_sick_msrp 0 loss=bce_cosent
run_as cross_msrp_5ep cross_from_sick_msrp 0 trainer.max_epochs=5
run_as cross_soup_msrp cross_soup 0 'soup.ingredients=[experiments/runs/cross_from_sick_msrp/seed0/model.pt,experiments/runs/cross_from_sick_ema_nodrop/seed0/model.pt,experiments/runs/cross_from_sick_ema/seed0/model.pt,experiments/runs/cross_from_sick/seed0/model.pt]'
# the default recipe (bi_soup's two ingredients trained in one run) in bf16 autocast (issue 22: on
# CPUs with AMX bf16 matrix products are native; the recorded hardware column says which host ran it)
for s in $SEEDS; do
  run_as bi_soup_bf16 - "$s" trainer.precision=bf16-mixed
  transfer bi_soup_bf16 "$s"
done
for s in $SEEDS; do
  teacher bi "$s"
  teacher cross "$s"
  mpnet_distil "$s"
  transfer bi_distil_mpnet "$s"
done
transfer bi_finetuned_cosine 0
transfer bi_best 0
transfer cross_best 0
transfer bi_cosine_3ep 0
transfer cross_augsbert 0
transfer cross_from_sick 0 msrp  # trained on SICK in stage 1: only MSRP is zero-shot
transfer cross_from_sick_ema 0 msrp
transfer bi_soup 0
transfer cross_from_sick_ema_nodrop 0 msrp
transfer cross_soup 0 msrp
for s in $SEEDS; do
  [ "$s" = 0 ] && continue
  stages "$s"
  for exp in $FINETUNED; do
    distil_run "$exp" "$s"
  done
done
for s in $SEEDS; do
  for exp in $RESCORED; do
    rescore_both "$exp" "$s"
  done
done
$PY experiments/report.py
