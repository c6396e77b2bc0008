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
# Every measurement runs on a warm page cache, after `sync`, with GNU time for the CPU time and
# the peak RSS (the largest single process). kml2csv runs with its durable writes, as a user
# runs it. At the end it prints every tool's figures and the goals, each a ratio of two
# measurements of this run, in Markdown: the durable batch against its floor (the larger of
# CPU alone and disk alone), CPU time against the Python lxml peer on one large file (with
# --peers or --peer lxml), -j1 against -j2, threads started and sync calls (perf or strace),
# a re-run over existing CSVs against a fresh run, one process per file against cp + sync (of the
# file, and for reference of the file and its folder, as kml2csv flushes both), the
# small batch against a durable copy of its CSVs, and peak RSS.
# Nothing here is part of `cargo test`.
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
: > "$DIR/reps.tsv"

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
# On a virtual machine whose host takes back the guest's free memory (virtio-balloon free page
# reporting), a page the guest has not touched for a while costs a fault on the host when it
# is written again: outputs kept in the page cache made every later measurement write into
# such pages, and within one run -j2 over the small corpus went from 0.14 s to 1.3 s of system
# time, the durable copy from 0.08 s to 1.3 s. So each measurement's outputs leave the page
# cache as they are set aside (they are written back by then), and the next one writes into
# memory just freed, as it would on a machine that keeps its memory.
drop_out() {
  sync
  if command -v python3 > /dev/null; then python3 "$HERE/evict.py" "$OUT"; fi
  if [ "$(find "$OUT" -type f | head -101 | wc -l)" -gt 100 ]; then
    mkdir -p "$DIR/trash"; mv "$OUT" "$DIR/trash/$RUN"
  else
    rm -rf "$OUT"
  fi
}

