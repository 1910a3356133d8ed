#!/usr/bin/env bash
# Write the starting corpus of each fuzz target into corpus/<target>/: the
# shapes of real uploads and keys. libFuzzer grows the corpus from there; the
# minimised corpus is committed (see fuzz/README.md).
set -euo pipefail
cd "$(dirname "$0")"
c=corpus/csv_import f=corpus/field_rules k=corpus/public_keys
mkdir -p "$c" "$f" "$k"

printf 'Username,Password,First Name,Last Name,Email,School,Graduation Year,Access Type\njdoe,Secr3t!,Jane,Doe,jane@example.org,Lincoln High,2029,\nnew.kid,,New,Kid,,LHS,3rd,\nt.kaye,,Tom,Kaye,,123456789012,,Teacher\n' > $c/full.csv
printf '\xef\xbb\xbfUsername,First Name\r\nasmith,Al\r\n\r\n"b,c",x\r\n' > $c/bom-crlf.csv
printf 'sourcedId,status,username,givenName,familyName,email,role,grades,password\n1,active,ow.one,Ow,One,ow@example.org,student,09,\n2,active,ow.two,Ow,Two,,teacher,,\n' > $c/oneroster.csv
printf 'Username,Last Name\nmuller,M\xfcller\nnino,Ni\xf1o\n' > $c/windows-1252.csv
printf 'Username,Grade\nkid.one,K\n' | iconv -f UTF-8 -t UTF-16 > $c/utf16.csv
printf 'Username,First Name\n"quo""ted","multi\nline"\nsecond,"a,b"\n' > $c/quoted.csv
printf 'Username,Group\njdoe,Robotics\nasmith,Robotics\njdoe,Chess Club\n' > $c/groups.csv
printf 'Username,Username\nx,y\n' > $c/repeated-column.csv
printf 'First Name\nonly\n' > $c/no-username.csv
printf 'Username,First Name,Last Name\n=cmd|calc,=HYPERLINK("http://x"),+1\n\x27=x,@SUM(A1),-2\nadmin\xe2\x80\xaeresu,Ann\xe2\x80\x8bLee,\xd0\xb0dmin\n' > $c/formulas-bidi.csv
printf 'Username,"Hdr\r\nURGENT: log in at http://x"\njdoe,1\n' > $c/header-crlf.csv
printf 'Username,First Name\njdoe,"never closed\nasmith,Al\n' > $c/open-quote.csv
printf 'Username,Graduation Year,Access Type,Email Address\njdoe,PK,School Admin,bad@\ntaken.elsewhere,13,Nope,x@y\nasmith,twelfth grade,,a@b.org\n' > $c/rules.csv

i=0
for v in jdoe "  JDoe " abc 'a b' 'x@y.org' 'bad@' 'a..b@example.org' PK K 1 12 13 -1 3rd third 'Grade 3' 'third grade' 2026 2040 'Teacher' 'School Admin' 'student' 'administrator' 'Secr3t!' '' 'Ünïcödé' 'O'"'"'Brien'; do
  printf '%s' "$v" > $f/seed-$i; i=$((i+1))
done

tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ssh-keygen -q -t ed25519 -N '' -C 'sis@district' -f "$tmp/ed"
ssh-keygen -q -t ecdsa -b 384 -N '' -f "$tmp/ec"
ssh-keygen -q -t rsa -b 3072 -N '' -f "$tmp/rsa"
cp "$tmp/ed.pub" $k/ed25519.pub
cp "$tmp/ec.pub" $k/ecdsa.pub
cp "$tmp/rsa.pub" $k/rsa.pub
ssh-keygen -e -f "$tmp/ed.pub" > $k/rfc4716.pub
{ echo '# authorized_keys'; printf 'from="10.0.0.1",no-pty %s\n' "$(cat "$tmp/ec.pub")"; echo; cat "$tmp/ed.pub"; } > $k/authorized_keys
