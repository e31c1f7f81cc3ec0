package peer

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// DNSZone is one zone for the authoritative server.
type DNSZone struct {
	// Origin is the zone's name, e.g. "mail.test" (no trailing dot needed).
	Origin string
	// Records are zone-file lines after the SOA and NS, owners relative to
	// the origin or absolute, e.g. "mx1 A 127.0.0.2".
	Records []string
	// Signed zones are signed with ldns-signzone (NSEC, ECDSA P-256 KSK
	// and ZSK) and get a trust anchor in unbound; the others are insecure.
	Signed bool
	// Bogus zones are signed, but unbound trusts another key: every answer
	// from them fails validation (SERVFAIL), as with broken DNSSEC.
	Bogus bool
}

// DNS is a running authoritative server (NSD) and a validating resolver
// (unbound) in front of it, both on loopback. The resolver answers only
// for the zones given (every upstream query goes to NSD on loopback) and
// sets the AD bit on answers from the signed zones.
type DNS struct {
	AuthAddr     string // NSD, authoritative only
	ResolverAddr string // unbound, recursive and validating
	// Resolver53 is unbound on port 53 of a rarely used loopback address
	// (127.53.x.y), for programs that read /etc/resolv.conf (which has no
	// port) such as posttls-finger; "" when no such address was free.
	Resolver53 string
	Dir        string
	// DS records of the signed zones, by origin.
	DS map[string]string
	// Versions of the programs, for reports.
	NSDVersion, UnboundVersion, LDNSVersion string
}

// StartDNS writes and signs the zones, starts NSD on one free loopback
// port and unbound on another, and waits until the resolver answers with
// the AD bit for the first signed zone. Everything stops at cleanup.
func StartDNS(t testing.TB, zones ...DNSZone) *DNS {
	t.Helper()
	bins := Require(t, "nsd", "unbound", "unbound-checkconf", "ldns-keygen", "ldns-signzone")
	dir := tempDir(t, "dns")
	d := &DNS{AuthAddr: addr(FreePort(t)), ResolverAddr: addr(FreePort(t)), Dir: dir, DS: map[string]string{}}
	d.NSDVersion = dnsFirstLine(dnsOutput(t, bins["nsd"], "-v"))
	d.UnboundVersion = dnsVersionLine(dnsOutput(t, bins["unbound"], "-V"))
	d.LDNSVersion = dnsFirstLine(dnsOutput(t, bins["ldns-signzone"], "-v"))

	var nsdZones, anchors, stubs []string
	for _, z := range zones {
		origin := strings.TrimSuffix(strings.ToLower(z.Origin), ".")
		file := filepath.Join(dir, origin+".zone")
		body := fmt.Sprintf("$ORIGIN %s.\n$TTL 300\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 300\n@ IN NS ns.%s.\nns IN A 127.0.0.1\n%s\n",
			origin, origin, origin, origin, strings.Join(z.Records, "\n"))
		writeFile(t, file, body, 0o644)
		served := file
		if z.Signed || z.Bogus {
			served, anchors = d.sign(t, bins, origin, file, z.Bogus), append(anchors, filepath.Join(dir, "anchor-"+origin+".key"))
		}
		nsdZones = append(nsdZones, fmt.Sprintf("zone:\n  name: %q\n  zonefile: %q\n", origin, served))
		stubs = append(stubs, fmt.Sprintf("stub-zone:\n  name: %q\n  stub-addr: %s\n", origin, dnsAtPort(d.AuthAddr)),
			fmt.Sprintf("  local-zone: %q transparent\n", origin))
	}

	nsdConf := filepath.Join(dir, "nsd.conf")
	writeFile(t, nsdConf, fmt.Sprintf(`server:
  ip-address: %s
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  zonelistfile: %q
  xfrdfile: %q
  xfrdir: %q
  pidfile: %q
  logfile: %q
  verbosity: 1
  server-count: 1
  hide-version: yes
  reuseport: no
remote-control:
  control-enable: no
%s`, dnsAtPort(d.AuthAddr), dir, filepath.Join(dir, "zone.list"), filepath.Join(dir, "xfrd.state"), dir,
		filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "nsd.log"), strings.Join(nsdZones, "")), 0o644)
	startDaemon(t, dir, "nsd-stdout", bins["nsd"], "-d", "-c", nsdConf)
	waitPorts(t, filepath.Join(dir, "nsd.log"), d.AuthAddr)

	// The resolver: only loopback upstreams (a stub for the root too, and
	// the outgoing interface on loopback), no default local zone for
	// "test.", a trust anchor per signed zone.
	var server, stubZones []string
	for i := 0; i < len(stubs); i += 2 {
		stubZones = append(stubZones, stubs[i])
		server = append(server, stubs[i+1])
	}
	for _, a := range anchors {
		server = append(server, fmt.Sprintf("  trust-anchor-file: %q\n", a))
	}
	if a := free53(); a != "" {
		d.Resolver53 = a
		server = append(server, fmt.Sprintf("  interface: %s\n", dnsAtPort(a)))
	}
	unboundConf := filepath.Join(dir, "unbound.conf")
	writeFile(t, unboundConf, fmt.Sprintf(`server:
  interface: %s
  do-ip6: no
  do-daemonize: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  logfile: ""
  use-syslog: no
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  so-reuseport: no
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  outgoing-interface: 127.0.0.1
  qname-minimisation: no
  module-config: "validator iterator"
  local-zone: "test." nodefault
  local-zone: "." refuse
%sremote-control:
  control-enable: no
stub-zone:
  name: "."
  stub-addr: %s
%s`, dnsAtPort(d.ResolverAddr), dir, filepath.Join(dir, "unbound.pid"), strings.Join(server, ""), dnsAtPort(d.AuthAddr), strings.Join(stubZones, "")), 0o644)
	if out, err := run(t, 20*time.Second, bins["unbound-checkconf"], unboundConf); err != nil {
		t.Fatalf("unbound-checkconf: %v\n%s", err, out)
	}
	startDaemon(t, dir, "unbound", bins["unbound"], "-d", "-c", unboundConf)
	waitPorts(t, filepath.Join(dir, "unbound.log"), d.ResolverAddr)
	if d.Resolver53 != "" {
		waitPorts(t, filepath.Join(dir, "unbound.log"), d.Resolver53)
	}
	return d
}

