#!/usr/bin/env bash
# The kml2csv benchmark: build, generate corpora, time kml2csv against cat and cp (and peers).
#
#   bench/run.sh            full corpora (about 3.5 GB of KML in the scratch folder)
#   bench/run.sh --quick    the same kinds of corpora, ten times smaller (a minute or two)
#
# Options:
#   --quick          smaller corpora (large 4 x 25 MB, single 100 MB, huge coordinates 50 MB;
#                    the small corpus stays 2000 x 50 KB: per-file cost is what it measures)
#   --peers          also time ogr2ogr (WKT), gpsbabel -t and a Python lxml script when installed
#   --peer NAME      only this peer (lxml, ogr2ogr or gpsbabel-t; repeatable); implies --peers
#   --only "A B"     only these corpora (large small single huge)
#   --reps N         repetitions per measurement, the fastest is kept (default 3)
#   --jobs N         workers for the parallel rows and the peers (default 2)
#   --baseline BIN   also time another kml2csv binary (e.g. before a change) with --jobs N
#   --dir DIR        scratch folder (default ${TMPDIR:-/tmp}/kml2csv-bench; never inside the repo)
#
# Every measurement runs on a warm page cache, after `sync`, with GNU time for the peak RSS (the
# largest single process). kml2csv runs with all columns and its durable writes, as a user runs
# it. Nothing here is part of `cargo test`.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
HERE="$REPO/bench"

