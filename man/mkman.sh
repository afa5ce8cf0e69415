#!/bin/sh
# man/mkman.sh — renders a man page template (man/*.in) into mdoc: fills in the install paths and, in
# pollgate.conf.5, the KEYS section from the key reference that build/*/conf-reference prints.
#
#   man/mkman.sh REFERENCE TEMPLATE OUT      (SYSCONFDIR, DATADIR, DOCDIR, SBINDIR, VERSION from the environment)
#
# The reference is one key a line, tab-separated: name, type, default, minimum, maximum, reload|restart,
# description (gateway/config.c, conf_reference). Each key becomes one `.It` entry; nothing about a key is
# written by hand, so the page cannot drift from the table. Plain sh + awk: no tool beyond the build's own.
set -eu
ref=$1 tmpl=$2 out=$3
: "${SYSCONFDIR:?}" "${DATADIR:?}" "${DOCDIR:?}" "${SBINDIR:?}" "${VERSION:?}"

keys=$(awk -F '\t' '
	# roff text: a backslash is \e, a line may not start with a dot or an apostrophe.
	function text(s) { gsub(/\\/, "\\e", s); if (s ~ /^[.\047]/) s = "\\&" s; return s }
	# a text line longer than 78 bytes is split at spaces (mandoc -T lint asks for lines under 80).
	function wrap(s,   n, i, w, line) {
		n = split(s, w, " "); line = ""
		for (i = 1; i <= n; i++) {
			if (line != "" && length(line) + 1 + length(w[i]) > 78) { print line; line = "" }
			if (line == "" && w[i] ~ /^[.\047]/) w[i] = "\\&" w[i]
			line = line == "" ? w[i] : line " " w[i]
		}
		if (line != "") print line
	}
	# an argument of a macro line, double-quoted.
	function arg(s) { gsub(/\\/, "\\e", s); gsub(/"/, "\\(dq", s); return "\"" s "\"" }
	NF != 7 { printf "%s:%d: expected 7 tab-separated fields, got %d\n", FILENAME, NR, NF > "/dev/stderr"; bad = 1; exit 1 }
	$7 == "" { printf "%s:%d: key %s has no description\n", FILENAME, NR, $1 > "/dev/stderr"; bad = 1; exit 1 }
	{
		print ".It Cm " $1 " No = Ar " arg($2)
		d = $7; if (d !~ /[.]$/) d = d "."
		wrap(text(toupper(substr(d, 1, 1)) substr(d, 2)))
		if ($3 == "") print "Default: empty."
		else { print "Default:"; print ".Ql " arg($3) " ." }
		if ($4 != "" && $5 != "") print "Between " text($4) " and " text($5) "."
		if ($6 == "reload") print "Reloaded on"
		else print "Read at start-up only; a change needs a restart, not"
		print ".Dv SIGHUP ."
	}
	END { if (NR == 0 && !bad) { print "no keys in " FILENAME > "/dev/stderr"; exit 1 } }
' "$ref")

tmp=$out.tmp
KEYS=$keys awk '$0 == ".\\\" @KEYS@" { print ENVIRON["KEYS"]; next } { print }' "$tmpl" |
	sed -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" -e "s|@DATADIR@|$DATADIR|g" -e "s|@DOCDIR@|$DOCDIR|g" \
	    -e "s|@SBINDIR@|$SBINDIR|g" -e "s|@VERSION@|$VERSION|g" >"$tmp"
if grep -n '@[A-Z]*@' "$tmp" >&2; then
	echo "mkman: unfilled placeholder in $tmpl" >&2
	rm -f "$tmp"
	exit 1
fi
mv -f "$tmp" "$out"
