#!/usr/bin/env bash
# Refresh the browser libraries the gateway serves itself (gateway/static/vendor/): the live view's sanitiser,
# ANSI colours and code highlighting, and the /docs and /redoc pages' Swagger UI and ReDoc, so that every page
# works with no outside network. Each comes from the npm registry with its licence. The files are committed:
# run this only to change a version, then commit what it wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=gateway/static/vendor
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

fetch() {  # fetch PACKAGE@VERSION DIR FILE...: copy FILEs (paths in the package) and its licence into DEST/DIR
    local spec="$1" dir="$2"
    shift 2
    (cd "$WORK" && rm -rf package && npm pack --silent "$spec" >/dev/null && tar -xzf ./*.tgz && rm ./*.tgz)
    rm -rf "${DEST:?}/$dir" && mkdir -p "$DEST/$dir"
    for file in "$@" LICENSE; do cp "$WORK/package/$file" "$DEST/$dir/"; done
    echo "$spec" >"$DEST/$dir/VERSION"
    rm -rf "$WORK/package"
}

fetch dompurify@3.5.0 dompurify dist/purify.es.mjs
fetch ansi_up@6.0.6 ansi_up ansi_up.js
fetch @highlightjs/cdn-assets@11.11.1 highlightjs es/core.min.js es/languages/python.min.js styles/github.min.css
fetch swagger-ui-dist@5.35.0 swagger-ui swagger-ui-bundle.js swagger-ui.css favicon-32x32.png
fetch redoc@2.5.2 redoc bundles/redoc.standalone.js
echo "vendored into $DEST:"; du -sh "$DEST"/*
