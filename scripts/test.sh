#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: test extras, Debian chromium for the browser tests,
# local Leaflet assets (CDNs are unreachable in CI), then pytest. Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install -q -e ".[test]"

if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; browser tests will skip" >&2
fi

if [ -x tests/app/install_assets.sh ] || [ -f tests/app/install_assets.sh ]; then
    bash tests/app/install_assets.sh || echo "warning: could not install Leaflet assets; browser tests will skip" >&2
fi

set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
    echo "pytest collected no tests: failing on purpose" >&2
    exit 1
fi
exit "$status"
