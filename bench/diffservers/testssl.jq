# Normalises testssl.sh 3.0's --jsonfile (a flat array of {id, severity,
# finding}) into the "field<TAB>value" lines of starttls.jq.
def f($id): (map(select(.id == $id)) | first | .finding) // null;
def line($k; $v): "\($k)\t\(if $v == null or $v == "" then "(absent)" else $v end)";
def verdict: if . == null then "(absent)"
  elif test("not vulnerable|^supported|^not offered|^no DH EXPORT|^Client-initiated renegotiation.*not|^OK"; "i") then "not-vulnerable"
  elif test("vulnerable|not supported|NOT ok"; "i") then "vulnerable"
  elif test("^(n/a|no .* offered|test failed|no protocol below|not applicable)"; "i") then "not-vulnerable"
  else "(n/a: testssl could not tell: " + . + ")" end;
def vname:
  { "SSLv2": "sslv2", "SSLv3": "sslv3", "TLS1": "tls1.0", "TLS1_1": "tls1.1", "TLS1_2": "tls1.2", "TLS1_3": "tls1.3" };
. as $a
| (vname | to_entries[] as $e
    | line("version " + $e.value; ($a | f($e.key) | if . == null then "(absent)" elif test("^offered") then "yes" else "no" end))),
  # -E: cipher-tls1_2_xc02f "TLSv1.2 xc02f ECDHE-RSA-AES128-GCM-SHA256 ECDH 253 AESGCM 128 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
  ([$a[] | select(.id | test("^cipher-(ssl3|tls1(_[123])?)_x"))
    | {v: (.id | capture("^cipher-(?<v>[a-z0-9_]+)_x").v
           | if . == "ssl3" then "sslv3" elif . == "tls1" then "tls1.0" else sub("^tls1_"; "tls1.") end),
       s: (.finding | split(" ") | map(select(. != "")) | last)}]
    | group_by(.v)[] | line("suites " + .[0].v; (map(.s) | unique | join(" ")))),
  line("ec groups"; ($a | f("PFS_ECDHE_curves") // f("FS_ECDHE_curves") // ""
    | split(" ") | map(select(. != "") | {"prime256v1": "secp256r1", "X25519": "x25519", "X448": "x448"}[.] // .) | sort | join(" "))),
  line("cert subject CN"; ($a | f("cert_commonName"))),
  line("cert issuer CN"; ($a | f("cert_caIssuers") // "" | sub(" \\(.*\\)$"; ""))),
  line("cert not after (UTC)"; ($a | f("cert_notAfter"))),
  line("cert key"; ($a | f("cert_keySize") // "" | sub(" bits.*$"; "") | sub("^ECDSA"; "EC"))),
  line("cert signature"; ($a | f("cert_signatureAlgorithm") // "" | ascii_upcase | [scan("[A-Z0-9]+")] | map(select(. != "WITH")) | sort | join(" "))),
  line("cert chain length"; ($a | f("certs_countServer"))),
  line("cert trusted"; ($a | f("cert_chain_of_trust") | if . == null then "(absent)" elif test("^passed") then "yes" else "no" end)),
  line("cert name match"; ($a | f("cert_trust") | if . == null then "(absent)" elif test("^Ok via") then "yes" else "no" end)),
  line("cert expired"; ($a | f("cert_expirationStatus") | if . == null then "(absent)" elif test("expired") then "yes" else "no" end)),
  line("OCSP stapled"; ($a | f("OCSP_stapling") | if . == null then "(absent)" elif test("^offered") then "yes" else "no" end)),
  line("must-staple"; ($a | f("cert_mustStapleExtension") | if . == null then "(absent)" elif . == "--" then "no" else "yes" end)),
  line("SCTs"; ($a | f("certificate_transparency") | if . == null then "(absent)" elif . == "N/A" then "(n/a: testssl checks HTTP only)" elif test("^(no|--)") then "no" else "yes" end)),
  line("session id issued"; ($a | f("SSL_sessionID_support") | if . == null then "(absent)" elif test("^yes") then "yes" else "no" end)),
  line("resumption by session id"; ($a | f("sessionresumption_ID") | if . == null then "(absent)" elif test("^supported") then "yes" elif test("not supported|^no"; "i") then "no" else "(n/a: testssl could not tell: " + . + ")" end)),
  line("resumption by ticket"; ($a | f("sessionresumption_ticket") | if . == null then "(absent)" elif test("^supported") then "yes" elif test("not supported|^no"; "i") then "no" else "(n/a: testssl could not tell: " + . + ")" end)),
  # "no -- no lifetime advertised" is a ticket with lifetime hint 0 (RFC 5077: unspecified)
  line("ticket lifetime s"; ($a | f("TLS_session_ticket") | if . == null then "(absent)"
     elif test("no lifetime advertised") then "0"
     else ((capture("valid for (?<s>[0-9]+) seconds").s) // ("(n/a: " + . + ")")) end)),
  line("secure renegotiation"; ($a | f("secure_renego") | if . == null then "(absent)" elif test("^supported") then "yes" elif test("not supported|VULNERABLE"; "i") then "no" else "(n/a: testssl could not tell: " + . + ")" end)),
  # a list of ffdhe names is the named groups the server accepts (TLS 1.3
  # style), not the group of a TLS 1.2 DHE handshake that check reports
  line("DH group"; ($a | f("DH_groups") | if . == null then "(absent)"
     elif test("^ffdhe[0-9]+ ") then "(n/a: testssl lists named groups: " + . + ")"
     else ({"RFC3526/Oakley Group 14": "2048 bits", "RFC7919/ffdhe2048": "2048 bits", "RFC7919/ffdhe3072": "3072 bits",
            "RFC7919/ffdhe4096": "4096 bits", "RFC2409/Oakley Group 2": "1024 bits"}[.]
           // ((capture("(?<b>[0-9]+) bits").b | . + " bits") // ("(" + . + ")"))) end)),
  ([["heartbleed","heartbleed"], ["CCS","ccs-injection"], ["ROBOT","robot"],
    ["secure_renego","no-secure-renegotiation"], ["secure_client_renego","client-renegotiation"],
    ["CRIME_TLS","tls-compression"], ["fallback_SCSV","no-fallback-scsv"], ["SWEET32","sweet32"],
    ["FREAK","export-cipher"], ["BEAST","cbc-only-tls10"],
    ["LUCKY13","lucky13"], ["RC4","rc4"]][] as [$t, $s]
    | line("vuln \($t) / \($s)"; ($a | f($t) | verdict))),
  # testssl reports a DH group under 2048 bits as a MEDIUM LOGJAM (second
  # entry: "no common prime but ... only 1024 bits") and DH_groups; export
  # DH is the first LOGJAM entry.
  line("vuln LOGJAM+DH_groups / weak-dh"; ([$a[] | select(.id == "LOGJAM" or .id == "DH_groups")]
    | if length == 0 then null elif any(.severity | test("MEDIUM|HIGH|CRITICAL")) then "vulnerable" else "not-vulnerable" end)),
  line("vuln POODLE_SSL / sslv3 accepted"; ($a | f("POODLE_SSL") | verdict)),
  line("vuln DROWN / sslv2 accepted"; ($a | f("DROWN") | verdict)),
  line("vuln ticketbleed (testssl only)"; ($a | f("ticketbleed") | verdict))
