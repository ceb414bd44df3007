// Package dnstest runs a real authoritative DNS server, Debian's nsd, on
// loopback for tests: tern's resolver (common/dns) is pointed at it, so
// MX, SPF, DKIM and DMARC lookups are answered from the test's own zones.
package dnstest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// Start runs nsd serving zones (zone name → records, one per line, in
// zone-file syntax relative to the zone's origin; the SOA and NS records
// are added) and returns its "127.0.0.1:port". The test is skipped when
// nsd is not installed (Debian package nsd). nsd stops with the test.
func Start(t testing.TB, zones map[string]string) string {
	t.Helper()
	files := map[string]string{}
	for z, records := range zones {
		files[z] = zoneFile(z, records)
	}
	return startNSD(t, files)
}

// zoneFile is the text of a zone's file: origin, SOA, NS, then records.
func zoneFile(z, records string) string {
	return fmt.Sprintf("$ORIGIN %s.\n$TTL 60\n@ IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 60\n@ IN NS ns.%s.\n%s\n",
		z, z, z, z, records)
}

// findBinary finds a Debian package's program, or skips the test.
func findBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	if bin, err := exec.LookPath(name); err == nil {
		return bin
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("%s is not installed (apt-get install %s); skipping the DNS tests", name, pkg)
	return ""
}

// startNSD runs nsd serving the zone files given (zone name → text).
func startNSD(t testing.TB, zones map[string]string) string {
	t.Helper()
	bin := findBinary(t, "nsd", "nsd")
	dir := t.TempDir()
	port := freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, `server:
  ip-address: 127.0.0.1@%d
  do-ip6: no
  username: ""
  chroot: ""
  zonesdir: %q
  database: ""
  pidfile: %q
  xfrdfile: %q
  zonelistfile: %q
  logfile: %q
  server-count: 1
  verbosity: 1
remote-control:
  control-enable: no
`, port, dir, filepath.Join(dir, "nsd.pid"), filepath.Join(dir, "xfrd.state"),
		filepath.Join(dir, "zone.list"), filepath.Join(dir, "nsd.log"))
	names := make([]string, 0, len(zones))
	for z := range zones {
		names = append(names, z)
	}
	sort.Strings(names)
	for i, z := range names {
		file := fmt.Sprintf("zone%d.zone", i)
		if err := os.WriteFile(filepath.Join(dir, file), []byte(zones[z]), 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&conf, "zone:\n  name: %s\n  zonefile: %s\n", z, file)
	}
	return runServer(t, "nsd", bin, dir, port, conf.String())
}

// runServer writes conf into dir and starts the DNS server bin with it in
// the foreground ("-d -c conf", as nsd and unbound take it), stops it with
// the test, and returns its "127.0.0.1:port" once it answers there (TCP).
// Its log is dir/NAME.log.
func runServer(t testing.TB, name, bin, dir string, port int, conf string) string {
	t.Helper()
	confPath := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logFile := filepath.Join(dir, name+".log")
	cmd := exec.Command(bin, "-d", "-c", confPath)
	out, err := os.Create(filepath.Join(dir, name+".out"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(3 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return addr
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logFile)
			o, _ := os.ReadFile(filepath.Join(dir, name+".out"))
			t.Fatalf("%s exited: %v\n%s%s", name, err, o, log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start listening on %s", name, addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no free port for the DNS server")
	return 0
}
