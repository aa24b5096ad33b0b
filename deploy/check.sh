#!/usr/bin/env bash
# Checks the deployment files: Prometheus config, rules and rule unit tests (promtool),
# Alertmanager config and routing (amtool), and that the compose file, the Grafana
# provisioning and the dashboard parse. Every yujing_* metric the rules and the dashboard
# use must be one that crates/yujing/src/metrics.rs defines. Needs promtool and amtool
# (Debian: prometheus, prometheus-alertmanager) and python3 with PyYAML.
set -euo pipefail
cd "$(dirname "$0")"

echo "-- promtool check config"
promtool check config prometheus/prometheus.yml
echo "-- promtool check rules"
promtool check rules prometheus/rules/*.yml
echo "-- promtool test rules"
promtool test rules prometheus/tests/*.test.yml

echo "-- amtool check-config"
amtool check-config alertmanager/alertmanager.yml
echo "-- amtool config routes test (alertmanager/routes.test)"
failed=0
while IFS= read -r line; do
    case "$line" in '' | '#'*) continue ;; esac
    expected=${line%% | *}
    labels=${line#* | }
    # shellcheck disable=SC2086 # labels are space-separated name=value words
    if ! got=$(amtool config routes test --config.file=alertmanager/alertmanager.yml \
        --verify.receivers="$expected" $labels 2>/dev/null); then
        echo "routing: {$labels} went to '$got', expected '$expected'" >&2
        failed=1
    fi
done < alertmanager/routes.test
[ "$failed" = 0 ]
echo "routes as expected"

echo "-- compose, provisioning and dashboard parse; metric names exist"
python3 - <<'PY'
import json, pathlib, re, sys, yaml

compose = yaml.safe_load(open("compose.yaml"))
need = {"kafka", "yujing", "prometheus", "alertmanager", "grafana"}
missing = need - set(compose["services"])
assert not missing, f"compose.yaml lacks services {missing}"
for p in sorted(pathlib.Path("grafana/provisioning").rglob("*.yml")):
    assert yaml.safe_load(open(p))["apiVersion"] == 1, p
dashboards = sorted(pathlib.Path("grafana/dashboards").glob("*.json"))
assert dashboards, "no dashboard"
exprs = []
for p in dashboards:
    d = json.load(open(p))
    ids = [panel["id"] for panel in d["panels"]]
    assert len(ids) == len(set(ids)), f"{p}: duplicate panel ids"
    exprs += [t["expr"] for panel in d["panels"] for t in panel.get("targets", [])]
for p in sorted(pathlib.Path("prometheus/rules").glob("*.yml")):
    exprs += [r["expr"] for g in yaml.safe_load(open(p))["groups"] for r in g["rules"]]

used = set()
for e in exprs:
    for m in re.findall(r"(?<![:\w])yujing_[a-z0-9_]+(?![:\w])", e):
        used.add(re.sub(r"_(bucket|sum|count)$", "", m))
src = pathlib.Path("../crates/yujing/src/metrics.rs")
if src.exists():
    defined = set(re.findall(r'"(yujing_[a-z0-9_]+)"', src.read_text()))
    unknown = sorted(used - defined)
    if unknown:
        sys.exit(f"metrics used in deploy/ but not defined in {src}: {unknown}")
    print(f"{len(used)} metric names, all defined in {src}")
else:
    print(f"{src} not found: metric names not cross-checked")
print(f"compose: {len(compose['services'])} services; {len(dashboards)} dashboard(s); {len(exprs)} expressions")
PY
echo "deploy checks passed"
