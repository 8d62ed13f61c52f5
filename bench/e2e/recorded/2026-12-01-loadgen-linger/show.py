import json,sys,glob
for d in sorted(glob.glob(sys.argv[1]+'/*-[0-9]')):
    f=d+'/results.jsonl'
    try: rows=[json.loads(l) for l in open(f)]
    except FileNotFoundError: continue
    cpu=[r for r in rows if r.get('what')=='cpu']
    vis=[r for r in rows if r.get('measure')=='visible']
    pro=[r for r in rows if r.get('measure')=='produced']
    prod=[r for r in rows if r.get('what')=='produce' and r.get('rate_target')]
    print(d.split('/')[-1], 'cpu/ev', [c['sut_cpu_us_per_event'] for c in cpu], 'broker', [c['broker_cores'] for c in cpu], 'loadgen', [c['loadgen_cores'] for c in cpu], 'busy', [c['machine_busy_cores'] for c in cpu],
      'vis p50/p99', [(round(v['p50_ms']),round(v['p99_ms'])) for v in vis], 'prod p50/p99', [(round(p['p50_ms']),round(p['p99_ms'])) for p in pro], 'behind', [p['max_behind_schedule_ms'] for p in prod])
