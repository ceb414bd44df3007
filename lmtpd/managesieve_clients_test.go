package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// pyManageSieve is a ManageSieve client on Python's socket and ssl
// modules: argv host port cafile mode(plain|starttls) user password, a
// JSON list of [command, script-or-null] on stdin; it prints a JSON list
// of the final response line of each command, with the lines before it.
const pyManageSieve = `
import base64, json, socket, ssl, sys
host, port, cafile, mode, user, pw = sys.argv[1:7]
s = socket.create_connection((host, int(port)), timeout=20)
f = s.makefile("rb")
def resp():
    lines = []
    while True:
        l = f.readline()
        assert l.endswith(b"\r\n"), l
        l = l[:-2].decode()
        if l.endswith("}") and "{" in l:
            i = l.rindex("{")
            n = int(l[i+1:-1].rstrip("+"))
            body = f.read(n).decode()
            rest = f.readline()[:-2].decode()
            l = l[:i] + json.dumps(body) + rest
        if l.split(" ")[0] in ("OK", "NO", "BYE"):
            return lines, l
        lines.append(l)
def lit(t):
    b = t.encode()
    return b"{%d+}\r\n" % len(b) + b
def cmd(line):
    s.sendall(line if isinstance(line, bytes) else line.encode() + b"\r\n")
    return resp()
out = {"greeting": resp()[0]}
if mode == "starttls":
    assert cmd("STARTTLS")[1].startswith("OK")
    ctx = ssl.create_default_context(cafile=cafile)
    s = ctx.wrap_socket(s, server_hostname="localhost")
    f = s.makefile("rb")
    out["tls_caps"] = resp()[0]
ir = base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()
out["auth"] = cmd('AUTHENTICATE "PLAIN" "%s"' % ir)[1]
res = []
for c, script in json.load(sys.stdin):
    if script is None:
        res.append(cmd(c))
    else:
        res.append(cmd(c.encode() + b" " + lit(script) + b"\r\n"))
out["results"] = res
cmd("LOGOUT")
print(json.dumps(out))
`

type pyResult struct {
	Greeting []string        `json:"greeting"`
	TLSCaps  []string        `json:"tls_caps"`
	Auth     string          `json:"auth"`
	Results  [][]interface{} `json:"results"`
}

func runPyManageSieve(t *testing.T, e *msEnv, mode, user, pass string, cmds [][2]any) pyResult {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	host, port, _ := strings.Cut(e.addr, ":")
	in, _ := json.Marshal(cmds)
	cmd := exec.Command(py, "-c", pyManageSieve, host, port, e.caFile(), mode, user, pass)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var r pyResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("python output %q: %v", out, err)
	}
	return r
}

// final is the final response line of result i.
func (r pyResult) final(i int) string { return r.Results[i][1].(string) }

