#!/usr/bin/env bash
# stage.sh MODEL_DIR RATE SECONDS : serve, one oha run, then the stage histograms
set -euo pipefail
model=$1 rate=$2 secs=${3:-8}
out=/tmp/h/st; cd /work/main
source bench/http/common.sh
one_model "$model" "$out"
BUILDS="server=$FLEETSCORE_BIN" serve_builds "$out" 18400
/tmp/oha/bin/oha --no-tui --output-format json -z ${secs}s -q $rate -c 64 --latency-correction -m POST -T application/json -D "$out/row.json" http://127.0.0.1:18401/score > $out/oha.json
python3 -c "
import json; d=json.load(open('$out/oha.json'))['latencyPercentiles']; print('oha p50 %.2f p99 %.2f p99.9 %.2f ms'%(d['p50']*1e3,d['p99']*1e3,d['p99.9']*1e3))"
curl -s http://127.0.0.1:18401/metrics | grep -E 'score_stage_seconds_(bucket|count|sum)' > $out/stages.txt
python3 - $out/stages.txt <<'PY'
import sys,re,collections
b=collections.defaultdict(list); cnt={}
for l in open(sys.argv[1]):
    m=re.match(r'(\w+)_bucket\{(.*)le="([^"]+)"\} (\S+)',l)
    if m:
        st=re.search(r'stage="(\w+)"',m.group(2)).group(1); b[st].append((float(m.group(3)),float(m.group(4))))
for st,v in b.items():
    tot=v[-1][1]
    def q(p):
        for le,c in v:
            if c>=p*tot: return le
    print(st, 'n',int(tot), 'p50<=',q(.5)*1e3,'ms p99<=',q(.99)*1e3,'ms p99.9<=',q(.999)*1e3,'ms', 'over1ms', int(tot-[c for le,c in v if le>=0.001][0]))
PY
