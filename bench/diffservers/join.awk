# Joins the "field<TAB>value" lines of starttls.jq (first file) and
# testssl.jq (second file) into markdown table rows
# "| field | starttls | testssl | agree |", then one line
# "COUNTS <agreements> <disagreements>" (fields only one tool measured are
# listed but not counted).
BEGIN { FS = "\t" }
FNR == 1 { file++ }
{
  if (!($1 in seen)) { seen[$1] = 1; order[++n] = $1 }
  if (file == 1) a[$1] = $2; else b[$1] = $2
}
function absent(v) { return v == "" || v == "(absent)" || v ~ /^\(n\/a/ }
function setdiff(x, y,    xs, ys, i, m, out, have) {
  m = split(y, ys, " "); delete have
  for (i = 1; i <= m; i++) have[ys[i]] = 1
  m = split(x, xs, " "); out = ""
  for (i = 1; i <= m; i++) if (!(xs[i] in have)) out = out (out == "" ? "" : " ") xs[i]
  return out
}
END {
  agree = 0; disagree = 0
  for (i = 1; i <= n; i++) {
    k = order[i]; x = (k in a) ? a[k] : "(absent)"; y = (k in b) ? b[k] : "(absent)"
    if (absent(x) && absent(y)) continue
    if (absent(x)) { verdict = "testssl only" }
    else if (absent(y)) { verdict = "starttls only" }
    else if (x == y) { verdict = "yes"; agree++ }
    else { verdict = "**NO**"; disagree++ }
    if (k ~ /^suites /) {
      if (verdict == "**NO**") {
        verdict = verdict " (only starttls: " setdiff(x, y) "; only testssl: " setdiff(y, x) ")"
      }
      x = absent(x) ? x : split(x, t, " ") " suites"; y = absent(y) ? y : split(y, t, " ") " suites"
    }
    printf "| %s | %s | %s | %s |\n", k, x, y, verdict
  }
  printf "COUNTS %d %d\n", agree, disagree
}