QUICK=0 PEERS=0 PEER_LIST="" REPS=3 JOBS=2 BASELINE="" ONLY="large small single huge"
DIR=${BENCH_DIR:-${TMPDIR:-/tmp}/kml2csv-bench}
while [ $# -gt 0 ]; do
  case $1 in
    --quick) QUICK=1 ;;
    --peers) PEERS=1 ;;
    --peer) PEERS=1; PEER_LIST="$PEER_LIST $2"; shift ;;
    --only) ONLY=$2; shift ;;
    --reps) REPS=$2; shift ;;
    --jobs) JOBS=$2; shift ;;
    --baseline) BASELINE=$(realpath "$2"); shift ;;
    --dir) DIR=$2; shift ;;
    # The comment block at the top of this file, and nothing after it.
    -h|--help) sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$(realpath -m "$DIR")/" in
  "$REPO"/*) echo "bench/run.sh: keep the scratch folder outside the repository" >&2; exit 2 ;;
esac
PEER_LIST=${PEER_LIST:-"lxml ogr2ogr gpsbabel-t"}
wants() { case " $PEER_LIST " in *" $1 "*) true ;; *) false ;; esac; }
if [ ! -x /usr/bin/time ]; then
  echo "bench/run.sh: needs GNU time for the peak RSS: apt-get install time" >&2
  exit 1
fi

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# name -> "mode files size seed"
declare -A CORPUS
if [ "$QUICK" = 1 ]; then
  CORPUS=([large]="mixed 4 25M 1" [small]="crawled 2000 50K 2" [single]="mixed 1 100M 3" [huge]="huge-coords 1 50M 4")
else
  CORPUS=([large]="mixed 4 250M 1" [small]="crawled 2000 50K 2" [single]="mixed 1 1G 3" [huge]="huge-coords 1 500M 4")
fi
declare -A DESCRIBE=(
  [large]="all geometry kinds, a few big files"
  [small]="crawled GPS days, many small files"
  [single]="one big file (all kinds)"
  [huge]="one <coordinates> element holding the whole file"
)

log "building the release binary and the generator"
(cd "$REPO" && cargo build --release --quiet --bin kml2csv --example gen_kml)
KML2CSV="$REPO/target/release/kml2csv"
GEN="$REPO/target/release/examples/gen_kml"

mkdir -p "$DIR"
RESULTS="$DIR/results.tsv"
: > "$RESULTS"

# Generate a corpus unless the same parameters already made it (the generator is deterministic).
corpus() {
  local name=$1 dir="$DIR/corpus/$1" spec=${CORPUS[$1]}
  read -r mode files size seed <<< "$spec"
  if [ "$(cat "$dir/.spec" 2>/dev/null)" != "$spec" ]; then
    log "generating $name: $files x $size ($mode, seed $seed)"
    rm -rf "$dir"
    "$GEN" "$dir" --mode "$mode" --files "$files" --size "$size" --seed "$seed" --prefix "${name}_" > /dev/null
    echo "$spec" > "$dir/.spec"
  fi
}

# What the generator wrote: "files bytes tuples".
manifest() {
  awk -F'\t' 'NR > 1 { f++; b += $2; t += $3 } END { printf "%d %d %d\n", f, b, t }' "$DIR/corpus/$1/manifest.tsv"
}

list() { find "$DIR/corpus/$1" -maxdepth 1 -name '*.kml' -print0 | sort -z; }

# Outputs of many small files are not deleted right after a measurement but at the end: ext4
# skips inodes freed in the last minutes when it allocates new ones (`recently_deleted`), so
# creating 2000 files just after deleting 2000 costs more system time than converting them, and
# whichever tool ran next would pay for the previous one's clean-up.
RUN=0
fresh_out() {
  RUN=$((RUN + 1))
  OUT="$DIR/out/$RUN"
  mkdir -p "$OUT"
}
drop_out() {
  if [ "$(find "$OUT" -type f | head -101 | wc -l)" -gt 100 ]; then
    mkdir -p "$DIR/trash"; mv "$OUT" "$DIR/trash/$RUN"
  else
    rm -rf "$OUT"
  fi
}

# measure CORPUS TOOL COMMAND...: run REPS times into a new empty $OUT, keep the fastest wall
# time and the largest peak RSS. The command sees $IN (the corpus folder) and $OUT. With $PREPARE
# set, that command runs first in each new $OUT, untimed.
measure() {
  local corpus=$1 tool=$2; shift 2
  local best="" rss=0 rows="" tf="$DIR/time.out" lg="$DIR/log.$corpus.$tool"
  export IN="$DIR/corpus/$corpus" OUT
  for _ in $(seq "$REPS"); do
    fresh_out
    if [ -n "${PREPARE:-}" ]; then sh -c "$PREPARE" > /dev/null 2>&1; fi
    sync
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M' -o "$tf" "$@" > "$lg" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    OUT_BYTES=$(du -sb "$OUT" | cut -f1)
    drop_out
    if [ "$rc" != 0 ]; then
      log "$tool on $corpus failed (exit $rc), see $lg"
      tail -3 "$lg" >&2
      return 0
    fi
    local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    if [ -z "$best" ] || awk -v w="$wall" -v b="$best" 'BEGIN { exit !(w < b) }'; then best=$wall; fi
    local r; r=$(tail -1 "$tf")
    [ "$r" -gt "$rss" ] && rss=$r
    # kml2csv's summary line: "...; N rows, ..."
    rows=$(sed -nE 's/.*; ([0-9]+) rows?,.*/\1/p' "$lg" | tail -1)
  done
  printf '%s\t%s\t%s\t%s\t%s\n' "$corpus" "$tool" "$best" "$rss" "${rows:--}" >> "$RESULTS"
  log "$tool on $corpus: ${best}s, peak RSS $((rss / 1024)) MB"
}

# Peers: the ways a user would do this without kml2csv, $JOBS at a time like kml2csv.
peer_lxml() { python3 "$HERE/peer_lxml.py" --jobs "$JOBS" "$IN" "$OUT"; }
peer_ogr2ogr() {
  list_in | xargs -0 -P"$JOBS" -I{} sh -c 'f=$1; ogr2ogr -f CSV "$OUT/$(basename "$f" .kml)" "$f" -lco GEOMETRY=AS_WKT' _ {}
}
peer_gpsbabel() {
  list_in | xargs -0 -P"$JOBS" -I{} sh -c 'f=$1; gpsbabel -t -i kml -f "$f" -o unicsv -F "$OUT/$(basename "$f" .kml).csv"' _ {}
}
list_in() { find "$IN" -maxdepth 1 -name '*.kml' -print0 | sort -z; }
export -f list_in peer_lxml peer_ogr2ogr peer_gpsbabel
export JOBS HERE

