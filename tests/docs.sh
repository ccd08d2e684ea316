#!/usr/bin/env bash
# The docs: every picture is the one its source renders (scripts/docs.sh
# --check: the PNG carries the SHA-256 of the .dot it came from), the check
# notices a changed source, and every relative link in the Markdown files
# names a file that exists.
. "$(dirname "$0")/lib.sh"

SRC=$(cd "$(dirname "$0")/.." && pwd)

expect_exit 0 "every docs/*.png was rendered from its .dot as it is now" "$SRC/scripts/docs.sh" --check
[[ $FAILED == 0 ]] || sed 's/^/    /' "$WORK/err"

# the same check on a copy whose source changed must say so
mkdir -p "$WORK/copy/scripts"
cp -r "$SRC/docs" "$WORK/copy/"
cp "$SRC/scripts/docs.sh" "$WORK/copy/scripts/"
echo '// one more line' >>"$WORK/copy/docs/how-it-works.dot"
expect_exit 1 "a changed .dot makes the check fail" "$WORK/copy/scripts/docs.sh" --check
expect_match "$WORK/err" 'how-it-works.png was not rendered from .*how-it-works.dot' "naming the picture"

# relative links: [text](path) and [text](path#anchor) in the Markdown files
links() {
	local md=$1
	grep -oE '\]\([^)#]+(#[^)]*)?\)' "$md" | sed -E 's/^\]\(([^)#]*).*/\1/' |
		grep -vE '^(https?|mailto|file):' || true
}
n=0
for md in "$SRC/README.md" "$SRC"/docs/*.md "$SRC"/devcontainer/features/*/README.md; do
	[[ -f $md ]] || continue
	while read -r link; do
		[[ -n $link ]] || continue
		n=$((n + 1))
		check "${md#"$SRC"/}: $link exists" test -e "$(dirname "$md")/$link"
	done < <(links "$md")
done
check "the README shows the picture" grep -q '(docs/how-it-works.png)' "$SRC/README.md"
check "the README links docs/security.md" grep -q '(docs/security.md)' "$SRC/README.md"
echo "# $n relative links"
finish
