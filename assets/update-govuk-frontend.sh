#!/usr/bin/env bash
# Vendor GOV.UK Frontend's compiled CSS (npm `govuk-frontend`, MIT) into
# assets/govuk-frontend/, from which both web pages embed it at build time
# (assets/govuk.rs). Usage: assets/update-govuk-frontend.sh [VERSION]
# (default: the pinned one in assets/govuk-frontend/VERSION).
#
# Only the CSS is taken: the pages need none of its JavaScript. Its
# @font-face rules are dropped: the GDS Transport typeface may be used on
# GOV.UK services only, so the pages use the documented fallback in the
# compiled font stack (Arial, then the system's sans-serif), and the
# browser asks for no font file.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)/govuk-frontend"
version="${1:-$(cat "$dir/VERSION")}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "govuk-frontend@$version" >/dev/null && tar xzf "govuk-frontend-$version.tgz")
pkg="$tmp/package"
grep -q '"license": "MIT"' "$pkg/package.json"
sed -E 's/@font-face\{[^}]*\}//g' "$pkg/dist/govuk/govuk-frontend.min.css" >"$dir/govuk-frontend.min.css"
if grep -q '@font-face' "$dir/govuk-frontend.min.css"; then
    echo "a @font-face rule is left in govuk-frontend.min.css" >&2
    exit 1
fi
{
    echo "GOV.UK Frontend $version (npm govuk-frontend), compiled CSS, @font-face rules removed."
    echo
    sed -n '/^## Licence/,/^## [^L]/p' "$pkg/README.md" | sed '$d'
    echo
    cat "$dir/../MIT-govuk-frontend.txt"
} >"$dir/LICENCE.md"
echo "$version" >"$dir/VERSION"
echo "govuk-frontend $version: $(wc -c <"$dir/govuk-frontend.min.css") bytes of CSS"