KML2CSV_RUN='exec "$0" "$IN/*.kml" --out "$OUT" --jobs "$1"'

for c in $ONLY; do
  [ -n "${CORPUS[$c]:-}" ] || { echo "bench/run.sh: no corpus $c" >&2; exit 2; }
  corpus "$c"
done

# ext4 passes over inodes freed in the last minute (five while their table is not yet written
# back) when it allocates: right after a clean-up of thousands of files, such as the end of the
# previous benchmark, every file created costs a scan, and the small corpus measures that
# instead of the tools. So write the clean-up back and let that minute pass first.
CLEANED="$DIR/cleaned-at"
if [ -f "$CLEANED" ]; then
  sync
  wait_s=$(( $(cat "$CLEANED") + 70 - $(date +%s) ))
  if [ "$wait_s" -gt 0 ]; then
    log "waiting ${wait_s}s: the last benchmark deleted its outputs less than a minute ago"
    sleep "$wait_s"
  fi
fi

for c in $ONLY; do
  list "$c" | xargs -0 cat > /dev/null   # warm the page cache
  measure "$c" cat sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cat > /dev/null'
  measure "$c" cp sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cp -t "$OUT"'
  # (the pattern is quoted: kml2csv expands it itself, as users are told to do)
  measure "$c" "kml2csv-j$JOBS" sh -c "$KML2CSV_RUN" "$KML2CSV" "$JOBS"
  # What no converter can go below: read the KML and write as many bytes as kml2csv's CSVs
  # (about twice the input), in one process, into one file. Against cp it shows how much of
  # the gap is the size of the output rather than the conversion.
  export CSV_BYTES=$OUT_BYTES
  measure "$c" floor sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cat > /dev/null && dd if=/dev/zero of="$OUT/floor.csv" bs=1M count="$CSV_BYTES" iflag=count_bytes status=none'
  measure "$c" kml2csv-j1 sh -c "$KML2CSV_RUN" "$KML2CSV" 1
  # What every Makefile and cron run does: convert again over the CSVs of a previous run.
  if [ "$c" = small ]; then
    PREPARE="\"$KML2CSV\" \"\$IN/*.kml\" --out \"\$OUT\" --quiet" \
      measure "$c" "kml2csv-force-j$JOBS" sh -c "$KML2CSV_RUN --force" "$KML2CSV" "$JOBS"
  fi
  if [ -n "$BASELINE" ]; then
    measure "$c" "baseline-j$JOBS" sh -c "$KML2CSV_RUN" "$BASELINE" "$JOBS"
  fi
  if [ "$PEERS" = 1 ] && { [ "$c" = large ] || [ "$c" = small ]; }; then
    if ! wants lxml; then :
    elif python3 -c 'import lxml' 2> /dev/null; then
      measure "$c" lxml bash -c peer_lxml
    else log "lxml: not installed (pip install lxml)"; fi
    if ! wants ogr2ogr; then :
    elif command -v ogr2ogr > /dev/null; then
      measure "$c" ogr2ogr bash -c peer_ogr2ogr
    else log "ogr2ogr: not installed (apt-get install gdal-bin)"; fi
    if ! wants gpsbabel-t; then :
    elif command -v gpsbabel > /dev/null; then
      measure "$c" gpsbabel-t bash -c peer_gpsbabel
    else log "gpsbabel: not installed (apt-get install gpsbabel)"; fi
  fi
done
rm -rf "$DIR/out" "$DIR/trash"
date +%s > "$CLEANED"

