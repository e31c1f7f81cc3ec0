# Normalises a `starttls check --json` report into "field<TAB>value" lines
# that testssl.jq produces from testssl's --jsonfile for the same fields
# (bench/check-vs-testssl.sh, check/testssl_diff_test.go). A field whose
# value is "(absent)" was not measured by this build of check.
def yn: if . == null then "(absent)" elif . then "yes" else "no" end;
def cn: (. // "") | (capture("CN=(?<cn>[^,]+)").cn // .);
def verdict: if . == null then "(absent)"
  elif . == "vulnerable" then "vulnerable"
  elif . == "not-vulnerable" or startswith("n/a") then "not-vulnerable"
  else "error" end;
def line($k; $v): "\($k)\t\(if $v == null or $v == "" then "(absent)" else $v end)";
. as $r
| (["sslv2","sslv3","tls1.0","tls1.1","tls1.2","tls1.3"][] as $v
    | line("version " + $v; ($r.tls.versions[$v] // false | yn))),
  (["sslv3","tls1.0","tls1.1","tls1.2","tls1.3"][] as $v
    | select($r.tls.versions[$v] == true)
    | line("suites " + $v; ($r.tls.cipher_suites[$v] // [] | sort | join(" ")))),
  line("ec groups"; ($r.tls.groups // [] | map(select(startswith("ffdhe") | not)) | sort | join(" "))),
  ($r.certificate.chain // [] | .[0]) as $c
  | line("cert subject CN"; ($c.subject | cn)),
    line("cert issuer CN"; ($c.issuer | cn)),
    line("cert not after (UTC)"; ($c.not_after // "" | .[0:16] | sub("T"; " "))),
    line("cert key"; (if $c == null then null else "\($c.key_type // "" | split(" ")[0] | sub("ECDSA"; "EC")) \($c.key_bits)" end)),
    line("cert signature"; ($c.signature_algorithm // "" | ascii_upcase | [scan("[A-Z0-9]+")] | sort | join(" "))),
    # no chain: the certificate was not seen, so its verdicts mean nothing
    line("cert chain length"; ($r.certificate.chain // [] | length | if . == 0 then null else . end)),
    line("cert trusted"; (if $c == null then null else $r.certificate.verification.trusted end | yn)),
    line("cert name match"; (if $c == null then null else $r.certificate.verification.name_match end | yn)),
    line("cert expired"; (if $c == null then null else $r.certificate.verification.expired end | yn)),
    line("OCSP stapled"; (if $c == null then null else $r.certificate.ocsp_stapled end | yn)),
    line("must-staple"; ($r.tls.facts.must_staple | yn)),
    line("SCTs"; ($r.tls.facts.scts | if . == null then "(absent)" elif ([.[]] | add // 0) > 0 then "yes" else "no" end)),
    line("session id issued"; ($r.tls.facts.session_id_issued | yn)),
    line("resumption by session id"; ($r.tls.facts.resumption_id | yn)),
    line("resumption by ticket"; ($r.tls.facts.resumption_ticket | yn)),
    line("ticket lifetime s"; ($r.tls.facts.ticket_lifetime_s // "(absent)")),
    line("secure renegotiation"; ($r.tls.facts.secure_renegotiation | yn)),
    line("DH group"; ($r.tls.facts | if . == null or .dh_group_bits == null then "(absent)" else "\(.dh_group_bits) bits" end)),
  (($r.tls.vulnerabilities // {}) as $v
  | (
    ["heartbleed","heartbleed"], ["CCS","ccs-injection"], ["ROBOT","robot"],
    ["secure_renego","no-secure-renegotiation"], ["secure_client_renego","client-renegotiation"],
    ["CRIME_TLS","tls-compression"], ["fallback_SCSV","no-fallback-scsv"], ["SWEET32","sweet32"],
    ["FREAK","export-cipher"], ["BEAST","cbc-only-tls10"],
    ["LUCKY13","lucky13"], ["RC4","rc4"]
    ) as [$t, $s]
  | line("vuln \($t) / \($s)"; ($v[$s] | verdict))
  ),
  line("vuln LOGJAM+DH_groups / weak-dh"; ($r.tls.vulnerabilities["weak-dh"] | verdict)),
  line("vuln POODLE_SSL / sslv3 accepted"; (if $r.tls.versions.sslv3 == true then "vulnerable" else "not-vulnerable" end)),
  line("vuln DROWN / sslv2 accepted"; (if $r.tls.versions.sslv2 == true then "vulnerable" else "not-vulnerable" end))
