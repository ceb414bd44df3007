package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The skeleton commands driven by Python's imaplib, a client written
// independently of go-imap.
func TestPythonImaplib(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	e := startServer(t)
	msg := testMessage("py", "from python\r\n")
	e.deliver(t, "INBOX", msg)
	script := `
import imaplib, sys
host, port = sys.argv[1].rsplit(":", 1)
M = imaplib.IMAP4(host, int(port))
assert "IMAP4REV1" in M.capabilities, M.capabilities
typ, _ = M.login("demo", "demo"); assert typ == "OK"
typ, data = M.list(); assert typ == "OK" and any(b"INBOX" in d for d in data), data
typ, data = M.select("INBOX"); assert typ == "OK" and data[0] == b"1", data
typ, data = M.fetch("1", "(FLAGS UID RFC822.SIZE INTERNALDATE ENVELOPE BODYSTRUCTURE BODY.PEEK[])")
assert typ == "OK", data
sys.stdout.buffer.write(data[0][1])
typ, data = M.uid("FETCH", "1:*", "(FLAGS)"); assert typ == "OK", data
typ, data = M.store("1", "+FLAGS", "(\\Deleted)"); assert typ == "OK" and b"\\Deleted" in data[0], data
typ, data = M.expunge(); assert typ == "OK" and data[0] == b"1", data
typ, data = M.search(None, "ALL"); assert typ == "OK" and data[0] == b"", data
M.close(); M.logout()
`
	out, err := exec.Command(py, "-c", script, e.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
	if strings.TrimSpace(string(out)) != strings.TrimSpace(msg) {
		t.Fatalf("BODY[] via imaplib = %q", out)
	}
}

// Every command family, with its error paths, driven by imaplib (the
// script is testdata/imaplib_commands.py).
func TestPythonImaplibCommands(t *testing.T) {
	runImaplibScript(t, "testdata/imaplib_commands.py")
}

// runImaplibScript runs a Python imaplib script against a fresh server;
// the script prints "ok" when every assertion held.
func runImaplibScript(t *testing.T, script string) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed (Debian package python3)")
	}
	e := startServer(t)
	out, err := exec.Command(py, script, e.addr).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("imaplib: %v\n%s", err, out)
	}
}

// OBJECTID, SAVEDATE, PREVIEW and METADATA driven by imaplib (the script
// is testdata/imaplib_objectid.py).
func TestPythonImaplibObjectID(t *testing.T) {
	runImaplibScript(t, "testdata/imaplib_objectid.py")
}
