package main

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestMakePreview(t *testing.T) {
	long := strings.Repeat("word ", 200)
	for _, c := range []struct{ name, msg, want string }{
		{"plain", "Subject: x\r\n\r\n  Hello,\r\n\r\n\tworld!  \r\n", "Hello, world!"},
		{"no body", "Subject: x\r\n\r\n", ""},
		{"qp latin1", "Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nCaf=E9 cr=E8me\r\n", "Café crème"},
		{"base64", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\nw4lsw6h2ZQ==\r\n", "Élève"},
		{"html only", "Content-Type: text/html\r\n\r\n<html><head><title>T</title><style>p{}</style></head><body><p>Hi&nbsp;<b>there</b> &amp; you</p><script>x()</script></body></html>\r\n", "Hi there & you"},
		{"alternative prefers plain", "Content-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n<p>from html</p>\r\n--b\r\nContent-Type: text/plain\r\n\r\nfrom plain\r\n--b--\r\n", "from plain"},
		{"attachment skipped", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=a.txt\r\n\r\nattached\r\n--b\r\nContent-Type: text/plain\r\n\r\ninline\r\n--b--\r\n", "inline"},
		{"image only", "Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n", ""},
	} {
		if got := makePreview(strings.NewReader(c.msg), 1<<16); got != c.want {
			t.Errorf("%s: preview %q, want %q", c.name, got, c.want)
		}
	}
	got := makePreview(strings.NewReader("Subject: x\r\n\r\n"+long), 1<<16)
	if n := utf8.RuneCountInString(got); n != previewMaxChars || strings.HasSuffix(got, " ") {
		t.Errorf("long preview has %d characters (%q)", n, got)
	}
	// RFC 8970 3.1 counts characters, not octets.
	got = makePreview(strings.NewReader("Content-Type: text/plain; charset=utf-8\r\n\r\n"+strings.Repeat("é", 400)), 1<<16)
	if n := utf8.RuneCountInString(got); n != previewMaxChars || !utf8.ValidString(got) {
		t.Errorf("non-ASCII preview has %d characters", n)
	}
	// Bounded work: nothing past preview_max_read is read.
	got = makePreview(strings.NewReader("Subject: x\r\n\r\nshort start "+strings.Repeat("x", 1000)+" hidden"), 100)
	if strings.Contains(got, "hidden") || !strings.HasPrefix(got, "short start") {
		t.Errorf("bounded preview %q", got)
	}
}

// FETCH PREVIEW and PREVIEW (LAZY) over every transport; bad modifiers
// are BAD.
func TestPreviewWire(t *testing.T) {
	e := startServer(t, noDelay)
	e.deliver(t, "INBOX", testMessage("preview", "Dear demo,\r\n\r\n  the  report is attached.\r\n"))
	eachTransport(t, e, func(t *testing.T, w *wireConn) {
		w.login()
		if caps := w.ok("C", "CAPABILITY"); !strings.Contains(caps[0], " PREVIEW") {
			t.Fatalf("capabilities: %q", caps[0])
		}
		w.ok("A", "EXAMINE INBOX")
		for _, item := range []string{"PREVIEW", "PREVIEW (LAZY)", "(UID PREVIEW (LAZY) FLAGS)"} {
			out := w.ok("B", "FETCH 1 "+item)
			if !strings.Contains(out[0], `PREVIEW "Dear demo, the report is attached."`) {
				t.Errorf("FETCH %s: %q", item, out)
			}
		}
		for _, bad := range []string{"FETCH 1 PREVIEW (FOO)", "FETCH 1 (PREVIEW ())", "FETCH 1 PREVIEW (LAZY"} {
			w.answers("X", bad, "BAD")
		}
	})
}