// free53 finds a loopback address 127.53.x.y whose port 53 is free for UDP
// and TCP (root only; a few tries).
func free53() string {
	if os.Geteuid() != 0 {
		return ""
	}
	for i := 0; i < 8; i++ {
		a := fmt.Sprintf("127.53.%d.%d:53", 1+(os.Getpid()+i*37)%250, 1+(time.Now().Nanosecond()/1000+i)%250)
		u, err := net.ListenPacket("udp", a)
		if err != nil {
			continue
		}
		l, err := net.Listen("tcp", a)
		u.Close()
		if err != nil {
			continue
		}
		l.Close()
		return a
	}
	return ""
}

// sign makes a KSK and a ZSK, signs the zone and writes the KSK's DNSKEY
// (or, for a bogus zone, an unrelated key's) as unbound's trust anchor; it
// returns the signed file.
func (d *DNS) sign(t testing.TB, bins map[string]string, origin, file string, bogus bool) string {
	t.Helper()
	keygen := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bins["ldns-keygen"], append(args, origin)...)
		cmd.Dir = d.Dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("ldns-keygen %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ksk := keygen("-a", "ECDSAP256SHA256", "-k")
	zsk := keygen("-a", "ECDSAP256SHA256")
	inception := time.Now().Add(-time.Hour).UTC().Format("20060102150405")
	expiration := time.Now().Add(14 * 24 * time.Hour).UTC().Format("20060102150405")
	out, err := run(t, 30*time.Second, bins["ldns-signzone"], "-i", inception, "-e", expiration,
		"-f", file+".signed", file, filepath.Join(d.Dir, ksk), filepath.Join(d.Dir, zsk))
	if err != nil {
		t.Fatalf("ldns-signzone: %v\n%s", err, out)
	}
	anchor := ksk
	if bogus {
		anchor = keygen("-a", "ECDSAP256SHA256", "-k")
	}
	key, err := os.ReadFile(filepath.Join(d.Dir, anchor+".key"))
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(d.Dir, "anchor-"+origin+".key"), string(key), 0o644)
	if ds, err := os.ReadFile(filepath.Join(d.Dir, ksk+".ds")); err == nil && !bogus {
		d.DS[origin] = strings.TrimSpace(string(ds))
	}
	return file + ".signed"
}

// atPort turns 127.0.0.1:53 into NSD's and unbound's 127.0.0.1@53.
func dnsAtPort(hostPort string) string { return strings.Replace(hostPort, ":", "@", 1) }

func dnsOutput(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, _ := run(t, 10*time.Second, name, args...)
	return out
}

func dnsFirstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

func dnsVersionLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "Version") {
			return strings.TrimSpace(l)
		}
	}
	return dnsFirstLine(s)
}
