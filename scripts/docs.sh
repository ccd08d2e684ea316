#!/usr/bin/env bash
# Render the pictures of the docs from their graphviz sources:
#
#   scripts/docs.sh            docs/*.dot -> docs/*.png (with `dot -Tpng`)
#   scripts/docs.sh --check    fail when a committed PNG is not the one its
#                              .dot renders (needs no graphviz)
#
# Each PNG carries the SHA-256 of the .dot it was rendered from, in a tEXt
# chunk keyed "dindfs-source-sha256". --check compares that with the source
# as it is now: graphviz's pixels differ between versions and fonts, the
# hash does not, so the check is exact wherever it runs. Installs graphviz
# (scripts/deps.sh, DOCS_PACKAGES) when it renders.
set -euo pipefail
cd "$(dirname "$0")/.."

KEY=dindfs-source-sha256

# png_text PNG KEY: the value of the tEXt chunk KEY, or nothing.
png_text() {
	python3 - "$1" "$2" <<-'PY'
		import struct, sys, zlib
		data = open(sys.argv[1], "rb").read()
		if data[:8] != b"\x89PNG\r\n\x1a\n":
		    sys.exit("%s: not a PNG" % sys.argv[1])
		at = 8
		while at < len(data):
		    (n,) = struct.unpack(">I", data[at:at + 4])
		    kind, body = data[at + 4:at + 8], data[at + 8:at + 8 + n]
		    (crc,) = struct.unpack(">I", data[at + 8 + n:at + 12 + n])
		    if zlib.crc32(kind + body) != crc:
		        sys.exit("%s: a damaged %s chunk" % (sys.argv[1], kind.decode()))
		    if kind == b"tEXt" and body.split(b"\0", 1)[0] == sys.argv[2].encode():
		        print(body.split(b"\0", 1)[1].decode())
		    at += 12 + n
	PY
}

# png_stamp PNG KEY VALUE: add a tEXt chunk KEY=VALUE after IHDR.
png_stamp() {
	python3 - "$1" "$2" "$3" <<-'PY'
		import struct, sys, zlib
		path, key, value = sys.argv[1:]
		data = open(path, "rb").read()
		(n,) = struct.unpack(">I", data[8:12])
		end_of_ihdr = 8 + 12 + n
		body = key.encode() + b"\0" + value.encode()
		chunk = struct.pack(">I", len(body)) + b"tEXt" + body + \
		    struct.pack(">I", zlib.crc32(b"tEXt" + body))
		open(path, "wb").write(data[:end_of_ihdr] + chunk + data[end_of_ihdr:])
	PY
}

if [[ ${1:-} == --check ]]; then
	stale=0
	for dot in docs/*.dot; do
		png=${dot%.dot}.png
		want=$(sha256sum "$dot" | cut -d' ' -f1)
		if [[ ! -f $png ]]; then
			echo "docs.sh: $png is missing: run scripts/docs.sh" >&2
			stale=1
		elif [[ $(png_text "$png" "$KEY") != "$want" ]]; then
			echo "docs.sh: $png was not rendered from $dot as it is now: run scripts/docs.sh" >&2
			stale=1
		fi
	done
	exit "$stale"
fi
(($# == 0)) || {
	echo "usage: $0 [--check]" >&2
	exit 2
}

. scripts/deps.sh
install_packages "${DOCS_PACKAGES[@]}"
for dot in docs/*.dot; do
	png=${dot%.dot}.png
	dot -Tpng -Gdpi=110 "$dot" -o "$png.tmp"
	png_stamp "$png.tmp" "$KEY" "$(sha256sum "$dot" | cut -d' ' -f1)"
	mv "$png.tmp" "$png"
	echo "$png"
done
