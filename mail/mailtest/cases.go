package mailtest

import (
	"fmt"
	"sort"
	"strings"
)

// build adds one domain's records and policy; nil means the name must
// not exist.
type build func(e *Env, d *domain, pol map[string]policy)

type tcase struct {
	zone, label string
	b           build
	want        []string
	status      string
	note        string
}

// table is every domain of the world. It is data apart from Start so that
// Expected can list the cases without starting anything.
func table() []tcase {
	// The domains. MX names all resolve to the 127.0.0.x hosts above; the
	// zone records need the SMTP port (TLSA owner names), so they are
	// built after the servers are up.
	good := func(mode string) build {
		return func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.sts(pol, okPolicy(mode, d.fqdn("mx1")))
			d.rpt()
		}
	}
	return []tcase{
		{"mail.test", "good", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s MX 20 %s", d.rel(""), d.rel("mx2"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s A %s", d.rel("mx2"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx2"), e.TLSA2)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx1"), "*."+d.fqdn("")))
			d.rpt()
		}, nil, "", "two MX (DANE-EE and DANE-TA), MTA-STS enforce with a wildcard, TLS-RPT"},
		{"mail.test", "badtlsa", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[2] = fmt.Sprintf("%s TLSA 3 1 1 %s", d.tlsaOwner(e, "mx1"), strings.Repeat("ab", 32))
		}, []string{"dane-mismatch"}, "", "TLSA 3 1 1 of another key"},
		{"mail.test", "nosts", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx1"))
			d.add("%s A %s", d.rel("mx1"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx1"), e.TLSA3)
			d.rpt()
		}, []string{"mta-sts-missing"}, "", "no _mta-sts record (DANE protects it: low)"},
		{"mail.test", "badpolicy", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			pol[d.fqdn("mta-sts")] = policy{status: 200, contentType: "text/plain",
				body: "version: STSv1\nmode: enforcing\nmx: " + d.fqdn("mx1") + "\nmax_age: 604800\n"}
		}, []string{"mta-sts-invalid-policy"}, "", "mode: enforcing"},
		{"mail.test", "mismatch", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s MX 20 %s", d.rel(""), d.rel("mx2"))
			d.add("%s A %s", d.rel("mx2"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx2"), e.TLSA2)
		}, []string{"mta-sts-mx-mismatch"}, "", "the policy lists mx1 only"},
		{"mail.test", "testing", good("testing"), []string{"mta-sts-testing"}, "", "mode: testing"},
		{"mail.test", "nostarttls", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), NoTLSMX)
			d.sts(pol, okPolicy("testing", d.fqdn("mx")))
			d.rpt()
		}, []string{"mta-sts-testing", "stripping-possible"}, "", "Postfix without TLS, policy in testing mode only"},
		{"mail.test", "enforcednotls", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), NoTLSMX)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mx-no-starttls"}, "", "Postfix without TLS under MTA-STS enforce: senders defer"},
		{"mail.test", "nullmx", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 0 .", d.rel(""))
		}, []string{"null-mx"}, "no-mail", "MX 0 ."},
		{"mail.test", "nomx", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s A %s", d.rel(""), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, ""), e.TLSA3)
			d.sts(pol, okPolicy("enforce", d.fqdn("")))
			d.rpt()
		}, []string{"no-mx"}, "", "no MX: the domain's A record"},
		{"plain.test", "", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
		}, []string{"dane-no-dnssec"}, "", "unsigned zone with TLSA"},
		{"mail.test", "notlsrpt", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records = d.records[:len(d.records)-1]
		}, []string{"tlsrpt-missing"}, "", "no _smtp._tls record"},
		{"mail.test", "badrpt", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[len(d.records)-1] = fmt.Sprintf(`%s TXT "v=TLSRPTv1; rua=ftp://reports.example"`, d.rel("_smtp._tls"))
		}, []string{"tlsrpt-invalid"}, "", "rua with an ftp: URI"},
		{"mail.test", "badcert", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), BadCertMX)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mta-sts-mx-cert-invalid"}, "", "MX certificate for another name under enforce"},
		{"mail.test", "pkix", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s TLSA 1 %s", d.tlsaOwner(e, "mx1"), strings.TrimPrefix(e.TLSA3, "3 "))
		}, []string{"dane-usage-not-recommended"}, "", "TLSA 1 1 1 next to 3 1 1"},
		{"mail.test", "redirect", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			pol[d.fqdn("mta-sts")] = policy{status: 301, location: "https://" + d.fqdn("www") + "/"}
		}, []string{"mta-sts-fetch-failed"}, "", "the policy URL redirects"},
		{"mail.test", "twosts", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add(`%s TXT "v=STSv1; id=2"`, d.rel("_mta-sts"))
		}, []string{"mta-sts-invalid-record"}, "", "two v=STSv1 records"},
		{"mail.test", "cname", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s CNAME %s", d.rel("mx"), d.rel("real"))
			d.add("%s A %s", d.rel("real"), GoodMX1)
			d.add("%s TLSA %s", d.tlsaOwner(e, "real"), e.TLSA3)
			// The _mta-sts record is an alias too (RFC 8461 §3.1: follow CNAMEs).
			d.add("%s CNAME %s", d.rel("_mta-sts"), d.rel("sts-record"))
			d.add(`%s TXT "v=STSv1; id=cname1"`, d.rel("sts-record"))
			pol[d.fqdn("mta-sts")] = okPolicy("enforce", d.fqdn("mx"))
			d.rpt()
		}, nil, "", "MX name and _mta-sts are CNAMEs; TLSA at the expanded name (RFC 7672 §2.2.2)"},
		{"mail.test", "down", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[1] = fmt.Sprintf("%s A %s", d.rel("mx1"), DownMX)
		}, []string{"mx-unreachable"}, "unreachable", "nothing listens on the MX"},
		{"mail.test", "noaddr", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, []string{"mx-no-address"}, "unreachable", "the MX name has no address"},
		{"mail.test", "mixednull", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s MX 0 .", d.rel(""))
		}, []string{"null-mx-invalid"}, "", "MX 0 . next to a real MX"},
		{"mail.test", "modenone", good("none"), []string{"mta-sts-mode-none"}, "", "mode: none"},
		{"mail.test", "badparams", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.add("%s TLSA 3 1 1 abcd", d.tlsaOwner(e, "mx1"))
		}, []string{"dane-tlsa-unusable"}, "", "a SHA-256 TLSA with 2 bytes next to a good one"},
		{"mail.test", "tlsabogus", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			// The TLSA name is an alias into bogus.test, whose answers fail validation.
			d.records[2] = fmt.Sprintf("%s CNAME _%d._tcp.mx1.bogus.test.", d.tlsaOwner(e, "mx1"), e.SMTPPort)
		}, []string{"dns-error"}, "", "the TLSA lookup gets SERVFAIL (RFC 7672 §2.1: DANE senders defer)"},
		{"mail.test", "requiretls", func(e *Env, d *domain, pol map[string]policy) {
			good("enforce")(e, d, pol)
			d.records[1] = fmt.Sprintf("%s A %s", d.rel("mx1"), RequireTLSMX)
		}, nil, "", "the MX advertises REQUIRETLS after TLS (RFC 8689)"},
		{"mail.test", "daneta", func(e *Env, d *domain, pol map[string]policy) {
			d.add("%s MX 10 %s", d.rel(""), d.rel("mx"))
			d.add("%s A %s", d.rel("mx"), GoodMX2)
			d.add("%s TLSA %s", d.tlsaOwner(e, "mx"), e.TLSA2)
			d.sts(pol, okPolicy("enforce", d.fqdn("mx")))
			d.rpt()
		}, nil, "", "the only MX has only a DANE-TA record (2 0 1 of the CA)"},
		{"mail.test", "nonexistent", nil, []string{"domain-not-found"}, "dns-error", "NXDOMAIN"},
		{"bogus.test", "", good("enforce"), []string{"dns-error"}, "dns-error", "DNSSEC validation fails (SERVFAIL)"},
	}
}

// Expected lists the cases Start would build (domains, exact finding ids,
// status) without starting the world, for tests that reason about which
// finding ids have cases.
func Expected() []Case {
	var out []Case
	for _, c := range table() {
		out = append(out, c.expected())
	}
	return out
}

func (c tcase) expected() Case {
	d := &domain{zone: c.zone, label: c.label}
	want := append([]string{}, c.want...)
	sort.Strings(want)
	status := c.status
	if status == "" {
		status = "ok"
	}
	return Case{Domain: d.fqdn(""), Want: want, Status: status, Note: c.note}
}
