#!/usr/bin/env bash
# Re-downloads the public agent lists and regenerates what trackedge vendors from them:
#   agents/vendor/isbot/               isbot's pattern list (Unlicense), verbatim and in Rust regex syntax
#   agents/vendor/crawler-user-agents/ Monperrus' crawler patterns (MIT)
#   agents/vendor/uap-core/            uap-core's family names and bot matchers (Apache-2.0)
#   agents/vendor/device-detector/     device-detector's browser, PIM, app names and library regexes (LGPL-3.0)
#   tests/fixtures/agents.tsv        the block of crawler rows between the BEGIN/END markers
# then checks every rewritten pattern against isbot's JavaScript originals (node) and
# measures the rules on the fixture.
#
# Needs npm and node (the npm registry), git (device-detector from GitHub) and python3 >= 3.11. `pip install flpc`
# makes the checks run in the Rust regex engine itself (else Python's re stands in).
#
#   scripts/refresh-agents.sh                       # latest versions
#   ISBOT_VERSION=5.2.3 CUA_VERSION=1.60.0 scripts/refresh-agents.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
isbot_version=${ISBOT_VERSION:-latest}
cua_version=${CUA_VERSION:-latest}
uap_version=${UAP_VERSION:-0.18.0}
dd_commit=${DD_COMMIT:-3856a28692d45317d3f15f6f81ca31a06067182a}
data_dir=${AGENTS_DATA_DIR:-agents}   # where agents.toml and vendor/ live, relative to the repository
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm pack --silent "isbot@${isbot_version}" >/dev/null
npm pack --silent "crawler-user-agents@${cua_version}" >/dev/null
npm pack --silent "uap-core@${uap_version}" >/dev/null
mkdir isbot cua uap
tar xzf isbot-*.tgz -C isbot
tar xzf crawler-user-agents-*.tgz -C cua
tar xzf uap-core-*.tgz -C uap

ver=$(node -p "require('./isbot/package/package.json').version")
tarball=$(npm view "isbot@${ver}" dist.tarball)
integrity=$(npm view "isbot@${ver}" dist.integrity)
TARBALL="$tarball" INTEGRITY="$integrity" node -e '
  const m = require("./isbot/package");
  process.stdout.write(JSON.stringify({list: m.list, tarball: process.env.TARBALL, integrity: process.env.INTEGRITY}));
' > isbot-list.json

python3 "$root/scripts/agents_vendor.py" \
  --isbot-dir isbot/package --isbot-list isbot-list.json \
  --cua-dir cua/package --repo "$root" --data-dir "$data_dir"
python3 "$root/scripts/agents_uap.py" --regexes uap/package/regexes.yaml --version "$uap_version" \
  --repo "$root" --data-dir "$data_dir"
# device-detector's client lists (LGPL-3.0, vendored as data) at a pinned commit.
git init -q dd && git -C dd fetch -q --depth 1 https://github.com/matomo-org/device-detector "$dd_commit" \
  && git -C dd checkout -q FETCH_HEAD
python3 "$root/scripts/agents_dd.py" --device-detector dd --commit "$dd_commit" \
  --repo "$root" --data-dir "$data_dir"
# The evaluation set (tests/fixtures/agents-eval/) from third-party parsers' test data at the commits
# pinned in scripts/agents_eval.py; give checkouts of those repositories to rebuild it.
if [ -n "${EVAL_SOURCES_DIR:-}" ]; then
  python3 "$root/scripts/agents_eval.py" --repo "$root" \
    --device-detector "$EVAL_SOURCES_DIR/device-detector" --isbot "$EVAL_SOURCES_DIR/isbot" \
    --uap-core "$EVAL_SOURCES_DIR/uap-core"
fi
python3 "$root/scripts/agents_check.py" --isbot-list isbot-list.json --repo "$root" --data-dir "$data_dir"
python3 "$root/scripts/agents_measure.py" --repo "$root" --data-dir "$data_dir" || {
  echo "refresh-agents: some fixture rows are misread (above); review before committing" >&2
}
echo "refresh-agents: done; review 'git diff -- $data_dir/vendor tests/fixtures' and the Rust fixture test"
