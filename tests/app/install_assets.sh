#!/usr/bin/env bash
# Local copies of the web assets folium/leafmap load from CDNs, for the offline browser tests
# (tests/app/test_browser.py serves them with playwright's page.route). Installed into the
# gitignored .cache/e2e-assets; idempotent. Usage: bash tests/app/install_assets.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
DEST=.cache/e2e-assets
if grep -q "\"version\": \"1.0.2\"" "$DEST/node_modules/leaflet-draw/package.json" 2>/dev/null && [ -f "$DEST/node_modules/leaflet/dist/leaflet.js" ]; then
  echo "e2e assets already in $DEST"; exit 0
fi
mkdir -p "$DEST"
npm install --prefix "$DEST" --no-audit --no-fund --no-save --loglevel=error leaflet@1.9.3 leaflet-draw@1.0.2
echo "e2e assets installed in $DEST"
