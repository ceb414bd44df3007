package dnstest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Zone is one zone of StartValidating.
type Zone struct {
	// Records as for Start.
	Records string
	// Signed zones are signed with ldns-signzone, and their DS record is
	// a trust anchor of the validating resolver; others are insecure.
	Signed bool
	// Tamper, when set, changes the signed zone's text before nsd serves
	// it, e.g. to make a signature bogus.
	Tamper func(signed string) string
}

// StartValidating is a DNSSEC chain on loopback: the zones signed with
// Debian's ldnsutils (ldns-keygen, ldns-signzone) and served by nsd, and
// Debian's unbound validating them with their keys as trust anchors. It
// returns unbound's "127.0.0.1:port", whose answers carry the AD bit when
// they validate and are SERVFAIL when they are bogus. The test is skipped
// when a package is missing.
func StartValidating(t testing.TB, zones map[string]Zone) string {
	t.Helper()
	keygen := findBinary(t, "ldns-keygen", "ldnsutils")
	signzone := findBinary(t, "ldns-signzone", "ldnsutils")
	unbound := findBinary(t, "unbound", "unbound")
	dir := t.TempDir()
	files := map[string]string{}
	var anchors []string
	names := make([]string, 0, len(zones))
	for z := range zones {
		names = append(names, z)
	}
	sort.Strings(names)
	for _, z := range names {
		zone := zones[z]
		text := zoneFile(z, zone.Records)
		if !zone.Signed {
			files[z] = text
			continue
		}
		// One ECDSA P-256 key (RFC 6605) with the SEP flag signs everything.
		cmd := exec.Command(keygen, "-a", "ECDSAP256SHA256", "-k", z)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("ldns-keygen %s: %v", z, err)
		}
		key := strings.TrimSpace(string(out))
		ds, err := os.ReadFile(filepath.Join(dir, key+".ds"))
		if err != nil {
			t.Fatal(err)
		}
		anchors = append(anchors, strings.Join(strings.Fields(string(ds)), " "))
		zf := filepath.Join(dir, z+".zone")
		if err := os.WriteFile(zf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(signzone, zf, key)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ldns-signzone %s: %v\n%s", z, err, out)
		}
		signed, err := os.ReadFile(zf + ".signed")
		if err != nil {
			t.Fatal(err)
		}
		text = string(signed)
		if zone.Tamper != nil {
			text = zone.Tamper(text)
		}
		files[z] = text
	}
	nsd := startNSD(t, files)
	nsdHost, nsdPort, _ := strings.Cut(nsd, ":")

	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  interface: 127.0.0.1@%d
  do-ip6: no
  username: ""
  chroot: ""
  directory: %q
  pidfile: %q
  use-syslog: no
  logfile: %q
  verbosity: 1
  num-threads: 1
  access-control: 127.0.0.0/8 allow
  do-not-query-localhost: no
  module-config: "validator iterator"
  harden-dnssec-stripped: yes
  qname-minimisation: no
  val-log-level: 2
  cache-max-ttl: 0
  cache-max-negative-ttl: 0
  # RFC 6761 makes .test a local zone that unbound answers itself.
  local-zone: "test." nodefault
`, port, dir, filepath.Join(dir, "unbound.pid"), filepath.Join(dir, "unbound.log"))
	for _, a := range anchors {
		fmt.Fprintf(&conf, "  trust-anchor: %q\n", a)
	}
	for _, z := range names {
		fmt.Fprintf(&conf, "stub-zone:\n  name: %q\n  stub-addr: %s@%s\n", z, nsdHost, nsdPort)
	}
	conf.WriteString("remote-control:\n  control-enable: no\n")
	return runServer(t, "unbound", unbound, dir, port, conf.String())
}