# measure CORPUS TOOL COMMAND...: run REPS times into a new empty $OUT, keep the fastest wall
# time, the least CPU time (user + system, of the command and all it waited for) and the largest
# peak RSS. The command sees $IN (the corpus folder) and $OUT. With $PREPARE set, that command
# runs first in each new $OUT, untimed.
measure() {
  local corpus=$1 tool=$2; shift 2
  local best="" cpu="" rss=0 rows="" tf="$DIR/time.out" lg="$DIR/log.$corpus.$tool"
  export IN="$DIR/corpus/${corpus/#per-file/small}" OUT
  for _ in $(seq "${MEASURE_REPS:-$REPS}"); do
    fresh_out
    if [ -n "${PREPARE:-}" ]; then sh -c "$PREPARE" > /dev/null 2>&1; fi
    sync
    local t0 t1 rc=0
    t0=$(date +%s.%N)
    /usr/bin/time -f '%M %U %S' -o "$tf" "$@" > "$lg" 2>&1 || rc=$?
    t1=$(date +%s.%N)
    OUT_BYTES=$(du -sb "$OUT" | cut -f1)
    drop_out
    if [ "$rc" != 0 ]; then
      log "$tool on $corpus failed (exit $rc), see $lg"
      tail -3 "$lg" >&2
      return 0
    fi
    local wall; wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
    # Every repetition, in the order run, for a look at how the file system's mood moved.
    printf '%s\t%s\t%s\t%s\n' "$corpus" "$tool" "$wall" "$(tail -1 "$tf")" >> "$DIR/reps.tsv"
    if [ -z "$best" ] || awk -v w="$wall" -v b="$best" 'BEGIN { exit !(w < b) }'; then best=$wall; fi
    local r u s; read -r r u s < <(tail -1 "$tf")
    [ "$r" -gt "$rss" ] && rss=$r
    local c; c=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
    if [ -z "$cpu" ] || awk -v c="$c" -v b="$cpu" 'BEGIN { exit !(c < b) }'; then cpu=$c; fi
    # kml2csv's summary line: "...; N rows, ..."
    rows=$(sed -nE 's/.*; ([0-9]+) rows?,.*/\1/p' "$lg" | tail -1)
  done
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$corpus" "$tool" "$best" "$rss" "${rows:--}" "$cpu" >> "$RESULTS"
  log "$tool on $corpus: ${best}s, CPU ${cpu}s, peak RSS $((rss / 1024)) MB"
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
export KML2CSV

# The system calls a run makes, counted without timing it: threads started and the calls that
# make data durable (fsync, fdatasync and syncfs together), in "threads syncs". perf's
# tracepoints count without slowing the run; strace, the fallback, slows it, and a slower run
# makes more, smaller groups, so its sync count is an upper bound.
COUNTS="$DIR/counts.tsv"
: > "$COUNTS"
count_calls() {
  local corpus=$1 jobs=$2 out="$DIR/out/count-$1-$2" t="$DIR/count.out" threads syncs how
  rm -rf "$out"
  if perf stat -e syscalls:sys_enter_syncfs -o /dev/null true 2> /dev/null; then
    how=perf
    perf stat -x, -o "$t" -e syscalls:sys_enter_clone,syscalls:sys_enter_clone3,syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync,syscalls:sys_enter_syncfs \
      "$KML2CSV" "$DIR/corpus/$corpus/*.kml" --out "$out" --jobs "$jobs" --quiet
    threads=$(awk -F, '/sys_enter_clone/ { n += $1 } END { print n + 1 }' "$t")
    syncs=$(awk -F, '/sys_enter_(fsync|fdatasync|syncfs)/ { n += $1 } END { print n + 0 }' "$t")
  elif command -v strace > /dev/null; then
    how=strace
    strace -f -qq -c -o "$t" -e trace=clone,clone3,fsync,fdatasync,syncfs \
      "$KML2CSV" "$DIR/corpus/$corpus/*.kml" --out "$out" --jobs "$jobs" --quiet
    threads=$(awk '$NF ~ /^clone3?$/ { n += $(NF - 1) } END { print n + 1 }' "$t")
    syncs=$(awk '$NF ~ /^(fsync|fdatasync|syncfs)$/ { n += $(NF - 1) } END { print n + 0 }' "$t")
  else
    log "counting threads and syncs needs perf or strace (apt-get install linux-perf strace)"
    return 0
  fi
  printf '%s\t%s\t%s\t%s\t%s\n' "$corpus" "$jobs" "$threads" "$syncs" "$how" >> "$COUNTS"
  log "counted on $corpus with -j$jobs ($how): $threads threads, $syncs syncs"
  mkdir -p "$DIR/trash"; mv "$out" "$DIR/trash/count-$corpus-$jobs"
}

# One file per invocation, as the README's Makefile recipe runs it, against `cp` and `sync` of
# the same file per invocation: the first $PER_FILE files, one after another.
PER_FILE=200
per_file_kml2csv() {
  list_in | head -z -n "$PER_FILE" | xargs -0 -n1 sh -c '"$KML2CSV" "$1" --out "$OUT" --quiet' _
}
per_file_cp() {
  list_in | head -z -n "$PER_FILE" | xargs -0 -n1 sh -c 'cp "$1" "$OUT/" && sync "$OUT/${1##*/}"' _
}
# The same, also flushing the folder, as kml2csv does so that the new name survives a power
# cut: what its durability costs `cp`.
per_file_cp_folder() {
  list_in | head -z -n "$PER_FILE" | xargs -0 -n1 sh -c 'cp "$1" "$OUT/" && sync "$OUT/${1##*/}" "$OUT"' _
}
export -f per_file_kml2csv per_file_cp per_file_cp_folder
export PER_FILE

for c in $ONLY; do
  [ -n "${CORPUS[$c]:-}" ] || { echo "bench/run.sh: no corpus $c" >&2; exit 2; }
  corpus "$c"
done

# ext4 without a journal (as on many virtual machines) passes over inodes freed in the last
# minute when it allocates, and over those freed in the last six while their inode table is
# dirty (`recently_deleted`: 60 s, +300 s). Each file created right after a clean-up of
# thousands, such as the end of the previous benchmark, then costs a scan of them: a fresh -j2
# over the small corpus spent 40 % of its time there, its system time went from 0.14 s to
# 1.56 s within one run, and a --force re-run measured later in the run paid more than the
# fresh run it is compared with. Writing the clean-up back does not end it: the benchmark's
# own new files dirty the same tables again. So let six minutes pass since the last clean-up.
# What the host's taking back of free memory does is undone for each measurement in drop_out;
# -j1 and -j2 still take turns below, and figures of the small corpus are only compared within
# one run.
CLEANED="$DIR/cleaned-at"
if [ -f "$CLEANED" ]; then
  sync
  wait_s=$(( $(cat "$CLEANED") + 370 - $(date +%s) ))
  if [ "$wait_s" -gt 0 ]; then
    log "waiting ${wait_s}s: the last benchmark deleted its outputs less than six minutes ago"
    sleep "$wait_s"
  fi
fi

for c in $ONLY; do
  list "$c" | xargs -0 cat > /dev/null   # warm the page cache
  measure "$c" cat sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cat > /dev/null'
  measure "$c" cp sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cp -t "$OUT"'
  # (the pattern is quoted: kml2csv expands it itself, as users are told to do). -j1 and
  # -j$JOBS take turns, so that their ratio is not the file system's mood of the moment: on
  # the small corpus, creating 2000 files costs from one to five times as much system time
  # from one minute to the next.
  #
  # Every ratio of a goal is between measurements taken in turns like these, never one after
  # the other's repetitions: on this kind of machine (a VM on a shared host) the CPU's speed
  # moved by twice from one minute to the next (one conversion took 0.42 s of CPU, then 0.88 s).
  # The floor of a durable batch is the larger of its two parts, each alone: the conversion
  # without the disk (every file to standard output, $JOBS at a time, nothing kept; not for
  # the small corpus, where it would time 2000 process starts), and the disk without the
  # conversion (a durable copy of the very CSVs the batch writes, made here untimed). A batch
  # that overlaps them runs close to the larger one.
  CSVS="$DIR/csvs/$c"
  if [ ! -d "$CSVS" ]; then
    "$KML2CSV" "$DIR/corpus/$c/*.kml" --out "$CSVS.part" --quiet && mv "$CSVS.part" "$CSVS"
  fi
  export CSVS
  for _ in $(seq "$REPS"); do
    MEASURE_REPS=1 measure "$c" "kml2csv-j$JOBS" sh -c "$KML2CSV_RUN" "$KML2CSV" "$JOBS"
    MEASURE_REPS=1 measure "$c" kml2csv-j1 sh -c "$KML2CSV_RUN" "$KML2CSV" 1
    if [ -n "$BASELINE" ]; then
      MEASURE_REPS=1 measure "$c" "baseline-j$JOBS" sh -c "$KML2CSV_RUN" "$BASELINE" "$JOBS"
    fi
    [ "$c" = small ] || MEASURE_REPS=1 measure "$c" cpu-alone sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 -P"$1" -n1 sh -c '\''"$KML2CSV" "$1" --out - > /dev/null'\'' _' _ "$JOBS"
    MEASURE_REPS=1 measure "$c" disk-alone sh -c 'cp -r "$CSVS/." "$OUT/" && sync'
    if [ "$c" = small ]; then
      # What every Makefile and cron run does: convert again over the CSVs of a previous run.
      PREPARE="\"$KML2CSV\" \"\$IN/*.kml\" --out \"\$OUT\" --quiet" MEASURE_REPS=1 \
        measure "$c" "kml2csv-force-j$JOBS" sh -c "$KML2CSV_RUN --force" "$KML2CSV" "$JOBS"
    fi
  done
  # What no converter can go below: read the KML and write as many bytes as kml2csv's CSVs
  # (about twice the input), in one process, into one file. Against cp it shows how much of
  # the gap is the size of the output rather than the conversion.
  export CSV_BYTES=$OUT_BYTES
  measure "$c" read+write sh -c 'find "$IN" -maxdepth 1 -name "*.kml" -print0 | sort -z | xargs -0 cat > /dev/null && dd if=/dev/zero of="$OUT/floor.csv" bs=1M count="$CSV_BYTES" iflag=count_bytes status=none'
  if [ "$c" = small ]; then
    for _ in $(seq "$REPS"); do
      MEASURE_REPS=1 measure per-file kml2csv-per-file bash -c per_file_kml2csv
      MEASURE_REPS=1 measure per-file cp+sync-per-file bash -c per_file_cp
      MEASURE_REPS=1 measure per-file cp+sync-folder-per-file bash -c per_file_cp_folder
    done
    count_calls "$c" 1
    count_calls "$c" "$JOBS"
  fi
  if [ "$c" = large ]; then
    # Speed per core: one file on one worker, to standard output, CPU time against the Python
    # lxml peer's on the same file.
    ONE="$DIR/one"
    first=$(list "$c" | head -z -n1 | tr -d '\0')
    rm -rf "$ONE"; mkdir -p "$ONE"; ln -s "$first" "$ONE/"
    export ONE
    lxml_one=0
    if [ "$PEERS" = 1 ] && wants lxml && python3 -c 'import lxml' 2> /dev/null; then lxml_one=1; fi
    for _ in $(seq "$REPS"); do
      MEASURE_REPS=1 measure one "kml2csv-j1-stdout" sh -c 'exec "$KML2CSV" "$ONE"/*.kml --jobs 1 --out - > /dev/null'
      if [ "$lxml_one" = 1 ]; then
        MEASURE_REPS=1 measure one lxml sh -c 'exec python3 "$HERE/peer_lxml.py" --jobs 1 "$ONE" "$OUT"'
      fi
    done
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
# The one file timed against lxml: the large corpus's first, with its line of the manifest.
if [ -s "$DIR/corpus/small/manifest.tsv" ] && grep -q '^per-file' "$RESULTS"; then
  per=$(awk -F'\t' -v n="$PER_FILE" 'NR > 1 && NR <= n + 1 { f++; b += $2; t += $3 } END { printf "per-file %d %d %d", f, b, t }' "$DIR/corpus/small/manifest.tsv")
  MANIFESTS=$(printf '%s\n%s the first %d files of the small corpus, one process each' "$MANIFESTS" "$per" "$PER_FILE")
fi
if [ -e "$DIR/one" ] && grep -q '^one' "$RESULTS"; then
  one=$(awk -F'\t' 'NR == 2 { printf "one 1 %d %d", $2, $3 }' "$DIR/corpus/large/manifest.tsv")
  MANIFESTS=$(printf '%s\n%s one file of the large corpus, to standard output' "$MANIFESTS" "$one")
fi
MACHINE="$(nproc) cores, $(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(df -T "$DIR" | awk 'NR == 2 { print $2 }') on $(df "$DIR" | awk 'NR == 2 { print $1 }'), Linux $(uname -r)"
echo
echo "kml2csv benchmark ($([ "$QUICK" = 1 ] && echo quick || echo full) corpora, $JOBS jobs, fastest of $REPS; $(date -u +%FT%TZ))"
echo "Machine: $MACHINE"
awk -F'\t' -v manifests="$MANIFESTS" -v jobs="$JOBS" -v counts="$(cat "$COUNTS")" -v per_file="$PER_FILE" '
  function ratio(a, b) { return b > 0 ? a / b : 0 }
  function goal(text, value, fmt, ok) {
    printf "| %s | " fmt " | %s |\n", text, value, ok
  }
  BEGIN {
    n = split(manifests, lines, "\n")
    for (i = 1; i <= n; i++) {
      split(lines[i], f, " "); c = f[1]; files[c] = f[2]; bytes[c] = f[3]; tuples[c] = f[4]
      d = lines[i]; for (k = 1; k <= 4; k++) sub(/^[^ ]+ /, "", d); desc[c] = d
    }
    m = split(counts, clines, "\n")
    for (i = 1; i <= m; i++) {
      if (clines[i] == "") continue
      split(clines[i], f, "\t"); threads[f[1], f[2]] = f[3]; syncs[f[1], f[2]] = f[4]; how[f[1]] = f[5]
    }
  }
  # A tool measured in turns with another has a row per turn: keep its fastest wall time, its
  # least CPU time and its largest peak RSS, in the place of its first row.
  {
    if (!(($1, $2) in t)) {
      nr++; corpus[nr] = $1; tool[nr] = $2; at[$1, $2] = nr
      t[$1, $2] = $3; u[$1, $2] = $6; r[$1, $2] = $4
    }
    if ($3 < t[$1, $2]) t[$1, $2] = $3
    if ($6 < u[$1, $2]) u[$1, $2] = $6
    if ($4 > r[$1, $2]) r[$1, $2] = $4
    rows[at[$1, $2]] = $5
    if (!($1 in seen)) { seen[$1] = 1; order[++nc] = $1 }
  }
  END {
    printf "\n| corpus | tool | files | MB | tuples | wall s | CPU s | MB/s | Mtuples/s | peak RSS MB | x cat | x cp |\n"
    printf "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    for (i = 1; i <= nr; i++) {
      c = corpus[i]; mb = bytes[c] / 1e6; wall[i] = t[c, tool[i]]; cpu[i] = u[c, tool[i]]; rss[i] = r[c, tool[i]]
      note = ""
      if (rows[i] != "-" && rows[i] != tuples[c]) note = " (" rows[i] " rows!)"
      xcat = (c, "cat") in t ? sprintf("%.1f", ratio(wall[i], t[c, "cat"])) : "–"
      xcp = (c, "cp") in t ? sprintf("%.1f", ratio(wall[i], t[c, "cp"])) : "–"
      printf "| %s | %s%s | %d | %.0f | %d | %.2f | %.2f | %.0f | %.2f | %.1f | %s | %s |\n", c, tool[i], note,
        files[c], mb, tuples[c], wall[i], cpu[i], ratio(mb, wall[i]), ratio(tuples[c], wall[i] * 1e6), rss[i] / 1024,
        xcat, xcp
    }
    printf "\nCorpora: "
    for (k = 1; k <= nc; k++) printf "%s%s = %s", (k > 1 ? "; " : ""), order[k], desc[order[k]]
    printf ".\n\nGoals, as ratios from this run:\n\n| figure | this run | goal |\n|---|---:|---|\n"
    k2 = "kml2csv-j" jobs
    if (("large", "cpu-alone") in t && ("large", "disk-alone") in t && ("large", k2) in t) {
      floor = t["large", "cpu-alone"] > t["large", "disk-alone"] ? t["large", "cpu-alone"] : t["large", "disk-alone"]
      goal(sprintf("large: durable batch -j%d (%.2f s) / floor = max(CPU alone %.2f s, disk alone %.2f s)", jobs, t["large", k2], t["large", "cpu-alone"], t["large", "disk-alone"]),
        ratio(t["large", k2], floor), "%.2fx", "<= 1.25x")
    }
    if (("one", "lxml") in u && ("one", "kml2csv-j1-stdout") in u)
      goal(sprintf("one 250 MB file, -j1, CPU time: lxml (%.2f s) / kml2csv (%.2f s)", u["one", "lxml"], u["one", "kml2csv-j1-stdout"]),
        ratio(u["one", "lxml"], u["one", "kml2csv-j1-stdout"]), "%.1fx", ">= 25x")
    else if (("one", "kml2csv-j1-stdout") in u)
      printf "| one 250 MB file, -j1, CPU time: kml2csv %.2f s (lxml not timed: --peer lxml) | – | >= 25x |\n", u["one", "kml2csv-j1-stdout"]
    if (("large", "kml2csv-j1") in t && ("large", k2) in t)
      goal(sprintf("large: -j1 / -j%d", jobs), ratio(t["large", "kml2csv-j1"], t["large", k2]), "%.2fx", "scaling")
    if (("small", "kml2csv-j1") in t && ("small", k2) in t)
      goal(sprintf("small: -j1 (%.2f s) / -j%d (%.2f s)", t["small", "kml2csv-j1"], jobs, t["small", k2]),
        ratio(t["small", "kml2csv-j1"], t["small", k2]), "%.2fx", "<= 1.5x")
    for (j = 1; j <= jobs; j += (jobs > 1 ? jobs - 1 : 1)) {
      if (("small", j) in threads) {
        goal(sprintf("small, -j%d: threads started (%s)", j, how["small"]), threads["small", j], "%d", "<= 16")
        goal(sprintf("small, -j%d: fsync + fdatasync + syncfs calls (%s)", j, how["small"]), syncs["small", j], "%d", "<= 100")
      }
    }
    if (("small", "kml2csv-force-j" jobs) in t && ("small", k2) in t)
      goal("small: re-run with --force over existing CSVs / fresh run", ratio(t["small", "kml2csv-force-j" jobs], t["small", k2]), "%.2fx", "<= 1.5x")
    if (("small", "disk-alone") in t && ("small", k2) in t)
      goal(sprintf("small: -j%d (%.2f s) / durable copy of its CSVs, cp -r + sync (%.2f s)", jobs, t["small", k2], t["small", "disk-alone"]),
        ratio(t["small", k2], t["small", "disk-alone"]), "%.2fx", "<= 1x")
    if (("per-file", "kml2csv-per-file") in t && ("per-file", "cp+sync-per-file") in t)
      goal(sprintf("small: one file per invocation, %.1f ms / cp + sync of the file, %.1f ms", t["per-file", "kml2csv-per-file"] / files["per-file"] * 1000, t["per-file", "cp+sync-per-file"] / files["per-file"] * 1000),
        ratio(t["per-file", "kml2csv-per-file"], t["per-file", "cp+sync-per-file"]), "%.2fx", "<= 1x")
    if (("per-file", "kml2csv-per-file") in t && ("per-file", "cp+sync-folder-per-file") in t)
      goal(sprintf("small: one file per invocation / cp + sync of the file and its folder, %.1f ms (both flushes kml2csv makes)", t["per-file", "cp+sync-folder-per-file"] / files["per-file"] * 1000),
        ratio(t["per-file", "kml2csv-per-file"], t["per-file", "cp+sync-folder-per-file"]), "%.2fx", "for reference")
    for (k = 1; k <= nc; k++) {
      c = order[k]
      if (!((c, k2) in t)) continue
      fastest = ""; for (p = 1; p <= 3; p++) { name = (p == 1 ? "lxml" : p == 2 ? "ogr2ogr" : "gpsbabel-t")
        if ((c, name) in t && (fastest == "" || t[c, name] < t[c, fastest])) fastest = name }
      if (fastest != "")
        goal(sprintf("%s: fastest peer (%s) / kml2csv -j%d, wall", c, fastest, jobs), ratio(t[c, fastest], t[c, k2]), "%.1fx", ">= 10x")
      goal(sprintf("%s: kml2csv peak RSS, MB", c), (r[c, k2] > r[c, "kml2csv-j1"] ? r[c, k2] : r[c, "kml2csv-j1"]) / 1024, "%.1f", "<= 64")
    }
  }' "$RESULTS"