# --- the table and the goals ----------------------------------------------------------------
MANIFESTS=$(for c in $ONLY; do printf '%s %s %s\n' "$c" "$(manifest "$c")" "${DESCRIBE[$c]}"; done)
echo
echo "kml2csv benchmark ($([ "$QUICK" = 1 ] && echo quick || echo full) corpora, $JOBS jobs, fastest of $REPS; $(nproc) cores; $(date -u +%FT%TZ))"
awk -F'\t' -v manifests="$MANIFESTS" -v jobs="$JOBS" '
  BEGIN {
    n = split(manifests, lines, "\n")
    for (i = 1; i <= n; i++) {
      split(lines[i], f, " "); c = f[1]; files[c] = f[2]; bytes[c] = f[3]; tuples[c] = f[4]
      d = lines[i]; for (k = 1; k <= 4; k++) sub(/^[^ ]+ /, "", d); desc[c] = d
    }
  }
  { corpus[NR] = $1; tool[NR] = $2; wall[NR] = $3; rss[NR] = $4; rows[NR] = $5
    t[$1, $2] = $3; r[$1, $2] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++nc] = $1 } }
  END {
    printf "\n| corpus | tool | files | MB | tuples | wall s | MB/s | Mtuples/s | peak RSS MB | x cat | x cp |\n"
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= NR; i++) {
      c = corpus[i]; mb = bytes[c] / 1e6
      note = ""
      if (rows[i] != "-" && rows[i] != tuples[c]) note = " (" rows[i] " rows!)"
      printf "| %s | %s%s | %d | %.0f | %d | %.2f | %.0f | %.2f | %.1f | %.1f | %.1f |\n", c, tool[i], note,
        files[c], mb, tuples[c], wall[i], mb / wall[i], tuples[c] / wall[i] / 1e6, rss[i] / 1024,
        wall[i] / t[c, "cat"], wall[i] / t[c, "cp"]
    }
    printf "\nCorpora: "
    for (k = 1; k <= nc; k++) printf "%s%s = %s", (k > 1 ? "; " : ""), order[k], desc[order[k]]
    printf ".\n\nGoals (ratios from this run):\n"
    k2 = "kml2csv-j" jobs
    if (("large", "cp") in t && ("large", k2) in t)
      printf "  large: kml2csv / cp = %.1fx (goal <= 4)\n", t["large", k2] / t["large", "cp"]
    if (("large", "cp") in t && ("large", "floor") in t)
      printf "  large: floor (read the KML, write the CSV bytes) / cp = %.1fx\n", t["large", "floor"] / t["large", "cp"]
    for (k = 1; k <= nc; k++) {
      c = order[k]
      if (!((c, k2) in t)) continue
      fastest = ""; for (p = 1; p <= 3; p++) { name = (p == 1 ? "lxml" : p == 2 ? "ogr2ogr" : "gpsbabel-t")
        if ((c, name) in t && (fastest == "" || t[c, name] < t[c, fastest])) fastest = name }
      if (fastest != "")
        printf "  %s: fastest peer (%s) / kml2csv = %.1fx (goal >= 10)\n", c, fastest, t[c, fastest] / t[c, k2]
      if ((c, "kml2csv-force-j" jobs) in t)
        printf "  %s: re-run with --force over existing CSVs / fresh run = %.2fx (goal <= 1.5)\n", c, t[c, "kml2csv-force-j" jobs] / t[c, k2]
      if ((c, "kml2csv-j1") in t)
        printf "  %s: scaling --jobs %d vs --jobs 1 = %.2fx (goal >= 1.8)\n", c, jobs, t[c, "kml2csv-j1"] / t[c, k2]
      printf "  %s: kml2csv peak RSS = %.1f MB (goal <= 64)\n", c, (r[c, k2] > r[c, "kml2csv-j1"] ? r[c, k2] : r[c, "kml2csv-j1"]) / 1024
    }
  }' "$RESULTS"