// TestManageSievePython is the acceptance session on each transport a
// client can use (plain on loopback, STARTTLS): CAPABILITY, AUTHENTICATE,
// a broken script refused with its line number, a good one stored and
// activated, then mail delivered through lmtpd is filed by it; and the
// user cannot reach another user's scripts.
func TestManageSievePython(t *testing.T) {
	for _, mode := range []string{"plain", "starttls"} {
		t.Run(mode, func(t *testing.T) {
			e := startManageSieve(t, "127.0.0.1", nil)
			broken := "require \"fileinto\";\r\n\r\nif header :contains \"Subject\" \"x\" {\r\n  fileinto \"A\"\r\n}\r\n"
			r := runPyManageSieve(t, e, mode, "demo", "demo", [][2]any{
				{"CAPABILITY", nil},
				{`PUTSCRIPT "broken"`, broken},
				{`PUTSCRIPT "bills"`, filingScript},
				{`SETACTIVE "bills"`, nil},
				{"LISTSCRIPTS", nil},
			})
			if !hasLine(r.Greeting, `"IMPLEMENTATION" "tern"`) {
				t.Errorf("greeting %q", r.Greeting)
			}
			if mode == "starttls" && (hasLine(r.TLSCaps, `"STARTTLS"`) || !hasLine(r.TLSCaps, `"SASL" "PLAIN LOGIN"`)) {
				t.Errorf("capabilities after STARTTLS %q", r.TLSCaps)
			}
			if r.Auth != `OK "logged in"` {
				t.Fatalf("AUTHENTICATE: %q", r.Auth)
			}
			if !strings.HasPrefix(r.final(1), "NO ") || !strings.Contains(r.final(1), "line 4") {
				t.Errorf("broken script: %q, want NO naming line 4", r.final(1))
			}
			for i := 2; i <= 4; i++ {
				if !strings.HasPrefix(r.final(i), "OK") {
					t.Errorf("command %d: %q", i, r.final(i))
				}
			}
			if got := r.Results[4][0]; len(got.([]any)) != 1 || got.([]any)[0] != `"bills" ACTIVE` {
				t.Errorf("LISTSCRIPTS %q", got)
			}
			// Delivery through lmtpd runs the new script.
			if rep := e.sendOne(t, "x@remote.test", "demo@example.test", "Subject: your invoice\r\n\r\npay"); !strings.HasPrefix(rep, "250 ") {
				t.Fatalf("deliver: %q", rep)
			}
			if got := e.messages(t, "demo@example.test", "Bills"); len(got) != 1 {
				t.Errorf("Bills has %d messages, want 1", len(got))
			}
			if got := e.messages(t, "demo@example.test", "INBOX"); len(got) != 1 {
				t.Errorf("INBOX has %d messages, want 1 (fileinto :copy)", len(got))
			}

			// alice sees none of demo's scripts and cannot name them.
			r = runPyManageSieve(t, e, mode, "alice", "alice", [][2]any{
				{"LISTSCRIPTS", nil},
				{`GETSCRIPT "bills"`, nil},
				{`GETSCRIPT "../../demo/sieve/scripts/bills"`, nil},
				{`PUTSCRIPT "../../demo/sieve/scripts/bills"`, "discard;"},
				{`SETACTIVE "bills"`, nil},
				{`DELETESCRIPT "bills"`, nil},
				{`RENAMESCRIPT "bills" "mine"`, nil},
			})
			if got := r.Results[0][0]; len(got.([]any)) != 0 {
				t.Errorf("alice's LISTSCRIPTS %q", got)
			}
			for i := 1; i < len(r.Results); i++ {
				if !strings.HasPrefix(r.final(i), "NO") {
					t.Errorf("alice's command %d: %q", i, r.final(i))
				}
			}
			src, err := os.ReadFile(filepath.Join(e.dir, "vmail/example.test/demo/sieve/scripts/bills.sieve"))
			if err != nil || string(src) != filingScript {
				t.Errorf("demo's script after alice: %q, %v", src, err)
			}
		})
	}
}

// TestManageSieveConnect drives the service with Debian's sieve-connect
// over STARTTLS, verifying the certificate: upload, activate, list,
// download, and a delivery filed by the uploaded script.
func TestManageSieveConnect(t *testing.T) {
	bin, err := exec.LookPath("sieve-connect")
	if err != nil {
		t.Skip("sieve-connect not installed (apt-get install -y sieve-connect)")
	}
	e := startManageSieve(t, "127.0.0.1", nil)
	_, port, _ := strings.Cut(e.addr, ":")
	local := filepath.Join(t.TempDir(), "filter.siv")
	write(t, local, filingScript)
	run := func(args ...string) string {
		t.Helper()
		base := []string{"--nosrv", "--server", "127.0.0.1", "--port", port, "--user", "alice@example.test",
			"--passwordfd", "0", "--tlscafile", e.caFile(), "--tlshostname", "localhost",
			"--noclearchan", "--authmech", "PLAIN"}
		cmd := exec.Command(bin, append(base, args...)...)
		cmd.Stdin = strings.NewReader("alice\n")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sieve-connect %q: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("--localsieve", local, "--remotesieve", "bills", "--upload")
	run("--remotesieve", "bills", "--activate")
	if out := run("--list"); !strings.Contains(out, "bills") || !strings.Contains(out, "ACTIVE") {
		t.Errorf("sieve-connect --list: %q", out)
	}
	got := filepath.Join(t.TempDir(), "got.siv")
	run("--localsieve", got, "--remotesieve", "bills", "--download")
	if b, err := os.ReadFile(got); err != nil || string(b) != filingScript {
		t.Errorf("downloaded %q, %v", b, err)
	}
	if rep := e.sendOne(t, "x@remote.test", "alice@example.test", "Subject: invoice 42\r\n\r\npay"); !strings.HasPrefix(rep, "250 ") {
		t.Fatalf("deliver: %q", rep)
	}
	if got := e.messages(t, "alice@example.test", "Bills"); len(got) != 1 {
		t.Errorf("Bills has %d messages, want 1", len(got))
	}
	// A broken upload is refused, and the message names the line.
	write(t, local, "keep;\nfoo;\n")
	cmd := exec.Command(bin, "--nosrv", "--server", "127.0.0.1", "--port", port, "--user", "alice@example.test",
		"--passwordfd", "0", "--tlscafile", e.caFile(), "--tlshostname", "localhost", "--authmech", "PLAIN",
		"--localsieve", local, "--remotesieve", "broken", "--upload")
	cmd.Stdin = strings.NewReader("alice\n")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "line 2") {
		t.Errorf("broken upload: %v %q", err, out)
	}
}
