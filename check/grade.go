package check

// Grade derives the letter from the findings. The rule (docs/check.md):
//
//	F   any critical finding, or no TLS session could be established
//	D   two or more high findings
//	C   one high finding
//	B   the worst finding is medium
//	A   the worst finding is low
//	A+  no finding above info, TLS 1.3 accepted, nothing below TLS 1.2
//	    accepted, and the certificate verifies
//
// Only measured facts count: a quick check that did not enumerate cipher
// suites cannot lose points for them, and cannot earn A+ either.
func Grade(r *Report) string {
	highs := 0
	for _, f := range r.Findings {
		if f.Severity == High {
			highs++
		}
	}
	switch w := r.Worst(); {
	case w == Critical || !r.StartTLS.Upgraded:
		return "F"
	case highs >= 2:
		return "D"
	case highs == 1:
		return "C"
	case w == Medium:
		return "B"
	case w == Low:
		return "A"
	}
	v := r.TLS.Versions
	if r.Depth == "full" && v["tls1.3"] && !v["tls1.1"] && !v["tls1.0"] && !v["sslv3"] && r.Certificate.Verification.OK {
		return "A+"
	}
	return "A"
}
