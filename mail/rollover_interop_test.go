package mail

import (
	"context"
	"crypto"
	"crypto/x509"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/mail/mailtest"
)

// TestRolloverWorld plans certificate rollovers against the DNSSEC world
// of mailtest: good.mail.test has mx1 with 3 1 1 of the served key and
// mx2 with 2 0 1 of the CA; plain.test has 3 1 1 without DNSSEC.
func TestRolloverWorld(t *testing.T) {
	e := mailtest.Start(t)
	o := Options{Resolver: &Resolver{Addr: e.Resolver, Timeout: 5 * time.Second}, Roots: e.Roots,
		SMTPPort: e.SMTPPort, HTTPSPort: e.HTTPSPort, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	names := []string{"mx1.good.mail.test", "mx2.good.mail.test", "mx1.plain.test"}

	renewed := &Next{Chain: []*x509.Certificate{reissue(t, e.CA, e.MXLeaf.TLS.PrivateKey.(crypto.Signer), names...), e.CA.Cert}}
	renewed.SPKI = renewed.Chain[0].RawSubjectPublicKeyInfo
	fresh, err := e.CA.Issue(certs.LeafOptions{Hosts: names})
	if err != nil {
		t.Fatal(err)
	}
	freshNext, err := ParseNextCert(fresh.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := certs.NewCA("another CA")
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := otherCA.Issue(certs.LeafOptions{Hosts: names})
	if err != nil {
		t.Fatal(err)
	}
	foreignNext, err := ParseNextCert(foreign.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	keyOnly, err := ParseNextKey(e.MXLeaf.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	oldTLSA := "3 1 1 " + strings.ToLower(strings.Fields(e.TLSA3)[3])

	type host struct {
		verdict string
		publish []string // prefixes
		remove  []string
	}
	cases := []struct {
		name, domain string
		next         *Next
		ready        bool
		hosts        map[string]host
	}{
		{"same key, same CA", "good.mail.test", renewed, true, map[string]host{
			"mx1.good.mail.test": {RolloverReady, nil, nil},
			"mx2.good.mail.test": {RolloverReady, nil, nil},
		}},
		{"new key, same CA", "good.mail.test", freshNext, false, map[string]host{
			"mx1.good.mail.test": {RolloverPublishFirst, []string{freshNext.TLSA311().String()}, []string{oldTLSA}},
			"mx2.good.mail.test": {RolloverReady, nil, nil}, // 2 0 1 of the issuer
		}},
		{"new key, another CA", "good.mail.test", foreignNext, false, map[string]host{
			"mx1.good.mail.test": {RolloverPublishFirst, []string{foreignNext.TLSA311().String()}, []string{oldTLSA}},
			"mx2.good.mail.test": {RolloverPublishFirst, []string{foreignNext.TLSA311().String(), "2 0 1 "}, []string{e.TLSA2}},
		}},
		{"key only", "good.mail.test", keyOnly, false, map[string]host{
			"mx1.good.mail.test": {RolloverReady, nil, nil},
			"mx2.good.mail.test": {RolloverUnknown, []string{keyOnly.TLSA311().String()}, nil},
		}},
		{"unsigned zone", "plain.test", freshNext, true, map[string]host{
			"mx1.plain.test": {RolloverInsecure, []string{freshNext.TLSA311().String()}, []string{oldTLSA}},
		}},
		{"no TLSA", "nostarttls.mail.test", freshNext, true, map[string]host{
			"mx.nostarttls.mail.test": {RolloverNoTLSA, nil, nil},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := Rollover(ctx, tc.domain, tc.next, o)
			if r.Status != StatusOK || r.Ready != tc.ready || len(r.Hosts) != len(tc.hosts) {
				t.Fatalf("status %s %s ready %v hosts %d, want ready %v hosts %d", r.Status, r.Error, r.Ready, len(r.Hosts), tc.ready, len(tc.hosts))
			}
			for _, h := range r.Hosts {
				want, ok := tc.hosts[h.Name]
				if !ok {
					t.Errorf("unexpected host %s", h.Name)
					continue
				}
				if h.Verdict != want.verdict {
					t.Errorf("%s: verdict %s (%s), want %s; plan %+v", h.Name, h.Verdict, h.Detail, want.verdict, h.Plan)
				}
				if h.Plan == nil {
					if want.publish != nil || want.remove != nil {
						t.Errorf("%s: no plan", h.Name)
					}
					continue
				}
				if !strings.HasPrefix(h.Served, "fetched") {
					t.Errorf("%s: current chain %s", h.Name, h.Served)
				}
				for _, rec := range h.Plan.Records {
					if rec.Current != MatchYes {
						t.Errorf("%s: %s does not match the served chain: %s", h.Name, rec.TLSA, rec.Current)
					}
				}
				if len(h.Plan.Publish) != len(want.publish) {
					t.Errorf("%s: publish %v, want %v", h.Name, h.Plan.Publish, want.publish)
				}
				for i, p := range want.publish {
					if i < len(h.Plan.Publish) && !strings.HasPrefix(h.Plan.Publish[i], p) {
						t.Errorf("%s: publish %v, want %v", h.Name, h.Plan.Publish, want.publish)
					}
				}
				if !slices.Equal(h.Plan.Remove, nilEmpty(want.remove)) {
					t.Errorf("%s: remove %v, want %v", h.Name, h.Plan.Remove, want.remove)
				}
			}
		})
	}
	if r := Rollover(ctx, "nonexistent.mail.test", freshNext, o); r.Status != StatusDNSError {
		t.Errorf("NXDOMAIN: status %s", r.Status)
	}
}
